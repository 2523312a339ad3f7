package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// Names of the files Start writes into the cluster directory.
const (
	caCertFile     = "ca.crt"
	caKeyFile      = "ca.key"
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
	caKeyPEM, err := ecKeyPEM(caKey)
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
		{caKeyFile, caKeyPEM},
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
	return writeKubeconfigFor(path, url, creds.caPEM, tokenUser, "    token: "+creds.token)
}

// writeKubeconfigFor writes a kubeconfig for user, whose credentials are
// the given lines under `user:`, trusting caPEM.
func writeKubeconfigFor(path, url string, caPEM []byte, user, credentials string) error {
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
%s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: %s
current-context: kubetest
`
	data := fmt.Sprintf(format, url, base64.StdEncoding.EncodeToString(caPEM), user, credentials, user)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// UserKubeconfig writes a kubeconfig for the user name in groups,
// authenticated by a client certificate the cluster's CA signs (as
// `kubeadm kubeconfig user --client-name NAME --org GROUP` makes), valid
// for validFor from now, and returns its path. RBAC then decides what the
// user may do: tests run lbd under exactly the rights its manifest grants.
// server replaces the cluster's URL when not empty (e.g. a VIP).
func (c *Cluster) UserKubeconfig(name string, groups []string, validFor time.Duration, server string) (string, error) {
	caCert, caKey, err := c.loadCA()
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: groups},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	keyPEM, err := ecKeyPEM(key)
	if err != nil {
		return "", err
	}
	if server == "" {
		server = c.URL
	}
	caPEM, err := os.ReadFile(filepath.Join(c.Dir, caCertFile))
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	creds := fmt.Sprintf("    client-certificate-data: %s\n    client-key-data: %s",
		b64(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), b64(keyPEM))
	path := filepath.Join(c.Dir, "kubeconfig-"+strings.NewReplacer(":", "_", "/", "_").Replace(name)+"-"+serial.String())
	if err := writeKubeconfigFor(path, server, caPEM, name, creds); err != nil {
		return "", err
	}
	return path, nil
}

func (c *Cluster) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(c.Dir, caCertFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(c.Dir, caKeyFile))
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("kubetest: cannot read the CA")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	return cert, key, err
}

// Apply creates the objects of a manifest file (Namespaces and RBAC
// objects, the kinds lbd ships) with client, as `kubectl apply -f` would
// on an empty cluster; objects that exist already are left as they are.
func Apply(ctx context.Context, client kubernetes.Interface, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := scheme.Codecs.UniversalDeserializer()
	for doc := range strings.SplitSeq(string(data), "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		obj, _, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		opts := metav1.CreateOptions{}
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = client.CoreV1().Namespaces().Create(ctx, o, opts)
		case *rbacv1.ClusterRole:
			_, err = client.RbacV1().ClusterRoles().Create(ctx, o, opts)
		case *rbacv1.ClusterRoleBinding:
			_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
		case *rbacv1.Role:
			_, err = client.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
		case *rbacv1.RoleBinding:
			_, err = client.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
		default:
			return fmt.Errorf("%s: kubetest.Apply does not handle %T", path, obj)
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
