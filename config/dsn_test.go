package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConnStringAndRedactedDSN(t *testing.T) {
	const secret = "s3cr3t"
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("  "+secret+"  \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      PostgresConfig
		conn     string // want ConnString
		connErr  string // or its error
		redacted string // want RedactedDSN
	}{
		{name: "url without password", cfg: PostgresConfig{DSN: "postgres://u@h:5432/db?sslmode=disable"},
			conn: "postgres://u@h:5432/db?sslmode=disable", redacted: "postgres://u@h:5432/db?sslmode=disable"},
		{name: "url with password in user info", cfg: PostgresConfig{DSN: "postgres://u:" + secret + "@h/db"},
			conn: "postgres://u:" + secret + "@h/db", redacted: "postgres://u:xxxxx@h/db"},
		{name: "postgresql scheme, password in query", cfg: PostgresConfig{DSN: "postgresql://u@h/db?password=" + secret + "&sslmode=require"},
			conn: "postgresql://u@h/db?password=" + secret + "&sslmode=require", redacted: "postgresql://u@h/db?password=xxxxx&sslmode=require"},
		{name: "url plus Password", cfg: PostgresConfig{DSN: "postgres://u@h/db", Password: secret},
			conn: "postgres://u:" + secret + "@h/db", redacted: "postgres://u@h/db"},
		{name: "url plus Password needing escapes", cfg: PostgresConfig{DSN: "postgres://u@h/db", Password: "p@ss/w:rd"},
			conn: "postgres://u:p%40ss%2Fw%3Ard@h/db", redacted: "postgres://u@h/db"},
		{name: "url without user plus Password", cfg: PostgresConfig{DSN: "postgres://h/db?sslmode=disable", Password: secret},
			conn: "postgres://h/db?sslmode=disable&password=" + secret, redacted: "postgres://h/db?sslmode=disable"},
		{name: "url plus PasswordFile", cfg: PostgresConfig{DSN: "postgres://u@h/db", PasswordFile: pwFile},
			conn: "postgres://u:" + secret + "@h/db", redacted: "postgres://u@h/db"},
		{name: "url with password plus Password", cfg: PostgresConfig{DSN: "postgres://u:" + secret + "@h/db", Password: "other"},
			connErr: "postgres.dsn: contains a password", redacted: "postgres://u:xxxxx@h/db"},
		{name: "kv without password", cfg: PostgresConfig{DSN: "host=h user=u dbname=db"},
			conn: "host=h user=u dbname=db", redacted: "host=h user=u dbname=db"},
		{name: "kv with password", cfg: PostgresConfig{DSN: "host=h password=" + secret + " user=u"},
			conn: "host=h password=" + secret + " user=u", redacted: "host=h password=xxxxx user=u"},
		{name: "kv with quoted password and spaces around =", cfg: PostgresConfig{DSN: "host=h password = 'a " + secret + " \\' b' user=u"},
			conn: "host=h password = 'a " + secret + " \\' b' user=u", redacted: "host=h password=xxxxx user=u"},
		{name: "kv plus Password", cfg: PostgresConfig{DSN: "host=h user=u", Password: secret},
			conn: "host=h user=u password=" + secret, redacted: "host=h user=u"},
		{name: "kv plus Password needing quotes", cfg: PostgresConfig{DSN: "host=h user=u", Password: "it's " + secret},
			conn: `host=h user=u password='it\'s ` + secret + `'`, redacted: "host=h user=u"},
		{name: "kv plus PasswordFile", cfg: PostgresConfig{DSN: "host=h", PasswordFile: pwFile},
			conn: "host=h password=" + secret, redacted: "host=h"},
		{name: "kv with password plus PasswordFile", cfg: PostgresConfig{DSN: "password=" + secret, PasswordFile: pwFile},
			connErr: "postgres.dsn: contains a password", redacted: "password=xxxxx"},
		{name: "both Password and PasswordFile", cfg: PostgresConfig{DSN: "host=h", Password: secret, PasswordFile: pwFile},
			connErr: "postgres.password_file: set either", redacted: "host=h"},
		{name: "unreadable PasswordFile", cfg: PostgresConfig{DSN: "host=h", PasswordFile: "/nonexistent/pw"},
			connErr: "postgres.password_file: cannot read /nonexistent/pw", redacted: "host=h"},
		{name: "empty DSN", cfg: PostgresConfig{}, connErr: "postgres.dsn: required", redacted: ""},
		{name: "bad kv", cfg: PostgresConfig{DSN: "host=h " + secret},
			connErr: "postgres.dsn: missing", redacted: "(unparseable DSN, redacted)"},
		{name: "unterminated quote", cfg: PostgresConfig{DSN: "host=h password='" + secret},
			connErr: "postgres.dsn: unterminated quoted value", redacted: "(unparseable DSN, redacted)"},
		{name: "bad url", cfg: PostgresConfig{DSN: "postgres://u:" + secret + "@h:port/db"},
			connErr: "postgres.dsn: not a valid postgres:// URL", redacted: "postgres://(unparseable DSN, redacted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tt.cfg.ConnString()
			if tt.connErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.connErr) {
					t.Errorf("ConnString error = %v, want %q", err, tt.connErr)
				}
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("ConnString error reveals the password: %v", err)
				}
			} else if err != nil || conn != tt.conn {
				t.Errorf("ConnString = %q, %v; want %q", conn, err, tt.conn)
			}
			red := tt.cfg.RedactedDSN()
			if red != tt.redacted {
				t.Errorf("RedactedDSN = %q, want %q", red, tt.redacted)
			}
			if strings.Contains(red, secret) || (tt.cfg.Password != "" && strings.Contains(red, tt.cfg.Password)) {
				t.Errorf("RedactedDSN reveals the password: %q", red)
			}
			// Validation agrees with ConnString and never shows the password.
			c := valid()
			c.Postgres = tt.cfg
			c.Postgres.Slot, c.Postgres.Publication = "pgcdc", "pgcdc"
			c.Postgres.SpoolMaxBytes, c.Postgres.StatusInterval, c.Postgres.ConnectTimeout = GiB, 1, 1
			verr := c.Validate()
			if (verr == nil) != (tt.connErr == "") {
				t.Errorf("Validate = %v, ConnString error %q", verr, tt.connErr)
			}
			if verr != nil && strings.Contains(verr.Error(), secret) {
				t.Errorf("Validate reveals the password: %v", verr)
			}
			if r := c.Redacted(); strings.Contains(r.Postgres.DSN+r.Postgres.Password, secret) {
				t.Errorf("Redacted reveals the password: %+v", r.Postgres)
			}
		})
	}
}

func TestConnStringRoundTripsKV(t *testing.T) {
	// What ConnString writes parses back to the same password.
	for _, pw := range []string{"plain", "with space", `back\slash`, "quote'd", "=eq=", ""} {
		c := PostgresConfig{DSN: "host=h", Password: pw}
		s, err := c.ConnString()
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := parseKV(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		got := ""
		for _, p := range pairs {
			if p.key == "password" {
				got = p.value
			}
		}
		if got != pw {
			t.Errorf("password %q came back as %q from %q", pw, got, s)
		}
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	crlf := filepath.Join(dir, "crlf")
	if err := os.WriteFile(crlf, []byte("pw\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, err := (PostgresConfig{PasswordFile: crlf}).ResolvePassword(); err != nil || pw != "pw" {
		t.Errorf("crlf: %q %v", pw, err)
	}
	if _, err := (PostgresConfig{PasswordFile: empty}).ResolvePassword(); err == nil || !strings.Contains(err.Error(), empty+": first line is empty") {
		t.Errorf("empty: %v", err)
	}
}
