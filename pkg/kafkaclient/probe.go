package kafkaclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ConnInfo describes the security of a connection to a broker, for `pgcdc check`.
type ConnInfo struct {
	Broker     string
	TLS        bool
	TLSVersion string // "TLS 1.3"
	Cipher     string
	Verified   bool   // the broker's certificate chain and host name were verified
	ServerCert string // subject, issuer and expiry of the broker's certificate
	ClientCert string // subject of pgcdc's client certificate, when the broker asked for one
	SASL       string // SASL mechanism name ("" none)
	Principal  string // who the broker takes pgcdc for, where knowable ("User:pgcdc")
}

// String renders the connection's security on one line.
func (i ConnInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", i.Broker)
	if i.TLS {
		fmt.Fprintf(&b, "%s (%s), ", i.TLSVersion, i.Cipher)
		if i.Verified {
			fmt.Fprintf(&b, "broker certificate verified (%s)", i.ServerCert)
		} else {
			fmt.Fprintf(&b, "broker certificate NOT verified (%s)", i.ServerCert)
		}
		if i.ClientCert != "" {
			fmt.Fprintf(&b, ", client certificate %s", i.ClientCert)
		}
	} else {
		b.WriteString("plaintext (no TLS)")
	}
	if i.SASL != "" {
		fmt.Fprintf(&b, ", SASL %s", i.SASL)
	} else {
		b.WriteString(", no SASL")
	}
	if i.Principal != "" {
		fmt.Fprintf(&b, ", authenticated as %s", i.Principal)
	}
	return b.String()
}

// Probe connects to the bootstrap brokers in turn until one accepts a connection (TLS handshake
// and SASL authentication included) and describes that connection. The error, when none does, is
// the last broker's, explained (see Explain).
func (c *Client) Probe(ctx context.Context) (ConnInfo, error) {
	var last error
	for _, b := range c.s.Brokers {
		var (
			mu    sync.Mutex
			state *tls.ConnectionState
		)
		d := c.dialer(func(s tls.ConnectionState) {
			mu.Lock()
			state = &s
			mu.Unlock()
		})
		dctx, cancel := context.WithTimeout(ctx, c.s.DialTimeout)
		conn, err := d.DialContext(dctx, "tcp", b)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(c.s.DialTimeout))
			_, err = conn.ApiVersions() // the listener answers requests: authenticated
			_ = conn.Close()
		}
		cancel()
		if err != nil {
			last = c.Explain(err)
			continue
		}
		mu.Lock()
		info := c.describe(ctx, b, state)
		mu.Unlock()
		return info, nil
	}
	return ConnInfo{}, last
}

func (c *Client) describe(ctx context.Context, broker string, state *tls.ConnectionState) ConnInfo {
	info := ConnInfo{Broker: broker, SASL: mechanismName(c.s.Security.SASL.Mechanism)}
	if c.mech == nil {
		info.SASL = ""
	}
	clientCertUsed := false
	if state != nil {
		info.TLS = true
		info.TLSVersion = tls.VersionName(state.Version)
		info.Cipher = tls.CipherSuiteName(state.CipherSuite)
		info.Verified = !c.s.Security.TLS.InsecureSkipVerify
		if len(state.PeerCertificates) > 0 {
			p := state.PeerCertificates[0]
			info.ServerCert = fmt.Sprintf("%s, issued by %s, valid until %s", p.Subject, p.Issuer, p.NotAfter.UTC().Format("2006-01-02"))
		}
		if c.leaf != nil {
			// TLS 1.3 does not say whether the certificate was requested; the broker asks when its
			// listener has ssl.client.auth=required or requested.
			info.ClientCert = c.leaf.Subject.String()
			clientCertUsed = true
		}
	}
	switch c.s.Security.SASL.Mechanism {
	case "plain", "scram-sha-256", "scram-sha-512":
		info.Principal = "User:" + c.s.Security.SASL.Username
	case "oauthbearer":
		if m, ok := c.mech.(*oauthBearer); ok && m.lastSubject() != "" {
			info.Principal = "User:" + m.lastSubject() + " (the token's sub claim)"
		}
	case "aws-msk-iam":
		if src, err := awsSource(ctx, c.awsCred); err == nil {
			info.Principal = "the IAM identity of the AWS credentials from " + src
		}
	case "":
		switch {
		case clientCertUsed:
			info.Principal = "User:" + c.leaf.Subject.String() + " (the certificate's subject under the default ssl.principal.mapping.rules; the broker's rules may shorten it)"
		default:
			info.Principal = "User:ANONYMOUS (no authentication)"
		}
	}
	return info
}

// Warning is one unsafe aspect of the configured connection and how to remove it.
type Warning struct {
	Msg string // names the setting
	Fix string
}

// Warnings lists what makes the configured connection unsafe: plaintext, unverified TLS, a password
// or token sent in clear text, a client certificate about to expire. pgcdc logs them at every start
// and check reports them.
func (c *Client) Warnings() []Warning {
	var w []Warning
	t, s := c.s.Security.TLS, c.s.Security.SASL
	switch {
	case !t.Enabled:
		w = append(w, Warning{"kafka.tls.enabled is false: records travel to the brokers unencrypted, and nothing proves the brokers are who they claim",
			"enable TLS: kafka.tls.enabled: true (and kafka.tls.ca_file unless the system trust store has the brokers' CA); docs/security.md"})
	case t.InsecureSkipVerify:
		w = append(w, Warning{"kafka.tls.insecure_skip_verify is true: broker certificates are NOT verified, so anyone on the network path can impersonate the brokers and read the records and credentials",
			"set kafka.tls.insecure_skip_verify: false and kafka.tls.ca_file to the CA that signs the brokers' certificates"})
	}
	if !t.Enabled && s.Mechanism == "plain" {
		w = append(w, Warning{"kafka.sasl.mechanism plain without TLS sends the password in clear text", "enable kafka.tls, or use scram-sha-512"})
	}
	if !t.Enabled && s.Mechanism == "oauthbearer" {
		w = append(w, Warning{"kafka.sasl.mechanism oauthbearer without TLS sends bearer tokens in clear text", "enable kafka.tls"})
	}
	if s.Mechanism == "oauthbearer" && strings.HasPrefix(strings.ToLower(s.OAuth.TokenURL), "http://") {
		w = append(w, Warning{"kafka.sasl.oauth.token_url is http://: the client secret travels in clear text", "use the identity provider's https:// token endpoint"})
	}
	if c.leaf != nil {
		if left := time.Until(c.leaf.NotAfter); left < 30*24*time.Hour {
			w = append(w, Warning{fmt.Sprintf("kafka.tls.cert_file: the client certificate %s expires on %s", c.leaf.Subject, c.leaf.NotAfter.UTC().Format(time.RFC3339)),
				"renew it (pgcdc reads the file again at every new connection)"})
		}
	}
	return w
}
