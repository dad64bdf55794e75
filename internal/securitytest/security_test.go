package securitytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Start-up failures must end long before the connect timeouts, which the runs set to 5 minutes.
const failFast = 90 * time.Second

// world is one pgcdc configuration: its own database (owned by the PostgreSQL role), slot and topic
// prefix, and the PGCDC_* variables that reach them.
type world struct {
	e        *Env
	name     string
	adminDSN string // superuser, to write and inspect
	slot     string
	prefix   string
	vars     map[string]string
}

// pgAuth says how pgcdc authenticates to PostgreSQL.
type pgAuth int

const (
	pgPassword     pgAuth = iota // scram-sha-256, password from PGCDC_POSTGRES_PASSWORD
	pgPasswordFile               // scram-sha-256, password from postgres.password_file
	pgCert                       // cert authentication
)

// newWorld creates the database and grants the Kafka principal the least-privilege ACLs on the
// topic prefix. kafka holds the PGCDC_KAFKA_* variables of the setup.
func newWorld(t *testing.T, e *Env, name string, auth pgAuth, principal string, kafka map[string]string) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role := PGUser
	if auth == pgCert {
		role = PGCertUser
	}
	db := "sec_" + name
	adminDSN, err := e.NewDatabase(ctx, db, role)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{e: e, name: name, adminDSN: adminDSN, slot: "slot_" + name, prefix: "sec_" + name}
	if principal != "" {
		if err := e.Grant(ctx, LeastPrivilegeACLs(principal, w.prefix)); err != nil {
			t.Fatalf("grant %s: %v", principal, err)
		}
	}
	w.vars = map[string]string{
		"PGCDC_POSTGRES_DSN":             fmt.Sprintf("postgres://%s@localhost:%d/%s", role, e.PGPort(), db),
		"PGCDC_POSTGRES_SSLMODE":         "verify-full",
		"PGCDC_POSTGRES_SSLROOTCERT":     e.CAFile,
		"PGCDC_POSTGRES_SLOT":            w.slot,
		"PGCDC_POSTGRES_STATUS_INTERVAL": "300ms",
		"PGCDC_POSTGRES_CONNECT_TIMEOUT": "5m",
		"PGCDC_KAFKA_CONNECT_TIMEOUT":    "5m",
		"PGCDC_KAFKA_TOPIC_PREFIX":       w.prefix,
		"PGCDC_METRICS_LISTEN":           "off",
		"PGCDC_LOG_LEVEL":                "trace",
	}
	switch auth {
	case pgPassword:
		w.vars["PGCDC_POSTGRES_PASSWORD"] = PGPassword
	case pgPasswordFile:
		w.vars["PGCDC_POSTGRES_PASSWORD_FILE"] = writeSecret(t, PGPassword)
	case pgCert:
		w.vars["PGCDC_POSTGRES_SSLCERT"] = e.PGClientCert
		w.vars["PGCDC_POSTGRES_SSLKEY"] = e.PGClientKey
	}
	for k, v := range kafka {
		w.vars[k] = v
	}
	return w
}

// writeSecret writes a secret file (a mounted secret's shape: the value and a newline).
func writeSecret(t *testing.T, secret string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *world) with(overrides map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range w.vars {
		out[k] = v
	}
	for k, v := range overrides {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func (w *world) topic() string { return w.prefix + ".public.items" }

// stream runs pgcdc, writes rows and proves they reach Kafka and the slot is confirmed past them.
func (w *world) stream(t *testing.T, rows int) string {
	t.Helper()
	p := start(t, "run "+w.name, w.vars, "run")
	p.waitLog(`"message":"streaming"`, 90*time.Second)
	var values []string
	for i := 1; i <= rows; i++ {
		values = append(values, fmt.Sprintf("(%d, 'row %d')", i, i))
	}
	pgExec(t, w.adminDSN, "INSERT INTO public.items VALUES "+strings.Join(values, ", "))
	lsn := currentLSN(t, w.adminDSN)
	msgs, err := testenv.ReadTopic(context.Background(), []string{w.e.Listeners[Plaintext]}, w.topic(), rows, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < rows {
		t.Fatalf("%d records, want %d", len(msgs), rows)
	}
	waitConfirmed(t, w.adminDSN, w.slot, lsn, time.Minute)
	if code := p.stop(); code != 0 {
		t.Fatalf("pgcdc exited %d on SIGTERM", code)
	}
	return p.out.String()
}

// fails runs pgcdc run, expects it to stop with exit 1 well before the connect timeouts with a
// message holding each of want, and proves nothing was confirmed.
func (w *world) fails(t *testing.T, vars map[string]string, want ...string) {
	t.Helper()
	before := confirmedFlush(t, w.adminDSN, w.slot)
	started := time.Now()
	p := start(t, "run "+w.name, vars, "run")
	code := p.wait(failFast)
	out := p.out.String()
	t.Logf("exit %d after %s", code, time.Since(started).Round(time.Millisecond))
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, tail(out, 4000))
	}
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Errorf("the output lacks %q:\n%s", s, tail(out, 4000))
		}
	}
	if after := confirmedFlush(t, w.adminDSN, w.slot); after != before {
		t.Errorf("confirmed_flush_lsn moved from %X to %X", before, after)
	}
}

