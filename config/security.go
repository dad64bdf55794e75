package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// KafkaTLSConfig configures TLS to the brokers (kafka.tls).
type KafkaTLSConfig struct {
	Enabled            bool   `yaml:"enabled"`              // default false: plaintext
	CAFile             string `yaml:"ca_file"`              // PEM bundle of the CAs that sign the brokers' certificates; "": the system's trust store
	CertFile           string `yaml:"cert_file"`            // client certificate (PEM) for mutual TLS; needs key_file
	KeyFile            string `yaml:"key_file"`             // its private key (PEM, unencrypted)
	ServerName         string `yaml:"server_name"`          // name the brokers' certificates must carry; "": each broker's host name
	MinVersion         string `yaml:"min_version"`          // "1.2" (default) | "1.3"
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // accept any certificate (warned about at every start)
}

// KafkaSASLConfig configures SASL authentication to the brokers (kafka.sasl).
type KafkaSASLConfig struct {
	Mechanism    string           `yaml:"mechanism"`     // "" (none) | plain | scram-sha-256 | scram-sha-512 | aws-msk-iam | oauthbearer
	Username     string           `yaml:"username"`      // plain, scram-*
	Password     string           `yaml:"password"`      // normally from env PGCDC_KAFKA_SASL_PASSWORD
	PasswordFile string           `yaml:"password_file"` // file whose first line (trimmed) is the password
	AWSRegion    string           `yaml:"aws_region"`    // aws-msk-iam: the cluster's region; "": from the AWS chain (AWS_REGION, profile)
	OAuth        KafkaOAuthConfig `yaml:"oauth"`         // oauthbearer
}

// KafkaOAuthConfig configures SASL/OAUTHBEARER: an OAuth 2 client-credentials grant against a
// token endpoint, a fresh token for each broker connection.
type KafkaOAuthConfig struct {
	TokenURL         string            `yaml:"token_url"`          // the identity provider's token endpoint (https://...)
	ClientID         string            `yaml:"client_id"`          // OAuth client id
	ClientSecret     string            `yaml:"client_secret"`      // normally from env PGCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET
	ClientSecretFile string            `yaml:"client_secret_file"` // file whose first line (trimmed) is the client secret
	Scope            string            `yaml:"scope"`              // requested scope(s), space-separated; "": none
	Extensions       map[string]string `yaml:"extensions"`         // SASL extensions sent with the token (e.g. Confluent Cloud's logicalCluster, identityPoolId)
	CAFile           string            `yaml:"ca_file"`            // PEM CAs of the token endpoint; "": the system's trust store
}

// SASL mechanisms (kafka.sasl.mechanism).
const (
	SASLPlain          = "plain"
	SASLScramSHA256    = "scram-sha-256"
	SASLScramSHA512    = "scram-sha-512"
	SASLAWSMSKIAM      = "aws-msk-iam"
	SASLOAuthBearer    = "oauthbearer"
	TLSVersion12       = "1.2"
	TLSVersion13       = "1.3"
	SSLRootCertOSTrust = "system"
)

// SSL modes (postgres.sslmode), as libpq's.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// ResolvePassword returns the SASL password from password or password_file ("" when neither is set).
func (s KafkaSASLConfig) ResolvePassword() (string, error) {
	return ResolveSecret("kafka.sasl.password", s.Password, s.PasswordFile)
}

// ResolveClientSecret returns the OAuth client secret from client_secret or client_secret_file.
func (o KafkaOAuthConfig) ResolveClientSecret() (string, error) {
	return ResolveSecret("kafka.sasl.oauth.client_secret", o.ClientSecret, o.ClientSecretFile)
}

// ResolveSecret returns value, or the first line (blanks trimmed) of file; key names the value's
// setting, whose file setting is key+"_file" (kafka.sasl.password, kafka.sasl.password_file).
// Setting both is an error; neither gives "". Errors name the setting, never the secret.
func ResolveSecret(key, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", &FieldError{Key: key + "_file", Msg: fmt.Sprintf("set either %s (%s) or %s_file, not both", key, EnvName(key), key)}
	case value != "":
		return value, nil
	case file != "":
		return readSecretFile(key+"_file", file)
	}
	return "", nil
}

