package check

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// checkPostgresSecurity reports the connection's TLS (version, cipher, whether the server's
// certificate was verified) and how the role authenticated; it warns on plaintext and unverified TLS.
func checkPostgresSecurity(ctx context.Context, conn *pgx.Conn, p config.PostgresConfig, f serverFacts, r *Report) {
	var ssl bool
	var version, cipher, clientDN, systemUser string
	if err := conn.QueryRow(ctx, `SELECT ssl, coalesce(version, ''), coalesce(cipher, ''), coalesce(client_dn, '')
		FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl, &version, &cipher, &clientDN); err != nil {
		r.add(Warn, "security", "grant the role access to pg_stat_ssl (pg_read_all_stats) to see the connection's TLS", "postgres: cannot read pg_stat_ssl: %v", err)
		return
	}
	if f.versionNum >= 160000 { // SYSTEM_USER: the authentication method and identity
		_ = conn.QueryRow(ctx, `SELECT coalesce(system_user, '')`).Scan(&systemUser)
	}
	t := p.TLS()
	who := "user " + f.user
	switch {
	case systemUser != "":
		who += " (authenticated as " + systemUser + ")"
	case clientDN != "":
		who += " (client certificate " + clientDN + ")"
	}
	const fix = "set postgres.sslmode: verify-full and postgres.sslrootcert to the CA bundle that signs the server's certificate (docs/security.md)"
	switch {
	case !ssl:
		r.add(Warn, "security", fix, "postgres: plaintext connection (no TLS, sslmode %s): the changes and the password travel unencrypted; %s", t.Mode, who)
	case !t.Verified():
		r.add(Warn, "security", fix, "postgres: %s (%s) but the server's certificate is NOT verified (sslmode %s): anyone on the path can impersonate the server; %s", version, cipher, t.Mode, who)
	case !t.HostVerified():
		r.add(Warn, "security", "set postgres.sslmode: verify-full (checks that the certificate names the host you connect to)",
			"postgres: %s (%s), the server's certificate is signed by a trusted CA but its host name is not checked (sslmode %s); %s", version, cipher, t.Mode, who)
	default:
		root := t.RootCert
		if root == "" {
			root = "the system trust store"
		}
		r.add(OK, "security", "", "postgres: %s (%s), server certificate verified (sslmode %s, CA %s); %s", version, cipher, t.Mode, root, who)
	}
}

// checkKafkaSecurity connects once with the configured TLS and SASL and reports the connection's
// security, with a WARN for each unsafe aspect. It returns the client the other Kafka checks use, or
// nil (after a FAIL) when no connection could be made.
func checkKafkaSecurity(ctx context.Context, k config.KafkaConfig, r *Report) *kafkaclient.Client {
	kc, err := kafkaclient.New(ctx, kafkaclient.FromConfig(k))
	if err != nil {
		r.add(Fail, "security", fixOf(err, "fix the kafka.tls and kafka.sasl settings"), "kafka: %v", err)
		return nil
	}
	info, err := kc.Probe(ctx)
	if err != nil {
		var e *kafkaclient.Error
		if errors.As(err, &e) && e.Permanent {
			r.add(Fail, "security", fixOf(err, ""), "kafka: cannot connect securely to %v: %v", k.Brokers, err)
		} else {
			r.add(Fail, "kafka", "check kafka.brokers, that the brokers run and are reachable from here, that their advertised.listeners resolve from here, and kafka.tls/kafka.sasl for the listener's security protocol",
				"no broker of %v answered: %v", k.Brokers, err)
		}
		return nil
	}
	r.add(OK, "security", "", "kafka %s", info)
	for _, w := range kc.Warnings() {
		r.add(Warn, "security", w.Fix, "kafka: %s", w.Msg)
	}
	return kc
}

// fixOf names the setting of an *Error as the fix.
func fixOf(err error, fallback string) string {
	var e *kafkaclient.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("fix %s (see the message; docs/security.md)", e.Setting)
	}
	return fallback
}