// check runs pgcdc check and returns its exit code and report.
func (w *world) check(t *testing.T, vars map[string]string) (int, string) {
	t.Helper()
	return runCmd(t, "check "+w.name, vars, "check")
}

// finding reports whether the check output has a line of severity holding every part.
func finding(out, severity string, parts ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, severity+" ") {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

func requireFinding(t *testing.T, out, severity string, parts ...string) {
	t.Helper()
	if !finding(out, severity, parts...) {
		t.Errorf("no %s line with %q in:\n%s", severity, parts, out)
	}
}

func TestSecurity(t *testing.T) {
	testenv.Require(t)
	buildPgcdc() // in the background while the servers start
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	e, err := Start(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(pgcdcPath(t))) }) // the binary is this test's alone
	pgcdcPath(t)
	t.Logf("servers and binary ready in %s", time.Since(began).Round(time.Millisecond))

	saslSSL := func(mech, user, secretVar, secret string) map[string]string {
		return map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[SASLSSL], "PGCDC_KAFKA_TLS_ENABLED": "true", "PGCDC_KAFKA_TLS_CA_FILE": e.CAFile,
			"PGCDC_KAFKA_SASL_MECHANISM": mech, "PGCDC_KAFKA_SASL_USERNAME": user, secretVar: secret}
	}
	scramTLS := saslSSL("scram-sha-512", ScramUser, "PGCDC_KAFKA_SASL_PASSWORD", ScramPassword)
	oauth := map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[OAuth], "PGCDC_KAFKA_SASL_MECHANISM": "oauthbearer",
		"PGCDC_KAFKA_SASL_OAUTH_TOKEN_URL": e.IdP.TokenURL, "PGCDC_KAFKA_SASL_OAUTH_CLIENT_ID": OAuthClient,
		"PGCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": OAuthSecret, "PGCDC_KAFKA_SASL_OAUTH_CA_FILE": e.CAFile}
	var scramWorld *world // streamed, then used by the commands below

	// Each combination streams through pgcdc run with the least-privilege ACLs, is acknowledged
	// and confirmed; pgcdc check reports its connections' security first.
	t.Run("streams", func(t *testing.T) {
		cases := []struct {
			name      string
			auth      pgAuth
			principal string
			kafka     map[string]string
			kafkaOK   []string // parts of check's OK security line for Kafka
			warn      []string // parts of a WARN security line
		}{
			{"scram512_tls", pgPassword, "User:" + ScramUser, scramTLS,
				[]string{"TLS 1.3", "broker certificate verified", "SASL SCRAM-SHA-512", "authenticated as User:" + ScramUser}, nil},
			{"scram256_tls_pgcert", pgCert, "User:" + ScramUser,
				saslSSL("scram-sha-256", ScramUser, "PGCDC_KAFKA_SASL_PASSWORD_FILE", writeSecret(t, ScramPassword)),
				[]string{"broker certificate verified", "SASL SCRAM-SHA-256"}, nil},
			{"plain_tls", pgPasswordFile, "User:" + PlainUser, saslSSL("plain", PlainUser, "PGCDC_KAFKA_SASL_PASSWORD", PlainPassword),
				[]string{"broker certificate verified", "SASL PLAIN", "User:" + PlainUser}, nil},
			{"mtls_pgcert", pgCert, "User:" + MTLSPrincipal, map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[MTLS], "PGCDC_KAFKA_TLS_ENABLED": "true",
				"PGCDC_KAFKA_TLS_CA_FILE": e.CAFile, "PGCDC_KAFKA_TLS_CERT_FILE": e.KafkaCert, "PGCDC_KAFKA_TLS_KEY_FILE": e.KafkaKey, "PGCDC_KAFKA_TLS_MIN_VERSION": "1.3"},
				[]string{"TLS 1.3", "client certificate CN=" + MTLSPrincipal, "no SASL"}, nil},
			{"plain_plaintext", pgPassword, "User:" + PlainUser, map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[SASLPlain],
				"PGCDC_KAFKA_SASL_MECHANISM": "plain", "PGCDC_KAFKA_SASL_USERNAME": PlainUser, "PGCDC_KAFKA_SASL_PASSWORD": PlainPassword},
				[]string{"plaintext (no TLS)", "SASL PLAIN"}, []string{"kafka.tls.enabled is false"}},
			{"oauth", pgPassword, "User:" + OAuthSubject, oauth,
				[]string{"SASL OAUTHBEARER", "User:" + OAuthSubject}, []string{"oauthbearer without TLS"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, e, c.name, c.auth, c.principal, c.kafka)
				code, out := w.check(t, w.vars)
				if code != 0 || finding(out, "FAIL") {
					t.Errorf("check: exit %d with FAIL lines:\n%s", code, out)
				}
				requireFinding(t, out, "OK", append([]string{"security", "kafka"}, c.kafkaOK...)...)
				requireFinding(t, out, "OK", "security", "postgres: TLS", "server certificate verified (sslmode verify-full")
				if c.warn != nil {
					requireFinding(t, out, "WARN", append([]string{"security"}, c.warn...)...)
				}
				w.stream(t, 3)
				if c.name == "scram512_tls" {
					scramWorld = w
				}
			})
		}
		// insecure_skip_verify works (here even with the wrong host name) and is warned about at
		// every start and by check; so is PostgreSQL TLS without verification.
		t.Run("skip_verify", func(t *testing.T) {
			t.Parallel()
			k := saslSSL("scram-sha-512", ScramUser, "PGCDC_KAFKA_SASL_PASSWORD", ScramPassword)
			k["PGCDC_KAFKA_BROKERS"] = strings.Replace(e.Listeners[SASLSSL], "localhost", "127.0.0.1", 1)
			delete(k, "PGCDC_KAFKA_TLS_CA_FILE")
			k["PGCDC_KAFKA_TLS_INSECURE_SKIP_VERIFY"] = "true"
			w := newWorld(t, e, "skip_verify", pgPassword, "User:"+ScramUser, k)
			w.vars["PGCDC_POSTGRES_SSLMODE"] = "require"
			delete(w.vars, "PGCDC_POSTGRES_SSLROOTCERT")
			_, out := w.check(t, w.vars)
			requireFinding(t, out, "OK", "security", "broker certificate NOT verified")
			requireFinding(t, out, "WARN", "security", "kafka.tls.insecure_skip_verify is true")
			requireFinding(t, out, "WARN", "security", "postgres", "NOT verified (sslmode require)")
			log := w.stream(t, 2)
			if !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, "kafka.tls.insecure_skip_verify is true") {
				t.Errorf("no start-up warning about insecure_skip_verify:\n%s", tail(log, 3000))
			}
		})
		// The broker ends SASL sessions after connections.max.reauth.ms; kafka-go does not
		// re-authenticate, so the next request on such a connection fails: pgcdc retries it on a
		// new connection (with OAUTHBEARER, a new token) and keeps streaming, every batch confirmed.
		for _, c := range []struct {
			name  string
			kafka map[string]string
			oauth bool
		}{
			{"reauth_scram", map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[Reauth], "PGCDC_KAFKA_SASL_MECHANISM": "scram-sha-512",
				"PGCDC_KAFKA_SASL_USERNAME": ScramUser, "PGCDC_KAFKA_SASL_PASSWORD": ScramPassword}, false},
			{"reauth_oauth", oauth, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				principal := "User:" + ScramUser
				if c.oauth {
					principal = "User:" + OAuthSubject
				}
				w := newWorld(t, e, c.name, pgPassword, principal, c.kafka)
				p := start(t, "run "+c.name, w.vars, "run")
				p.waitLog(`"message":"streaming"`, 90*time.Second)
				tokens := len(e.IdP.Issued())
				const rounds = 4
				for i := 1; i <= rounds; i++ {
					time.Sleep(ReauthMs*time.Millisecond + time.Second) // let the sessions of the open connections end
					pgExec(t, w.adminDSN, fmt.Sprintf("INSERT INTO public.items VALUES (%d, 'round %d')", i, i))
					lsn := currentLSN(t, w.adminDSN)
					if _, err := testenv.ReadTopic(context.Background(), []string{e.Listeners[Plaintext]}, w.topic(), i, time.Minute); err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
					waitConfirmed(t, w.adminDSN, w.slot, lsn, time.Minute)
				}
				out := p.out.String()
				if n := strings.Count(out, "kafka write failed; retrying"); n < rounds/2 {
					t.Errorf("%d writes met an expired session, want at least %d (did the fault happen?):\n%s", n, rounds/2, tail(out, 4000))
				}
				if code := p.stop(); code != 0 {
					t.Fatalf("exit %d", code)
				}
				if c.oauth {
					if n := len(e.IdP.Issued()) - tokens; n < rounds/2 {
						t.Errorf("%d tokens fetched during %d rounds: the new connections did not take fresh tokens", n, rounds)
					}
				}
			})
		}
	})

	// Wrong password, untrusted CA, wrong host name, expired certificate (and a few more): pgcdc
	// stops at once with a message naming the setting to fix, and confirms nothing.
	t.Run("faults", func(t *testing.T) {
		kafkaCases := []struct {
			name  string
			kafka map[string]string
			want  []string
		}{
			{"kafka_wrong_password", saslSSL("scram-sha-512", ScramUser, "PGCDC_KAFKA_SASL_PASSWORD", "wrong-"+ScramPassword),
				[]string{"kafka.sasl.username/kafka.sasl.password", "refused the SCRAM-SHA-512 credentials"}},
			{"kafka_untrusted_ca", merge(scramTLS, map[string]string{"PGCDC_KAFKA_TLS_CA_FILE": e.OtherCAFile}),
				[]string{"kafka.tls.ca_file", "not signed by a trusted CA"}},
			{"kafka_wrong_host", merge(scramTLS, map[string]string{"PGCDC_KAFKA_BROKERS": strings.Replace(e.Listeners[SASLSSL], "localhost", "127.0.0.1", 1)}),
				[]string{"kafka.brokers", `not valid for \"127.0.0.1\"`}},
			{"kafka_expired", map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[Expired], "PGCDC_KAFKA_TLS_ENABLED": "true", "PGCDC_KAFKA_TLS_CA_FILE": e.CAFile},
				[]string{"kafka: kafka.tls: the broker's certificate CN=expired-broker expired on"}},
			{"kafka_no_client_cert", map[string]string{"PGCDC_KAFKA_BROKERS": e.Listeners[MTLS], "PGCDC_KAFKA_TLS_ENABLED": "true", "PGCDC_KAFKA_TLS_CA_FILE": e.CAFile},
				[]string{"kafka.tls.cert_file"}},
			{"kafka_oauth_wrong_secret", merge(oauth, map[string]string{"PGCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET": "wrong-" + OAuthSecret}),
				[]string{"kafka.sasl.oauth.client_secret", "refused the client"}},
			{"kafka_no_acl", saslSSL("scram-sha-512", NobodyUser, "PGCDC_KAFKA_SASL_PASSWORD", NobodyPassword),
				[]string{"Authorization Failed", "docs/security.md"}},
		}
		for _, c := range kafkaCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, e, c.name, pgPassword, "", c.kafka)
				w.fails(t, w.vars, c.want...)
			})
		}
		pgCases := []struct {
			name      string
			auth      pgAuth
			overrides map[string]string
			want      []string
		}{
			{"pg_wrong_password", pgPassword, map[string]string{"PGCDC_POSTGRES_PASSWORD": "wrong-" + PGPassword}, []string{"28P01", "postgres.password"}},
			{"pg_untrusted_ca", pgPassword, map[string]string{"PGCDC_POSTGRES_SSLROOTCERT": e.OtherCAFile}, []string{"postgres.sslrootcert", "not signed by a trusted CA"}},
			{"pg_wrong_host", pgPassword, map[string]string{"PGCDC_POSTGRES_DSN": fmt.Sprintf("postgres://%s@127.0.0.1:%d/sec_pg_wrong_host", PGUser, e.PGPort())},
				[]string{"postgres.dsn host", `not valid for host \"127.0.0.1\"`}},
			{"pg_no_client_cert", pgCert, map[string]string{"PGCDC_POSTGRES_SSLCERT": "", "PGCDC_POSTGRES_SSLKEY": ""}, []string{"28000", "postgres.sslcert"}},
			// Go's TLS client does not even send a certificate the server's CA list excludes.
			{"pg_stranger_cert", pgCert, map[string]string{"PGCDC_POSTGRES_SSLCERT": e.PGStrangerCert, "PGCDC_POSTGRES_SSLKEY": e.PGStrangerKey},
				[]string{"28000", "postgres.sslcert"}},
		}
		for _, c := range pgCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, e, c.name, c.auth, "", scramTLS)
				w.fails(t, w.with(c.overrides), c.want...)
			})
		}
	})

	// PostgreSQL presents an expired certificate (the others' runs are over: the server is shared).
	t.Run("pg_expired", func(t *testing.T) {
		w := newWorld(t, e, "pg_expired", pgPassword, "User:"+ScramUser, scramTLS)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.UseExpiredPostgresCert(ctx, true); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := e.UseExpiredPostgresCert(ctx, false); err != nil {
				t.Error(err)
			}
		}()
		w.fails(t, w.vars, "postgres: the server's certificate CN=postgres-expired expired on", "renew the server's certificate")
		code, out := w.check(t, w.vars)
		if code != 1 || !finding(out, "FAIL", "postgres", "expired on") {
			t.Errorf("check with an expired server certificate: exit %d\n%s", code, out)
		}
	})

	// Every other command with the secured configuration, under the least-privilege ACLs: status,
	// replay (--config), slot drop, and a run with the metrics endpoint, scraped, then dumped
	// (SIGQUIT: every goroutine's stack, as a panic prints them).
	t.Run("commands", func(t *testing.T) {
		if scramWorld == nil {
			t.Skip("streams/scram512_tls failed")
		}
		w := scramWorld
		if code, out := runCmd(t, "status", w.vars, "status"); code != 0 || !strings.Contains(out, "slot             "+w.slot) {
			t.Errorf("status: exit %d\n%s", code, out)
		}
		if code, out := runCmd(t, "status --json", w.vars, "status", "--json"); code != 0 || !strings.Contains(out, `"slot":"`+w.slot+`"`) {
			t.Errorf("status --json: exit %d\n%s", code, out)
		}
		// replay with the kafka section from a file, the password from a file.
		cfgFile := filepath.Join(t.TempDir(), "replay.yaml")
		yaml := fmt.Sprintf("kafka:\n  brokers: [%q]\n  topic_prefix: %s\n  tls:\n    enabled: true\n    ca_file: %s\n  sasl:\n    mechanism: scram-sha-512\n    username: %s\n    password_file: %s\n",
			e.Listeners[SASLSSL], w.prefix, e.CAFile, ScramUser, writeSecret(t, ScramPassword))
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		target := "sec_replay_target"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		targetDSN, err := e.NewDatabase(ctx, target, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		pgExec(t, targetDSN, "DROP TABLE public.items")
		code, out := runCmd(t, "replay", map[string]string{"PGCDC_LOG_LEVEL": "trace"}, "replay", "--config", cfgFile, "--target", targetDSN,
			"--until-end", "--create-tables", "--log-level", "trace")
		if code != 0 {
			t.Fatalf("replay: exit %d\n%s", code, tail(out, 4000))
		}
		var n int
		withConn(t, targetDSN, func(ctx context.Context, conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT count(*) FROM public.items").Scan(&n)
		})
		if n != 3 {
			t.Errorf("replay applied %d rows, want 3", n)
		}
		if code, _ := runCmd(t, "slot drop", w.vars, "slot", "drop"); code != 2 {
			t.Errorf("slot drop without --confirm: exit %d", code)
		}
		runCmd(t, "version", nil, "version")
		// A configuration error with secrets set, and aws-msk-iam (credentials from the AWS
		// environment) against a listener that does not offer it.
		if code, _ := runCmd(t, "bad config", w.with(map[string]string{"PGCDC_KAFKA_SASL_MECHANISM": "kerberos"}), "check"); code != 2 {
			t.Errorf("check with an invalid mechanism: exit %d", code)
		}
		aws := w.with(map[string]string{"PGCDC_KAFKA_SASL_MECHANISM": "aws-msk-iam", "PGCDC_KAFKA_SASL_USERNAME": "", "PGCDC_KAFKA_SASL_PASSWORD": "",
			"AWS_ACCESS_KEY_ID": "AKIDPGCDCTEST", "AWS_SECRET_ACCESS_KEY": awsSecret, "AWS_REGION": "eu-west-1",
			"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
		code, out = runCmd(t, "check aws", aws, "check")
		if code != 1 || !finding(out, "FAIL", "kafka.sasl.mechanism", "AWS_MSK_IAM") {
			t.Errorf("aws-msk-iam against a SCRAM listener: exit %d\n%s", code, out)
		}

		// A run with the metrics endpoint: scrape it, then dump the goroutines.
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p := start(t, "run with metrics", w.with(map[string]string{"PGCDC_METRICS_LISTEN": addr}), "run")
		p.waitLog(`"message":"streaming"`, 90*time.Second)
		pgExec(t, w.adminDSN, "INSERT INTO public.items VALUES (100, 'after restart')")
		if _, err := testenv.ReadTopic(context.Background(), []string{e.Listeners[Plaintext]}, w.topic(), 4, time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			collected.add("GET "+path, httpGet(t, "http://"+addr+path))
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		collected.add("command line", string(cmdline))
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		p.wait(time.Minute)
		if !strings.Contains(p.out.String(), "goroutine ") {
			t.Errorf("no goroutine dump after SIGQUIT:\n%s", tail(p.out.String(), 2000))
		}
	})

	// No secret in anything pgcdc wrote: logs at trace level, check/status/replay output, error
	// messages, metrics, the goroutine dump, the command line.
	t.Run("no_secret_in_outputs", func(t *testing.T) {
		secrets := append(Secrets(), "wrong-"+ScramPassword, "wrong-"+OAuthSecret, "wrong-"+PGPassword, awsSecret)
		tokens := e.IdP.Issued()
		if len(tokens) == 0 {
			t.Error("the identity provider issued no token: the oauth runs did not happen")
		}
		for _, tok := range tokens {
			secrets = append(secrets, tok[strings.LastIndex(tok, ".")+1:]) // the signature part is unique to each token
		}
		outs := collected.all()
		total := 0
		for _, o := range outs {
			total += len(o.text)
		}
		if len(outs) < 30 || total < 50000 {
			t.Fatalf("only %d outputs (%d bytes) collected: the commands did not run", len(outs), total)
		}
		if leaks(fmt.Sprintf("x %s y", ScramPassword), secrets) == "" {
			t.Fatal("the search finds nothing even where a secret is")
		}
		for _, o := range outs {
			if s := leaks(o.text, secrets); s != "" {
				i := strings.Index(o.text, s)
				t.Errorf("%s shows a secret (%d bytes into it): ...%s...", o.label, i, o.text[max(0, i-200):i])
			}
		}
		t.Logf("searched %d outputs, %d bytes, for %d secrets", len(outs), total, len(secrets))
		if dir := os.Getenv("PGCDC_TEST_SECURITY_OUTPUTS"); dir != "" { // for reading them
			for i, o := range outs {
				name := fmt.Sprintf("%02d-%s.txt", i, strings.NewReplacer(" ", "_", "/", "_").Replace(o.label))
				_ = os.WriteFile(filepath.Join(dir, name), []byte(o.text), 0o644)
			}
		}
	})
}

const awsSecret = "aws-Secret-Key-3c4d5e6f7a8b"

func leaks(text string, secrets []string) string {
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			return s
		}
	}
	return ""
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
