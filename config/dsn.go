package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// redactedPassword replaces passwords in anything that may be logged.
const redactedPassword = "xxxxx"

// isURLDSN reports whether dsn is in libpq URI form.
func isURLDSN(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// parseURLDSN parses a URI DSN. Its error never contains the DSN (url.Parse
// errors quote the whole input, password included).
func parseURLDSN(dsn string) (*url.URL, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a valid postgres:// URL: %v", redactErr(err, dsn))
	}
	return u, nil
}

// redactErr drops the error text if it would reveal the DSN.
func redactErr(err error, dsn string) string {
	s := err.Error()
	if strings.Contains(s, dsn) || strings.Contains(s, "@") {
		return "malformed"
	}
	return s
}

// kvPair is one keyword=value setting of a key/value DSN.
type kvPair struct{ key, value string }

// parseKV parses a libpq keyword/value connection string:
// whitespace-separated key = value, values optionally single-quoted with \'
// and \\ escapes. Errors never contain values.
func parseKV(s string) ([]kvPair, error) {
	var out []kvPair
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
			i++
		}
		key := s[start:i]
		skip()
		if i >= len(s) || s[i] != '=' {
			// Do not quote the word: it may be part of an unquoted password
			// with a space in it.
			return nil, fmt.Errorf("missing \"=\" after the word at offset %d in the key=value connection string (quote values containing spaces: password='a b')", start)
		}
		if key == "" {
			return nil, fmt.Errorf("missing keyword before \"=\" at offset %d in the key=value connection string", start)
		}
		i++ // '='
		skip()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '\'' {
					closed = true
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted value for %q in the key=value connection string", key)
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out = append(out, kvPair{key, val.String()})
	}
}

// formatKV writes pairs back as a libpq keyword/value string, quoting values
// where needed.
func formatKV(pairs []kvPair) string {
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		v := p.value
		if v == "" || strings.ContainsAny(v, " \t\n\r'\\") {
			v = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
		}
		parts[i] = p.key + "=" + v
	}
	return strings.Join(parts, " ")
}

// dsnHasPassword reports whether the DSN carries a password itself.
func dsnHasPassword(dsn string) (bool, error) {
	if isURLDSN(dsn) {
		u, err := parseURLDSN(dsn)
		if err != nil {
			return false, err
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				return true, nil
			}
		}
		return u.Query().Has("password"), nil
	}
	pairs, err := parseKV(dsn)
	if err != nil {
		return false, err
	}
	for _, p := range pairs {
		if p.key == "password" {
			return true, nil
		}
	}
	return false, nil
}

// checkDSN validates the DSN's syntax.
func checkDSN(dsn string) error {
	_, err := dsnHasPassword(dsn)
	return err
}

// ResolvePassword returns the password from Password or PasswordFile ("" if
// neither is set). The file's first line, trimmed of blanks, is the password.
func (c PostgresConfig) ResolvePassword() (string, error) {
	return ResolveSecret("postgres.password", c.Password, c.PasswordFile)
}

// readSecretFile returns the first line, trimmed of blanks, of a secret file; key names the setting
// in errors (which never contain the file's content).
func readSecretFile(key, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", &FieldError{Key: key, Msg: fmt.Sprintf("cannot read %s: %v", path, unwrapPathErr(err))}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pw := strings.TrimSpace(line)
	if pw == "" {
		return "", &FieldError{Key: key, Msg: fmt.Sprintf("%s: first line is empty (it must hold the secret)", path)}
	}
	return pw, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ConnString returns the DSN with the password (from Password or PasswordFile)
// and the TLS settings (sslmode, sslrootcert, sslcert, sslkey) applied, for
// connecting; every PostgreSQL connection pgcdc opens is made from it. It is
// the DSN unchanged when none of them is set (libpq-style PGPASSWORD, .pgpass
// or PGSSLMODE may then supply them). A DSN that already contains a password
// together with Password or PasswordFile is an error, as are both Password
// and PasswordFile set, and a TLS keyword the DSN sets to another value. Never
// log the result; use RedactedDSN.
func (c PostgresConfig) ConnString() (string, error) {
	dsn, err := c.withPassword()
	if err != nil {
		return "", err
	}
	return addDSNParams(dsn, c.tlsParams())
}

func (c PostgresConfig) withPassword() (string, error) {
	if c.DSN == "" {
		return "", &FieldError{Key: "postgres.dsn", Msg: "required (set it in the file or " + EnvName("postgres.dsn") + ")"}
	}
	pw, err := c.ResolvePassword()
	if err != nil {
		return "", err
	}
	has, err := dsnHasPassword(c.DSN)
	if err != nil {
		return "", &FieldError{Key: "postgres.dsn", Msg: err.Error()}
	}
	if pw == "" {
		return c.DSN, nil
	}
	if has {
		return "", &FieldError{Key: "postgres.dsn", Msg: "contains a password and postgres.password or postgres.password_file is set too; keep the password in one place"}
	}
	if isURLDSN(c.DSN) {
		u, _ := parseURLDSN(c.DSN)
		if u.User != nil && u.User.Username() != "" {
			u.User = url.UserPassword(u.User.Username(), pw)
		} else {
			// No user name in the URL: a user info "":pw would set an empty
			// user, so pass the password as a query parameter instead.
			q := u.RawQuery
			if q != "" {
				q += "&"
			}
			u.RawQuery = q + "password=" + url.QueryEscape(pw)
		}
		return u.String(), nil
	}
	pairs, _ := parseKV(c.DSN)
	return formatKV(append(pairs, kvPair{"password", pw})), nil
}

// RedactedDSN returns the DSN with any password replaced by "xxxxx", safe to
// log. Both URL (user info and ?password=) and keyword/value forms are
// handled; a DSN that cannot be parsed is not shown at all.
func (c PostgresConfig) RedactedDSN() string {
	dsn := c.DSN
	if dsn == "" {
		return ""
	}
	if isURLDSN(dsn) {
		u, err := parseURLDSN(dsn)
		if err != nil {
			return "postgres://(unparseable DSN, redacted)"
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), redactedPassword)
			}
		}
		if u.RawQuery != "" {
			parts := strings.Split(u.RawQuery, "&")
			for i, p := range parts {
				k, _, _ := strings.Cut(p, "=")
				if uk, err := url.QueryUnescape(k); err == nil && uk == "password" || k == "password" {
					parts[i] = k + "=" + redactedPassword
				}
			}
			u.RawQuery = strings.Join(parts, "&")
		}
		return u.String()
	}
	pairs, err := parseKV(dsn)
	if err != nil {
		return "(unparseable DSN, redacted)"
	}
	for i := range pairs {
		if pairs[i].key == "password" {
			pairs[i].value = redactedPassword
		}
	}
	return formatKV(pairs)
}
