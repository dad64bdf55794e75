package kafkaclient

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/pgcdc/pgcdc/config"
)

// Settings say how to reach and authenticate to a Kafka cluster. They mirror the kafka section of
// the configuration (FromConfig) and hold no kafka-go type.
type Settings struct {
	Brokers     []string // bootstrap brokers, host:port
	ClientID    string
	DialTimeout time.Duration // one connection's bound, TLS and SASL included; default 10s
	Security    Security
}

// Security is the TLS and SASL part of Settings (kafka.tls and kafka.sasl).
type Security struct {
	TLS  TLS
	SASL SASL
}

// TLS mirrors kafka.tls.
type TLS struct {
	Enabled            bool
	CAFile             string // PEM CAs; "": the system's trust store
	CertFile, KeyFile  string // client certificate and key (mutual TLS), re-read at each handshake
	ServerName         string // "": each broker's host name
	MinVersion         string // "1.2" (default) or "1.3"
	InsecureSkipVerify bool
}

// SASL mirrors kafka.sasl.
type SASL struct {
	Mechanism    string // "", plain, scram-sha-256, scram-sha-512, aws-msk-iam, oauthbearer
	Username     string
	Password     Secret
	PasswordFile string // re-read for every new connection (rotation without restart)
	AWSRegion    string
	OAuth        OAuth
}

// OAuth mirrors kafka.sasl.oauth.
type OAuth struct {
	TokenURL         string
	ClientID         string
	ClientSecret     Secret
	ClientSecretFile string // re-read for every token
	Scope            string
	Extensions       map[string]string
	CAFile           string // the token endpoint's CAs; "": the system's trust store
}

// FromConfig maps the kafka section of the configuration to Settings.
func FromConfig(k config.KafkaConfig) Settings {
	return Settings{Brokers: append([]string(nil), k.Brokers...), ClientID: k.ClientID, Security: SecurityFromConfig(k)}
}

// SecurityFromConfig maps kafka.tls and kafka.sasl to Security.
func SecurityFromConfig(k config.KafkaConfig) Security {
	t, s, o := k.TLS, k.SASL, k.SASL.OAuth
	return Security{
		TLS: TLS{Enabled: t.Enabled, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
			MinVersion: t.MinVersion, InsecureSkipVerify: t.InsecureSkipVerify},
		SASL: SASL{Mechanism: s.Mechanism, Username: s.Username, Password: Secret(s.Password), PasswordFile: s.PasswordFile, AWSRegion: s.AWSRegion,
			OAuth: OAuth{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: Secret(o.ClientSecret), ClientSecretFile: o.ClientSecretFile,
				Scope: o.Scope, Extensions: maps.Clone(o.Extensions), CAFile: o.CAFile}},
	}
}

// Secret is a password or client secret. It prints, formats and marshals as "xxxxx" (or "" when
// empty), so a Settings value that ends up in a log line or an error reveals nothing; Reveal
// returns the value for authentication.
type Secret string

const redacted = "xxxxx"

// Reveal returns the secret itself. Never log it.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from showing the secret.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format keeps every fmt verb (%s, %v, %q, %x, ...) from showing the secret.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, s.String()) }

// MarshalJSON keeps JSON encoders (zerolog's Interface among them) from showing the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText keeps text encoders (YAML among them) from showing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// resolve returns the secret from the value or the file (read now), naming key in errors.
func resolve(key string, value Secret, file string) (string, error) {
	return config.ResolveSecret(key, value.Reveal(), file)
}
