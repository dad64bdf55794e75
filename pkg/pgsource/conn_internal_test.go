package pgsource

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// remoteAlert is what crypto/tls returns when the server sends an alert.
type remoteAlert string

func (a remoteAlert) Error() string { return string(a) }

func TestCertificateErrorsArePermanentAndNameTheSetting(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "db"}, Issuer: pkix.Name{CommonName: "Some CA"},
		DNSNames: []string{"db.example"}, NotAfter: time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)}
	wrap := func(err error) error {
		return fmt.Errorf("failed to connect: tls error: %w", errors.Join(errors.New("::1: refused"), err))
	}
	tests := []struct {
		name string
		err  error
		want string // "" = not permanent
	}{
		{"untrusted CA", wrap(x509.UnknownAuthorityError{Cert: cert}), "postgres.sslrootcert"},
		{"wrong host", wrap(x509.HostnameError{Certificate: cert, Host: "10.0.0.7"}), `not valid for host "10.0.0.7" (it names db.example): connect with a host name the certificate carries (postgres.dsn host)`},
		{"expired", wrap(x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}), "CN=db expired on 2020-01-02T00:00:00Z"},
		{"client certificate refused", wrap(&net.OpError{Op: "remote error", Err: remoteAlert("tls: unknown certificate authority")}), "postgres.sslcert"},
		{"wrong password", wrap(&pgconn.PgError{Code: "28P01"}), "postgres.password"},
		{"connection refused", wrap(&net.OpError{Op: "dial", Err: errors.New("connection refused")}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != (tt.want != "") {
				t.Fatalf("IsPermanent = %v", got)
			}
			if tt.want != "" && !strings.Contains(describe(tt.err).Error(), tt.want) {
				t.Errorf("describe: %v; want %q in it", describe(tt.err), tt.want)
			}
		})
	}
}