func (t KafkaTLSConfig) validate(v *validator) {
	if !t.Enabled {
		for key, set := range map[string]bool{"ca_file": t.CAFile != "", "cert_file": t.CertFile != "", "key_file": t.KeyFile != "",
			"server_name": t.ServerName != "", "min_version": t.MinVersion != "", "insecure_skip_verify": t.InsecureSkipVerify} {
			if set {
				v.add("kafka.tls.enabled", "is false but kafka.tls.%s is set: set kafka.tls.enabled: true (or remove kafka.tls.%s)", key, key)
			}
		}
		return
	}
	switch t.MinVersion {
	case "", TLSVersion12, TLSVersion13:
	default:
		v.add("kafka.tls.min_version", "invalid value %q (allowed: 1.2, 1.3)", t.MinVersion)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add("kafka.tls.cert_file", "kafka.tls.cert_file and kafka.tls.key_file go together (the client certificate and its private key)")
	}
	v.readable("kafka.tls.ca_file", t.CAFile)
	v.readable("kafka.tls.cert_file", t.CertFile)
	v.readable("kafka.tls.key_file", t.KeyFile)
}

// saslExtensionKey is RFC 7628's key syntax (section 3.1); "auth" is reserved.
var saslExtensionKey = regexp.MustCompile(`^[A-Za-z]+$`)

func (s KafkaSASLConfig) validate(v *validator, tlsOn bool) {
	m := s.Mechanism
	if m == "" {
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.OAuth.TokenURL != "" {
			v.add("kafka.sasl.mechanism", "required when other kafka.sasl keys are set (plain, scram-sha-256, scram-sha-512, aws-msk-iam or oauthbearer)")
		}
		return
	}
	switch m {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		v.required("kafka.sasl.username", s.Username == "")
		if s.Password == "" && s.PasswordFile == "" {
			v.add("kafka.sasl.password", "required for mechanism %s: set %s or kafka.sasl.password_file", m, EnvName("kafka.sasl.password"))
		} else if _, err := s.ResolvePassword(); err != nil {
			v.errs = append(v.errs, err)
		}
	case SASLAWSMSKIAM:
		if !tlsOn {
			v.add("kafka.tls.enabled", "must be true for kafka.sasl.mechanism aws-msk-iam (MSK serves IAM authentication on its TLS listener, port 9098)")
		}
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			v.add("kafka.sasl.username", "not used by aws-msk-iam, which takes its credentials from the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, instance role); remove kafka.sasl.username/password")
		}
	case SASLOAuthBearer:
		o := s.OAuth
		if v.required("kafka.sasl.oauth.token_url", o.TokenURL == "") {
			if u, err := url.Parse(o.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				v.add("kafka.sasl.oauth.token_url", "invalid URL %q: want the token endpoint, https://host/path", o.TokenURL)
			}
		}
		v.required("kafka.sasl.oauth.client_id", o.ClientID == "")
		if o.ClientSecret == "" && o.ClientSecretFile == "" {
			v.add("kafka.sasl.oauth.client_secret", "required for mechanism oauthbearer: set %s or kafka.sasl.oauth.client_secret_file", EnvName("kafka.sasl.oauth.client_secret"))
		} else if _, err := o.ResolveClientSecret(); err != nil {
			v.errs = append(v.errs, err)
		}
		for k, val := range o.Extensions {
			if !saslExtensionKey.MatchString(k) || k == "auth" {
				v.add("kafka.sasl.oauth.extensions", "invalid extension name %q: letters only, and not \"auth\" (RFC 7628)", k)
			}
			if strings.ContainsRune(val, '\x01') {
				v.add("kafka.sasl.oauth.extensions", "extension %s: the value must not contain the byte 0x01", k)
			}
		}
		v.readable("kafka.sasl.oauth.ca_file", o.CAFile)
	default:
		v.add("kafka.sasl.mechanism", "invalid value %q (allowed: plain, scram-sha-256, scram-sha-512, aws-msk-iam, oauthbearer)", m)
	}
	if m != SASLAWSMSKIAM && s.AWSRegion != "" {
		v.add("kafka.sasl.aws_region", "only used with kafka.sasl.mechanism aws-msk-iam")
	}
	if m != SASLOAuthBearer && (s.OAuth.ClientID != "" || s.OAuth.ClientSecret != "" || s.OAuth.ClientSecretFile != "") {
		v.add("kafka.sasl.oauth.client_id", "only used with kafka.sasl.mechanism oauthbearer")
	}
}

// readable adds an error when path is set and cannot be read.
func (v *validator) readable(key, path string) {
	if path == "" {
		return
	}
	if _, err := os.ReadFile(path); err != nil {
		v.add(key, "cannot read %s: %v", path, unwrapPathErr(err))
	}
}

