package watch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"
)

// TestCertExpiryAbsentUntilRead: the metric is absent (not 0) before a
// certificate was read and without one, so "expires within 14 days"
// never fires on a zero.
func TestCertExpiryAbsentUntilRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := NewCertExpiry(reg)
	if n := testutil.CollectAndCount(reg); n != 0 {
		t.Fatalf("before a certificate was read: %d series, want none", n)
	}
	c.Watch(context.Background(), &rest.Config{BearerToken: "x"}, slog.New(slog.DiscardHandler))
	if n := testutil.CollectAndCount(reg); n != 0 {
		t.Fatalf("token authentication: %d series, want none", n)
	}

	notAfter := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "n1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
	}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}}, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Watch returns after its first pass
	c.Watch(ctx, &rest.Config{TLSClientConfig: rest.TLSClientConfig{
		CertData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}}, slog.New(slog.NewTextHandler(&logs, nil)))
	want := "# HELP lbd_kubeconfig_cert_expiry_timestamp_seconds Unix time when the client certificate in lbd's kubeconfig expires; absent without one (token authentication).\n" +
		"# TYPE lbd_kubeconfig_cert_expiry_timestamp_seconds gauge\n" +
		"lbd_kubeconfig_cert_expiry_timestamp_seconds " + strings.TrimSpace(prometheusFloat(float64(notAfter.Unix()))) + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "expires soon") || !strings.Contains(logs.String(), "days=9") {
		t.Errorf("want a warning with days=9, logged:\n%s", logs.String())
	}
}

func prometheusFloat(f float64) string { return strconv.FormatFloat(f, 'e', -1, 64) }
