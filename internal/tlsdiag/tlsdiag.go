// Package tlsdiag tells why a TLS connection failed (untrusted CA, wrong host name, expired
// certificate, a peer that refused the handshake, a peer that does not speak TLS), so that the
// Kafka and PostgreSQL clients can name the setting to fix. Such failures are permanent: no retry
// cures them.
package tlsdiag

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Kind is a cause of a TLS failure.
type Kind int

// Causes.
const (
	None        Kind = iota // not a TLS failure pgcdc recognises
	UntrustedCA             // the certificate is not signed by a trusted CA
	WrongHost               // the certificate does not name the host connected to
	Expired                 // the certificate expired (or is not valid yet)
	Invalid                 // the certificate is invalid for another reason
	Refused                 // the peer ended the handshake with an alert (e.g. it refused the client certificate)
	NotTLS                  // the peer does not speak TLS
)

// Problem is a diagnosed TLS failure.
type Problem struct {
	Kind    Kind
	Issuer  string    // UntrustedCA: the certificate's issuer
	Host    string    // WrongHost: the name that was checked
	Names   string    // WrongHost: the names the certificate carries
	Subject string    // Expired: the certificate's subject
	Expiry  time.Time // Expired: its NotAfter
	Detail  string    // Invalid: why; Refused: the alert
}

// Diagnose looks through err's chain for a recognised TLS failure.
func Diagnose(err error) Problem {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.As(err, &unknown):
		p := Problem{Kind: UntrustedCA}
		if unknown.Cert != nil {
			p.Issuer = unknown.Cert.Issuer.String()
		}
		return p
	case errors.As(err, &host):
		p := Problem{Kind: WrongHost, Host: host.Host}
		if c := host.Certificate; c != nil {
			names := append([]string(nil), c.DNSNames...)
			for _, ip := range c.IPAddresses {
				names = append(names, ip.String())
			}
			p.Names = strings.Join(names, ", ")
		}
		return p
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired && invalid.Cert != nil {
			return Problem{Kind: Expired, Subject: invalid.Cert.Subject.String(), Expiry: invalid.Cert.NotAfter}
		}
		return Problem{Kind: Invalid, Detail: invalid.Detail}
	case errors.As(err, &record):
		return Problem{Kind: NotTLS}
	case errors.As(err, &op) && op.Op == "remote error":
		return Problem{Kind: Refused, Detail: op.Err.Error()}
	}
	return Problem{}
}

// ExpiryText says when the certificate expired, next to this machine's clock (a wrong clock is
// the other cause).
func (p Problem) ExpiryText() string {
	return fmt.Sprintf("%s expired on %s (or is not valid yet; this machine's clock says %s)",
		p.Subject, p.Expiry.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
}
