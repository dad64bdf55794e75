package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecurityValidation(t *testing.T) {
	pem := writeFile(t, "ca.pem", "-----BEGIN CERTIFICATE-----\n")
	pwFile := writeFile(t, "pw", "file-secret\n")
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // "key: message part"; none: valid
	}{
		{"defaults", func(c *Config) {}, nil},
		{"tls full", func(c *Config) {
			c.Kafka.TLS = KafkaTLSConfig{Enabled: true, CAFile: pem, CertFile: pem, KeyFile: pem, ServerName: "b", MinVersion: "1.3"}
		}, nil},
		{"tls key without cert", func(c *Config) { c.Kafka.TLS = KafkaTLSConfig{Enabled: true, KeyFile: pem} }, []string{"kafka.tls.cert_file: kafka.tls.cert_file and kafka.tls.key_file go together"}},
		{"tls setting without enabled", func(c *Config) { c.Kafka.TLS.CAFile = pem }, []string{"kafka.tls.enabled: is false but kafka.tls.ca_file is set"}},
		{"tls bad version", func(c *Config) { c.Kafka.TLS = KafkaTLSConfig{Enabled: true, MinVersion: "1.1"} }, []string{"kafka.tls.min_version: invalid value \"1.1\""}},
		{"tls unreadable ca", func(c *Config) { c.Kafka.TLS = KafkaTLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"} }, []string{"kafka.tls.ca_file: cannot read /nonexistent/ca.pem"}},
		{"scram", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "p"}
		}, nil},
		{"scram password file", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "scram-sha-256", Username: "u", PasswordFile: pwFile}
		}, nil},
		{"plain without password", func(c *Config) { c.Kafka.SASL = KafkaSASLConfig{Mechanism: "plain", Username: "u"} }, []string{"kafka.sasl.password: required for mechanism plain: set PGCDC_KAFKA_SASL_PASSWORD"}},
		{"plain without user", func(c *Config) { c.Kafka.SASL = KafkaSASLConfig{Mechanism: "plain", Password: "p"} }, []string{"kafka.sasl.username: required"}},
		{"both password and file", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "plain", Username: "u", Password: "p", PasswordFile: pwFile}
		}, []string{"kafka.sasl.password_file: set either kafka.sasl.password"}},
		{"unreadable password file", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "plain", Username: "u", PasswordFile: "/nonexistent/pw"}
		}, []string{"kafka.sasl.password_file: cannot read /nonexistent/pw"}},
		{"unknown mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "gssapi" }, []string{"kafka.sasl.mechanism: invalid value \"gssapi\""}},
		{"user without mechanism", func(c *Config) { c.Kafka.SASL.Username = "u" }, []string{"kafka.sasl.mechanism: required when"}},
		{"msk iam", func(c *Config) {
			c.Kafka.TLS.Enabled = true
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "aws-msk-iam", AWSRegion: "eu-west-1"}
		}, nil},
		{"msk iam without tls", func(c *Config) { c.Kafka.SASL = KafkaSASLConfig{Mechanism: "aws-msk-iam"} }, []string{"kafka.tls.enabled: must be true for kafka.sasl.mechanism aws-msk-iam"}},
		{"region without msk", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "plain", Username: "u", Password: "p", AWSRegion: "x"}
		}, []string{"kafka.sasl.aws_region: only used with"}},
		{"oauth", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "oauthbearer", OAuth: KafkaOAuthConfig{TokenURL: "https://idp/token", ClientID: "c", ClientSecret: "s",
				Extensions: map[string]string{"logicalCluster": "lkc-1"}}}
		}, nil},
		{"oauth incomplete", func(c *Config) {
			c.Kafka.SASL = KafkaSASLConfig{Mechanism: "oauthbearer", OAuth: KafkaOAuthConfig{TokenURL: "ftp://x", Extensions: map[string]string{"auth": "x", "a-b": "y"}}}
		}, []string{"kafka.sasl.oauth.token_url: invalid URL", "kafka.sasl.oauth.client_id: required", "kafka.sasl.oauth.client_secret: required",
			"kafka.sasl.oauth.extensions: invalid extension name", "kafka.sasl.oauth.extensions: invalid extension name"}},
		{"pg verify-full", func(c *Config) {
			c.Postgres.SSLMode, c.Postgres.SSLRootCert, c.Postgres.SSLCert, c.Postgres.SSLKey = "verify-full", pem, pem, pem
		}, nil},
		{"pg system roots", func(c *Config) { c.Postgres.SSLRootCert = "system" }, nil},
		{"pg bad mode", func(c *Config) { c.Postgres.SSLMode = "verify" }, []string{"postgres.sslmode: invalid value \"verify\""}},
		{"pg cert without key", func(c *Config) { c.Postgres.SSLCert = pem }, []string{"postgres.sslcert: postgres.sslcert and postgres.sslkey go together"}},
		{"pg unreadable root", func(c *Config) { c.Postgres.SSLRootCert = "/nonexistent/root.crt" }, []string{"postgres.sslrootcert: cannot read"}},
		{"pg disable with cert", func(c *Config) { c.Postgres.SSLMode, c.Postgres.SSLRootCert = "disable", pem }, []string{"postgres.sslmode: is disable but"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := c.Validate()
			var got []string
			for _, fe := range FieldErrors(err) {
				got = append(got, fe.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems %q, want %q", len(got), got, tt.want)
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("no problem starting %q in %q", w, got)
				}
			}
			for _, g := range got {
				if strings.Contains(g, "file-secret") {
					t.Errorf("a problem reveals the secret: %s", g)
				}
			}
		})
	}
}