func (p PostgresConfig) validateTLS(v *validator) {
	if p.SSLMode != "" {
		v.oneOf("postgres.sslmode", p.SSLMode, sslModes...)
	}
	if (p.SSLCert == "") != (p.SSLKey == "") {
		v.add("postgres.sslcert", "postgres.sslcert and postgres.sslkey go together (the client certificate and its private key)")
	}
	if p.SSLRootCert != SSLRootCertOSTrust {
		v.readable("postgres.sslrootcert", p.SSLRootCert)
	}
	v.readable("postgres.sslcert", p.SSLCert)
	v.readable("postgres.sslkey", p.SSLKey)
	if p.SSLMode == "disable" && (p.SSLRootCert != "" || p.SSLCert != "") {
		v.add("postgres.sslmode", "is disable but postgres.sslrootcert or postgres.sslcert is set: use verify-full (or remove them)")
	}
}

// tlsParams are the libpq keywords ConnString applies from the postgres.ssl* settings.
func (c PostgresConfig) tlsParams() []kvPair {
	var out []kvPair
	for _, p := range []kvPair{{"sslmode", c.SSLMode}, {"sslrootcert", c.SSLRootCert}, {"sslcert", c.SSLCert}, {"sslkey", c.SSLKey}} {
		if p.value != "" {
			out = append(out, p)
		}
	}
	return out
}

// dsnParam returns the value of a libpq keyword in the DSN (URL query or key=value).
func dsnParam(dsn, key string) (string, bool) {
	if isURLDSN(dsn) {
		u, err := parseURLDSN(dsn)
		if err != nil {
			return "", false
		}
		q := u.Query()
		return q.Get(key), q.Has(key)
	}
	pairs, err := parseKV(dsn)
	if err != nil {
		return "", false
	}
	val, found := "", false
	for _, p := range pairs {
		if p.key == key {
			val, found = p.value, true
		}
	}
	return val, found
}

// addDSNParams adds libpq keywords to a DSN. A keyword the DSN sets already to another value is an
// error naming the setting (keep each setting in one place).
func addDSNParams(dsn string, params []kvPair) (string, error) {
	var add []kvPair
	for _, p := range params {
		if have, ok := dsnParam(dsn, p.key); ok {
			if have != p.value {
				return "", &FieldError{Key: "postgres." + p.key, Msg: fmt.Sprintf("postgres.dsn sets %s too, to another value; keep it in one place", p.key)}
			}
			continue
		}
		add = append(add, p)
	}
	if len(add) == 0 {
		return dsn, nil
	}
	if isURLDSN(dsn) {
		u, err := parseURLDSN(dsn)
		if err != nil {
			return "", &FieldError{Key: "postgres.dsn", Msg: err.Error()}
		}
		parts := []string{}
		if u.RawQuery != "" {
			parts = append(parts, u.RawQuery)
		}
		for _, p := range add {
			parts = append(parts, url.QueryEscape(p.key)+"="+url.QueryEscape(p.value))
		}
		u.RawQuery = strings.Join(parts, "&")
		return u.String(), nil
	}
	pairs, err := parseKV(dsn)
	if err != nil {
		return "", &FieldError{Key: "postgres.dsn", Msg: err.Error()}
	}
	return formatKV(append(pairs, add...)), nil
}

// PostgresTLS is the TLS a PostgreSQL connection of this configuration uses, as far as the
// configuration tells (the server may still refuse TLS under sslmode prefer or allow).
type PostgresTLS struct {
	Mode       string // effective sslmode: postgres.sslmode, else the DSN's, else PGSSLMODE, else prefer
	RootCert   string // effective sslrootcert ("" = none given)
	ClientCert string // effective sslcert
}

// Verified reports whether the server's certificate chain is checked.
func (t PostgresTLS) Verified() bool {
	return t.Mode == "verify-full" || t.Mode == "verify-ca" || (t.Mode == "require" && t.RootCert != "")
}

// HostVerified reports whether the server's host name is checked against its certificate.
func (t PostgresTLS) HostVerified() bool {
	return t.Mode == "verify-full" || t.RootCert == SSLRootCertOSTrust
}

// TLS returns the effective TLS settings (for check's report).
func (c PostgresConfig) TLS() PostgresTLS {
	pick := func(setting, key, env string) string {
		if setting != "" {
			return setting
		}
		if v, ok := dsnParam(c.DSN, key); ok {
			return v
		}
		return os.Getenv(env)
	}
	t := PostgresTLS{
		Mode:       pick(c.SSLMode, "sslmode", "PGSSLMODE"),
		RootCert:   pick(c.SSLRootCert, "sslrootcert", "PGSSLROOTCERT"),
		ClientCert: pick(c.SSLCert, "sslcert", "PGSSLCERT"),
	}
	if t.RootCert == SSLRootCertOSTrust {
		t.Mode = "verify-full" // libpq and pgx: sslrootcert=system implies verify-full
	}
	if t.Mode == "" {
		t.Mode = "prefer"
	}
	return t
}
