package watch

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

// CertWarnBefore is how long before its client certificate expires lbd
// starts to warn in the journal (the alert fires at 14 days).
const CertWarnBefore = 30 * 24 * time.Hour

// CertExpiry exports when the client certificate lbd authenticates with
// expires, and warns in the log from CertWarnBefore on, once a day.
// The metric is absent until a certificate was read, not 0: an alert on
// "expires within 14 days" must not fire for token authentication or for
// the moments before the kubeconfig was read.
type CertExpiry struct {
	desc     *prometheus.Desc
	notAfter atomic.Int64 // Unix seconds; 0 while unknown
	now      func() time.Time
}

// NewCertExpiry registers lbd_kubeconfig_cert_expiry_timestamp_seconds.
func NewCertExpiry(reg prometheus.Registerer) *CertExpiry {
	c := &CertExpiry{
		desc: prometheus.NewDesc("lbd_kubeconfig_cert_expiry_timestamp_seconds",
			"Unix time when the client certificate in lbd's kubeconfig expires; absent without one (token authentication).", nil, nil),
		now: time.Now,
	}
	reg.MustRegister(c)
	return c
}

// Describe implements prometheus.Collector.
func (c *CertExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector: nothing until a certificate was read.
func (c *CertExpiry) Collect(ch chan<- prometheus.Metric) {
	if t := c.notAfter.Load(); t != 0 {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(t))
	}
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
	c.notAfter.Store(notAfter.Unix())
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
