package kafkaclient

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/tlsdiag"
)

// Error is a connection failure explained: the setting the user must fix (or check), what is wrong,
// and whether retrying can help. Its text never contains a secret.
type Error struct {
	Setting   string // e.g. "kafka.tls.ca_file"
	Msg       string
	Err       error  // the cause, for errors.Is/As
	Permanent bool   // no retry can cure it: the configuration (or the broker's) must change
	Broker    string // the broker's address, when known
}

func (e *Error) Error() string {
	s := "kafka: " + e.Setting + ": " + e.Msg
	var detail []string
	if e.Broker != "" {
		detail = append(detail, "broker "+e.Broker)
	}
	if e.Err != nil {
		detail = append(detail, e.Err.Error())
	}
	if len(detail) > 0 {
		s += " (" + strings.Join(detail, ": ") + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or an error it wraps) is an *Error that no retry can cure.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// Explain turns a connection or authentication failure into an *Error naming the setting to fix
// when it recognises the cause (certificate not trusted, wrong host name, expired certificate,
// client certificate refused, listener without TLS, credentials refused, mechanism not enabled); it
// returns err unchanged otherwise.
func (c *Client) Explain(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e // without the wrappers of kafka-go, which repeat the address
	}
	if x := explainTLS(err, c.s.Security.TLS, "broker"); x != nil {
		return x
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafka.SASLAuthenticationFailed:
			return &Error{Setting: credentialSettings(c.s.Security.SASL.Mechanism), Permanent: true, Err: err,
				Msg: fmt.Sprintf("the broker refused the %s credentials: check them, and that the broker knows this user", mechanismName(c.s.Security.SASL.Mechanism))}
		case kafka.UnsupportedSASLMechanism:
			return &Error{Setting: "kafka.sasl.mechanism", Permanent: true, Err: err,
				Msg: fmt.Sprintf("the broker's listener does not offer %s: use a mechanism its sasl.enabled.mechanisms lists, or the port of a listener that offers it", mechanismName(c.s.Security.SASL.Mechanism))}
		case kafka.IllegalSASLState:
			return &Error{Setting: "kafka.sasl.mechanism", Permanent: true, Err: err,
				Msg: "the broker's listener does not expect SASL here: remove kafka.sasl.mechanism, or use the port of a SASL listener"}
		}
	}
	if !c.s.Security.TLS.Enabled && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		return &Error{Setting: "kafka.tls.enabled", Err: err,
			Msg: "the broker closed the connection at once; if its listener is SSL or SASL_SSL set kafka.tls.enabled: true (and kafka.sasl for SASL)"}
	}
	return err
}

// explainTLS recognises certificate and handshake failures. peer is "broker" or "token endpoint".
func explainTLS(err error, t TLS, peer string) *Error {
	caSetting := "kafka.tls.ca_file"
	if peer != "broker" {
		caSetting = "kafka.sasl.oauth.ca_file"
	}
	p := tlsdiag.Diagnose(err)
	e := &Error{Permanent: true, Err: err}
	switch p.Kind {
	case tlsdiag.UntrustedCA:
		issuer := ""
		if p.Issuer != "" {
			issuer = " (issued by " + p.Issuer + ")"
		}
		e.Setting = caSetting
		e.Msg = fmt.Sprintf("the %s's certificate%s is not signed by a trusted CA: put the CA certificate that signed it in %s", peer, issuer, caSetting)
	case tlsdiag.WrongHost:
		fix := "connect with a name the certificate carries (kafka.brokers; the brokers' advertised.listeners), or set kafka.tls.server_name to it"
		e.Setting = "kafka.brokers"
		switch {
		case peer != "broker":
			e.Setting, fix = "kafka.sasl.oauth.token_url", "use the host name the certificate carries in kafka.sasl.oauth.token_url"
		case t.ServerName != "":
			e.Setting, fix = "kafka.tls.server_name", "set kafka.tls.server_name to a name the certificate carries"
		}
		e.Msg = fmt.Sprintf("the %s's certificate is not valid for %q (it names %s): %s", peer, p.Host, p.Names, fix)
	case tlsdiag.Expired:
		e.Setting = "kafka.tls" // nothing to change in pgcdc: the certificate must be renewed
		if peer != "broker" {
			e.Setting = "kafka.sasl.oauth.token_url"
		}
		e.Msg = fmt.Sprintf("the %s's certificate %s: renew the %s's certificate", peer, p.ExpiryText(), peer)
	case tlsdiag.Invalid:
		e.Setting = caSetting
		e.Msg = fmt.Sprintf("the %s's certificate is not valid (%s): fix it on the %s, or check %s", peer, p.Detail, peer, caSetting)
	case tlsdiag.NotTLS:
		e.Setting = "kafka.tls.enabled"
		if peer != "broker" {
			e.Setting = "kafka.sasl.oauth.token_url"
		}
		e.Msg = fmt.Sprintf("the %s does not speak TLS on this port: use its TLS port, or (brokers) set kafka.tls.enabled: false for a PLAINTEXT or SASL_PLAINTEXT listener", peer)
	case tlsdiag.Refused:
		e.Setting = "kafka.tls.cert_file"
		switch {
		case strings.Contains(p.Detail, "protocol version"):
			e.Setting = "kafka.tls.min_version"
			e.Msg = fmt.Sprintf("the %s refused the TLS version: lower kafka.tls.min_version, or upgrade the %s", peer, peer)
		case t.CertFile == "":
			e.Msg = fmt.Sprintf("the %s ended the TLS handshake (%s): it requires a client certificate (ssl.client.auth=required): set kafka.tls.cert_file and kafka.tls.key_file", peer, p.Detail)
		default:
			e.Msg = fmt.Sprintf("the %s refused pgcdc's client certificate (%s): use a certificate signed by a CA the %s trusts (its ssl.truststore), not expired", peer, p.Detail, peer)
		}
	default:
		return nil
	}
	return e
}

// credentialSettings names the settings that hold a mechanism's credentials.
func credentialSettings(mechanism string) string {
	switch mechanism {
	case "aws-msk-iam":
		return "kafka.sasl.mechanism aws-msk-iam (the AWS credentials)"
	case "oauthbearer":
		return "kafka.sasl.oauth"
	}
	return "kafka.sasl.username/kafka.sasl.password"
}

// mechanismName is the SASL name of a kafka.sasl.mechanism value.
func mechanismName(mechanism string) string {
	switch mechanism {
	case "aws-msk-iam":
		return "AWS_MSK_IAM"
	case "":
		return "none"
	}
	return strings.ToUpper(mechanism)
}