func TestConnStringTLS(t *testing.T) {
	tests := []struct {
		name, dsn                   string
		mode, root, cert, key, pass string
		want, wantErr               string
	}{
		{name: "url", dsn: "postgres://u@h/db", mode: "verify-full", root: "/ca.pem", cert: "/c.pem", key: "/k.pem",
			want: "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fca.pem&sslcert=%2Fc.pem&sslkey=%2Fk.pem"},
		{name: "url with query and password", dsn: "postgres://u@h/db?application_name=x", mode: "require", pass: "pw",
			want: "postgres://u:pw@h/db?application_name=x&sslmode=require"},
		{name: "kv", dsn: "host=h user=u", mode: "verify-ca", root: "/my certs/ca.pem",
			want: "host=h user=u sslmode=verify-ca sslrootcert='/my certs/ca.pem'"},
		{name: "same value in dsn", dsn: "host=h sslmode=verify-full", mode: "verify-full", want: "host=h sslmode=verify-full"},
		{name: "conflict url", dsn: "postgres://u@h/db?sslmode=disable", mode: "verify-full", wantErr: "postgres.sslmode: postgres.dsn sets sslmode too"},
		{name: "conflict kv", dsn: "host=h sslrootcert=/a", root: "/b", wantErr: "postgres.sslrootcert: postgres.dsn sets sslrootcert too"},
		{name: "nothing", dsn: "host=h", want: "host=h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PostgresConfig{DSN: tt.dsn, SSLMode: tt.mode, SSLRootCert: tt.root, SSLCert: tt.cert, SSLKey: tt.key, Password: tt.pass}
			got, err := p.ConnString()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ConnString = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestPostgresTLSEffective(t *testing.T) {
	t.Setenv("PGSSLMODE", "")
	t.Setenv("PGSSLROOTCERT", "")
	tests := []struct {
		p                    PostgresConfig
		env                  string
		mode                 string
		verified, hostVerify bool
	}{
		{PostgresConfig{DSN: "host=h"}, "", "prefer", false, false},
		{PostgresConfig{DSN: "host=h"}, "require", "require", false, false},
		{PostgresConfig{DSN: "postgres://h/db?sslmode=verify-ca"}, "", "verify-ca", true, false},
		{PostgresConfig{DSN: "host=h sslmode=require", SSLRootCert: "/ca"}, "", "require", true, false},
		{PostgresConfig{DSN: "host=h", SSLMode: "verify-full"}, "disable", "verify-full", true, true},
		{PostgresConfig{DSN: "host=h", SSLRootCert: "system"}, "", "verify-full", true, true},
	}
	for _, tt := range tests {
		t.Setenv("PGSSLMODE", tt.env)
		got := tt.p.TLS()
		if got.Mode != tt.mode || got.Verified() != tt.verified || got.HostVerified() != tt.hostVerify {
			t.Errorf("%+v (PGSSLMODE %q): %+v verified %v host %v; want %s %v %v", tt.p, tt.env, got, got.Verified(), got.HostVerified(), tt.mode, tt.verified, tt.hostVerify)
		}
	}
}

func TestSecretsFromEnvAndRedacted(t *testing.T) {
	secretFile := writeFile(t, "secret", "  from-file  \n")
	env := append(append([]string(nil), minimalEnv...),
		"PGCDC_KAFKA_TLS_ENABLED=true",
		"PGCDC_KAFKA_SASL_MECHANISM=oauthbearer",
		"PGCDC_KAFKA_SASL_OAUTH_TOKEN_URL=https://idp.example/token",
		"PGCDC_KAFKA_SASL_OAUTH_CLIENT_ID=pgcdc",
		"PGCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET_FILE="+secretFile,
		"PGCDC_KAFKA_SASL_OAUTH_EXTENSIONS=logicalCluster=lkc-1,identityPoolId=pool-2",
	)
	cfg, err := Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := cfg.Kafka.SASL.OAuth.ResolveClientSecret(); err != nil || s != "from-file" {
		t.Errorf("client secret %q, %v", s, err)
	}
	if cfg.Kafka.SASL.OAuth.Extensions["identityPoolId"] != "pool-2" {
		t.Errorf("extensions %v", cfg.Kafka.SASL.OAuth.Extensions)
	}
	cfg.Kafka.SASL.Password = "sasl-pw"
	cfg.Kafka.SASL.OAuth.ClientSecret = "oauth-secret"
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"sasl-pw", "oauth-secret"} {
		if strings.Contains(string(out), s) {
			t.Errorf("Redacted shows %s:\n%s", s, out)
		}
	}
	if cfg.Kafka.SASL.Password != "sasl-pw" {
		t.Error("Redacted modified its receiver")
	}
}
