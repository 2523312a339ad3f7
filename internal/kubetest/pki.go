package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Names of the files Start writes into the cluster directory.
const (
	caCertFile     = "ca.crt"
	servingCert    = "apiserver.crt"
	servingKey     = "apiserver.key"
	saKeyFile      = "service-account.key"
	tokenFile      = "tokens.csv"
	kubeconfigFile = "kubeconfig"
)

// tokenUser is the identity behind Cluster.Token: a member of
// system:masters, so RBAC lets it do anything.
const tokenUser = "lbd-kubetest-admin"

// credentials are what Start generates for one cluster.
type credentials struct {
	caPEM []byte
	token string
}

// writeCredentials generates a CA and a serving certificate for host (and
// the extra addresses), a service-account signing key and a static admin
// token, all in dir.
func writeCredentials(dir string, host net.IP, extra []net.IP) (credentials, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lbd-kubetest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return credentials{}, fmt.Errorf("creating CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return credentials{}, fmt.Errorf("parsing CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, fmt.Errorf("generating serving key: %w", err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host != nil && !host.IsUnspecified() && !host.Equal(ips[0]) && !host.Equal(ips[1]) {
		ips = append(ips, host)
	}
	ips = append(ips, extra...)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return credentials{}, fmt.Errorf("creating serving certificate: %w", err)
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, fmt.Errorf("generating service-account key: %w", err)
	}

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return credentials{}, fmt.Errorf("generating token: %w", err)
	}
	token := hex.EncodeToString(raw)

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err := ecKeyPEM(key)
	if err != nil {
		return credentials{}, err
	}
	saPEM, err := ecKeyPEM(saKey)
	if err != nil {
		return credentials{}, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{caCertFile, caPEM},
		{servingCert, certPEM},
		{servingKey, keyPEM},
		{saKeyFile, saPEM},
		{tokenFile, fmt.Appendf(nil, "%s,%s,%s,\"system:masters\"\n", token, tokenUser, tokenUser)},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return credentials{}, fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return credentials{caPEM: caPEM, token: token}, nil
}

func ecKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshalling EC key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// writeKubeconfig writes a kubeconfig for kubectl and client-go that uses
// the static token and trusts the generated CA.
func writeKubeconfig(path, url string, creds credentials) error {
	const format = `apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: %s
current-context: kubetest
`
	data := fmt.Sprintf(format, url, base64.StdEncoding.EncodeToString(creds.caPEM),
		tokenUser, creds.token, tokenUser)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}
