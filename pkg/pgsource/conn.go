package pgsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/internal/tlsdiag"
)

// sessionParams fix the text output of values: pgoutput formats values with the walsender's
// settings, and the event encoder parses ISO dates, UTC offsets, postgres-style intervals and
// round-trip float digits.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"application_name":   "pgcdc",
}

// ParseConfig parses a connection string and applies pgcdc's session settings.
func ParseConfig(connString string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	for k, v := range sessionParams {
		if _, userSet := cfg.RuntimeParams[k]; userSet && k == "application_name" {
			continue // the user's application_name wins; the formatting settings never do
		}
		cfg.RuntimeParams[k] = v
	}
	return cfg, nil
}

// ConnectSQL opens a regular connection, retrying transient failures until ctx ends; an
// authentication or authorization failure ends it at once.
func ConnectSQL(ctx context.Context, connString string) (*pgx.Conn, error) {
	pcfg, err := ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Config = *pcfg
	var conn *pgx.Conn
	err = retryConnect(ctx, func(ctx context.Context) error {
		var err error
		conn, err = pgx.ConnectConfig(ctx, cfg)
		return err
	})
	return conn, err
}

// ConnectReplication opens a logical replication connection (replication=database).
func ConnectReplication(ctx context.Context, connString string) (*pgconn.PgConn, error) {
	cfg, err := ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	var conn *pgconn.PgConn
	err = retryConnect(ctx, func(ctx context.Context) error {
		var err error
		conn, err = pgconn.ConnectConfig(ctx, cfg)
		return err
	})
	return conn, err
}

func retryConnect(ctx context.Context, connect func(context.Context) error) error {
	b := retry.New(200*time.Millisecond, 5*time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := connect(actx)
		cancel()
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			return describe(err)
		}
		if b.Wait(ctx) != nil {
			return fmt.Errorf("postgres: could not connect before the timeout (postgres.connect_timeout): %w", err)
		}
	}
}

// Permanent SQLSTATEs: no retry can cure them; the user must act.
var permanentCodes = map[string]string{
	"28P01": "authentication failed: check the user and password (postgres.dsn, postgres.password, PGCDC_POSTGRES_PASSWORD)",
	"28000": "the server refused this user (pg_hba.conf or role attributes): check pg_hba.conf (a hostssl line needs TLS: postgres.sslmode; cert authentication needs postgres.sslcert/sslkey with the role as CN), and that the role has LOGIN and REPLICATION",
	"42501": "permission denied: see docs/operations.md for the privileges pgcdc needs",
	"3D000": "the database does not exist: check postgres.dsn",
	"42704": "the object named above does not exist",
	"55000": "the object is not in the required state (e.g. the replication slot was invalidated)",
}

// IsPermanent reports whether err is a PostgreSQL error or a TLS certificate problem (untrusted
// CA, wrong host name, expired certificate, client certificate refused) that no retry can cure.
func IsPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if _, ok := permanentCodes[pgErr.Code]; ok {
			return true
		}
	}
	return tlsAdvice(err) != ""
}

// describe adds the advice for a permanent error.
func describe(err error) error {
	if advice := tlsAdvice(err); advice != "" {
		return fmt.Errorf("postgres: %s (%w)", advice, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if advice := permanentCodes[pgErr.Code]; advice != "" {
			return fmt.Errorf("postgres: %w (%s)", err, advice)
		}
	}
	return fmt.Errorf("postgres: %w", err)
}

// tlsAdvice names the setting to fix for a certificate problem, or "" when err is none.
func tlsAdvice(err error) string {
	p := tlsdiag.Diagnose(err)
	switch p.Kind {
	case tlsdiag.UntrustedCA:
		issuer := ""
		if p.Issuer != "" {
			issuer = " (issued by " + p.Issuer + ")"
		}
		return "the server's certificate" + issuer + " is not signed by a trusted CA: put the CA certificate that signed it in postgres.sslrootcert (a PEM bundle, e.g. the cloud provider's)"
	case tlsdiag.WrongHost:
		return fmt.Sprintf("the server's certificate is not valid for host %q (it names %s): connect with a host name the certificate carries (postgres.dsn host), or use postgres.sslmode verify-ca to skip the host name check", p.Host, p.Names)
	case tlsdiag.Expired:
		return "the server's certificate " + p.ExpiryText() + ": renew the server's certificate (pgcdc checks it under postgres.sslmode verify-ca and verify-full)"
	case tlsdiag.Invalid:
		return "the server's certificate is not valid (" + p.Detail + "): fix it on the server, or check postgres.sslrootcert"
	case tlsdiag.Refused:
		return "the server ended the TLS handshake (" + p.Detail + "): it refused pgcdc's client certificate: set postgres.sslcert and postgres.sslkey to a certificate signed by a CA in the server's ssl_ca_file, not expired"
	}
	return ""
}

// IsConnectionError reports whether err is a broken or refused connection (worth a reconnect).
func IsConnectionError(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded)
}

// CheckReplicationRole fails, naming the fix, when the connected role may not stream (no
// REPLICATION attribute, not a superuser): checked before start-up creates anything.
func CheckReplicationRole(ctx context.Context, conn *pgx.Conn) error {
	var user string
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&user, &ok); err != nil {
		return fmt.Errorf("postgres: read the role's attributes: %w", err)
	}
	if !ok {
		return fmt.Errorf("postgres: role %s has no REPLICATION attribute, which logical replication needs: ALTER ROLE %s REPLICATION (as a superuser), or connect as a role that has it (postgres.dsn)",
			user, pgx.Identifier{user}.Sanitize())
	}
	return nil
}

// ServerInfo is what pgcdc checks about the server before it starts.
type ServerInfo struct {
	Version          int // server_version_num
	WALLevel         string
	WALSenderTimeout time.Duration
	Database         string
}

// CheckServer reads and checks the server's settings: logical decoding needs wal_level=logical and
// pgcdc needs PostgreSQL 14 or newer (logical decoding messages, protocol v2 streaming).
func CheckServer(ctx context.Context, conn *pgx.Conn) (ServerInfo, error) {
	var info ServerInfo
	var versionNum, timeoutMs string
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num'), current_setting('wal_level'),
		(SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'), current_database()`).
		Scan(&versionNum, &info.WALLevel, &timeoutMs, &info.Database)
	if err != nil {
		return info, fmt.Errorf("postgres: read server settings: %w", err)
	}
	info.Version, _ = strconv.Atoi(versionNum)
	ms, _ := strconv.Atoi(timeoutMs)
	info.WALSenderTimeout = time.Duration(ms) * time.Millisecond
	if info.WALLevel != "logical" {
		return info, fmt.Errorf("postgres: wal_level is %q, logical decoding needs wal_level = logical: set it in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", info.WALLevel)
	}
	if info.Version < 140000 {
		return info, fmt.Errorf("postgres: server version %s is too old: pgcdc needs PostgreSQL 14 or newer", versionNum)
	}
	return info, nil
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
