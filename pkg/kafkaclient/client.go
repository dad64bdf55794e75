package kafkaclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Client turns Settings into kafka-go's connection objects. It is safe for concurrent use; build one
// per process (or per command) with New and take as many Transports and Dialers from it as needed.
type Client struct {
	s       Settings
	tls     *tls.Config       // nil: plaintext
	leaf    *x509.Certificate // the client certificate, when mutual TLS
	mech    sasl.Mechanism    // nil: no SASL
	awsCred aws.CredentialsProvider
}

// New checks the settings and loads what they name (CA bundle, client certificate, password file,
// the AWS configuration), failing with an *Error naming the setting. ctx bounds the AWS
// configuration's loading; nothing connects yet.
func New(ctx context.Context, s Settings) (*Client, error) {
	if len(s.Brokers) == 0 {
		return nil, &Error{Setting: "kafka.brokers", Permanent: true, Msg: "no broker configured"}
	}
	if s.DialTimeout <= 0 {
		s.DialTimeout = 10 * time.Second
	}
	c := &Client{s: s}
	var err error
	if c.tls, c.leaf, err = buildTLS(s.Security.TLS); err != nil {
		return nil, err
	}
	if c.mech, c.awsCred, err = buildMechanism(ctx, s.Security.SASL); err != nil {
		return nil, err
	}
	return c, nil
}

// Brokers returns the bootstrap brokers.
func (c *Client) Brokers() []string { return append([]string(nil), c.s.Brokers...) }

// Addr is the bootstrap address for kafka.Client and kafka.Writer.
func (c *Client) Addr() net.Addr { return kafka.TCP(c.s.Brokers...) }

// Transport returns a new kafka.Transport (its own connection pool) for kafka.Client and
// kafka.Writer: TLS and SASL as configured, on every connection it opens. Callers may adjust its
// MetadataTTL, IdleTimeout and the like; they must not set its TLS, SASL or Dial.
func (c *Client) Transport() *kafka.Transport {
	return &kafka.Transport{Dial: c.dialFunc(nil), DialTimeout: c.s.DialTimeout, ClientID: c.s.ClientID, SASL: c.mech}
}

// Dialer returns a new kafka.Dialer for kafka.Reader, kafka.ConsumerGroup and kafka.DialLeader.
func (c *Client) Dialer() *kafka.Dialer {
	return c.dialer(nil)
}

func (c *Client) dialer(observe func(tls.ConnectionState)) *kafka.Dialer {
	return &kafka.Dialer{ClientID: c.s.ClientID, Timeout: c.s.DialTimeout, DialFunc: c.dialFunc(observe), SASLMechanism: c.mech}
}

// dialFunc opens a TCP connection and, with TLS, completes the handshake before returning, so that a
// certificate problem comes back as an *Error naming the setting to fix. observe, when set, sees
// each handshake's state.
func (c *Client) dialFunc(observe func(tls.ConnectionState)) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if c.tls == nil {
			return raw, nil
		}
		cfg := c.tls
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				host = address
			}
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		conn := tls.Client(raw, cfg)
		if err := conn.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			if x := explainTLS(err, c.s.Security.TLS, "broker"); x != nil {
				x.Broker = address
				return nil, x
			}
			return nil, err
		}
		if observe != nil {
			observe(conn.ConnectionState())
		}
		return conn, nil
	}
}

// Ping opens one connection to a bootstrap broker (TLS and SASL included) and closes it, returning
// the explained error of the last broker tried when none accepts.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Probe(ctx)
	return err
}
