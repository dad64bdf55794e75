package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// buildTLS returns the broker TLS configuration (nil when TLS is off). The client certificate is
// loaded now, to report a bad file at once, and again at every handshake, so that a renewed
// certificate is used without a restart.
func buildTLS(t TLS) (*tls.Config, *x509.Certificate, error) {
	if !t.Enabled {
		return nil, nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the user's explicit, warned-about choice
	switch t.MinVersion {
	case "", "1.2":
	case "1.3":
		c.MinVersion = tls.VersionTLS13
	default:
		return nil, nil, &Error{Setting: "kafka.tls.min_version", Permanent: true, Msg: fmt.Sprintf("invalid value %q (allowed: 1.2, 1.3)", t.MinVersion)}
	}
	pool, err := loadCAs("kafka.tls.ca_file", t.CAFile)
	if err != nil {
		return nil, nil, err
	}
	c.RootCAs = pool
	var leaf *x509.Certificate
	if t.CertFile != "" || t.KeyFile != "" {
		first, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, nil, err
		}
		leaf = first.Leaf
		certFile, keyFile := t.CertFile, t.KeyFile
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cur, err := loadKeyPair(certFile, keyFile); err == nil {
				return cur, nil
			}
			return first, nil // a file being replaced right now: the one that worked
		}
	}
	return c, leaf, nil
}

// loadCAs reads a PEM bundle into a pool; "" gives nil (the system's trust store).
func loadCAs(key, path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Setting: key, Permanent: true, Msg: fmt.Sprintf("cannot read %s", path), Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &Error{Setting: key, Permanent: true, Msg: fmt.Sprintf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)}
	}
	return pool, nil
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, &Error{Setting: "kafka.tls.cert_file", Permanent: true, Msg: "kafka.tls.cert_file and kafka.tls.key_file go together"}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// The error text of LoadX509KeyPair never contains key material.
		return nil, &Error{Setting: "kafka.tls.cert_file", Permanent: true, Err: err,
			Msg: fmt.Sprintf("cannot load the client certificate %s with its key kafka.tls.key_file %s", certFile, keyFile)}
	}
	return &pair, nil
}
