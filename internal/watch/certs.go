package watch

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

// CertWarnBefore is how long before its client certificate expires lbd
// starts to warn in the journal (the alert fires at 14 days).
const CertWarnBefore = 30 * 24 * time.Hour

// CertExpiry exports when the client certificate lbd authenticates with
// expires, and warns in the log from CertWarnBefore on, once a day.
type CertExpiry struct {
	expiry prometheus.Gauge
	now    func() time.Time
}

// NewCertExpiry registers lbd_kubeconfig_cert_expiry_timestamp_seconds.
func NewCertExpiry(reg prometheus.Registerer) *CertExpiry {
	c := &CertExpiry{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lbd_kubeconfig_cert_expiry_timestamp_seconds",
			Help: "Unix time when the client certificate in lbd's kubeconfig expires; absent without one (token authentication).",
		}),
		now: time.Now,
	}
	reg.MustRegister(c.expiry)
	return c
}

// ClientCertNotAfter returns when rc's client certificate expires; ok is
// false when rc authenticates otherwise.
func ClientCertNotAfter(rc *rest.Config) (time.Time, bool, error) {
	data := rc.TLSClientConfig.CertData
	if len(data) == 0 && rc.TLSClientConfig.CertFile != "" {
		var err error
		if data, err = os.ReadFile(rc.TLSClientConfig.CertFile); err != nil {
			return time.Time{}, false, err
		}
	}
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return time.Time{}, false, err
		}
		return cert.NotAfter, true, nil // the leaf comes first
	}
	return time.Time{}, false, nil
}

// Watch sets the metric from rc's certificate and warns, at once and then
// daily, while it expires within CertWarnBefore, until ctx ends.
func (c *CertExpiry) Watch(ctx context.Context, rc *rest.Config, log *slog.Logger) {
	notAfter, ok, err := ClientCertNotAfter(rc)
	if err != nil {
		log.Warn("cannot read the client certificate in the kubeconfig", "err", err)
		return
	}
	if !ok {
		return
	}
	c.expiry.Set(float64(notAfter.Unix()))
	for {
		if left := notAfter.Sub(c.now()); left < CertWarnBefore {
			log.Warn("the client certificate in the kubeconfig expires soon: renew it (the Ansible role does, docs/vip.md)",
				"days", int(left.Hours()/24), "expires", notAfter.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(24 * time.Hour):
		}
	}
}
