package securitytest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testcerts"
	"github.com/pgcdc/pgcdc/internal/testenv"
)

// The principals of the test servers and their secrets. Tests look for these secrets in every
// output pgcdc produces: none may appear.
const (
	ScramUser      = "pgcdc" // SCRAM-SHA-256 and SCRAM-SHA-512
	ScramPassword  = "scram-Pw-7f3a91c2"
	PlainUser      = "plainuser"
	PlainPassword  = "plain-Pw-42c8e0d5"
	NobodyUser     = "nobody" // SCRAM-SHA-512, no ACL at all
	NobodyPassword = "nobody-Pw-9d1b77a4"
	OAuthClient    = "pgcdc-client"
	OAuthSecret    = "oauth-Secret-5e6f1203"
	OAuthSubject   = "svc-pgcdc" // the tokens' sub claim: the broker's principal User:svc-pgcdc
	MTLSPrincipal  = "pgcdc-mtls"
	PGUser         = "pgcdc_repl" // scram-sha-256 over hostssl
	PGPassword     = "pg-Pw-0a9b8c7d"
	PGCertUser     = "pgcdc_cert" // cert authentication (its client certificate's CN)
)

// Secrets are every secret of the fixture.
func Secrets() []string {
	return []string{ScramPassword, PlainPassword, NobodyPassword, OAuthSecret, PGPassword}
}

// Listener names of the broker (keys of Env.Listeners).
const (
	Plaintext = "PLAINTEXT" // the admin's way in (User:ANONYMOUS, a super user)
	SASLSSL   = "SASLSSL"   // SASL_SSL: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN; certificate for "localhost" only
	MTLS      = "MTLS"      // SSL with ssl.client.auth=required; principal = the client certificate's CN
	SASLPlain = "SASLPLAIN" // SASL_PLAINTEXT: PLAIN
	OAuth     = "OAUTH"     // SASL_PLAINTEXT: OAUTHBEARER, tokens checked against the IdP's JWKS; connections.max.reauth.ms = ReauthMs
	Expired   = "EXPIRED"   // SSL with an expired certificate
	Reauth    = "REAUTH"    // SASL_PLAINTEXT: SCRAM-SHA-512 with connections.max.reauth.ms = ReauthMs
	ReauthMs  = 2000
)

// Env is one Kafka broker with a listener per security setup, an identity provider, and a
// PostgreSQL server that only accepts TLS (scram-sha-256 and cert authentication), with the
// certificates and secrets to reach them.
type Env struct {
	Dir            string
	CA, OtherCA    *testcerts.CA
	CAFile         string // signs every server and client certificate
	OtherCAFile    string // a CA nobody uses: "untrusted CA"
	KafkaCert      string // mTLS client certificate (CN=pgcdc-mtls) and key
	KafkaKey       string
	PGClientCert   string // PostgreSQL client certificate (CN=pgcdc_cert) and key
	PGClientKey    string
	PGStrangerCert string // CN=pgcdc_cert, but signed by OtherCA: refused by the server
	PGStrangerKey  string
	IdP            *IdP
	Kafka          *testenv.Kafka
	Listeners      map[string]string // listener name -> bootstrap address as advertised
	PG             *testenv.Postgres
	pgServerCert   []byte
	pgServerKey    []byte
	pgExpiredCert  []byte
	pgExpiredKey   []byte
}

// Start makes the certificates and starts the identity provider, then the broker and PostgreSQL in
// parallel.
func Start(ctx context.Context) (_ *Env, err error) {
	dir, err := os.MkdirTemp("", "pgcdc-security-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Listeners: map[string]string{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if err := e.makeCerts(); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	if e.IdP, err = newIdP(e.CA, map[string]string{OAuthClient: OAuthSecret}, map[string]string{OAuthClient: OAuthSubject}); err != nil {
		return nil, fmt.Errorf("identity provider: %w", err)
	}
	var wg sync.WaitGroup
	var kErr, pgErr error
	wg.Add(2)
	go func() { defer wg.Done(); kErr = e.startKafka(ctx) }()
	go func() { defer wg.Done(); pgErr = e.startPostgres(ctx) }()
	wg.Wait()
	if err := errors.Join(kErr, pgErr); err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops the servers and removes the files.
func (e *Env) Close() {
	if e.Kafka != nil {
		e.Kafka.Close()
	}
	if e.PG != nil {
		e.PG.Close()
	}
	if e.IdP != nil {
		e.IdP.Close()
	}
	os.RemoveAll(e.Dir)
}

var loopback = []net.IP{net.IPv4(127, 0, 0, 1)}

func (e *Env) makeCerts() error {
	var err error
	if e.CA, err = testcerts.NewCA("pgcdc test CA"); err != nil {
		return err
	}
	if e.OtherCA, err = testcerts.NewCA("some other CA"); err != nil {
		return err
	}
	if e.CAFile, err = e.CA.WriteCA(e.Dir, "ca"); err != nil {
		return err
	}
	if e.OtherCAFile, err = e.OtherCA.WriteCA(e.Dir, "other-ca"); err != nil {
		return err
	}
	// Broker certificates: "localhost" only (connecting to 127.0.0.1 is the wrong host name), and an
	// expired one for 127.0.0.1. Kafka's PEM key store is the key followed by the certificate.
	broker, err := e.CA.Issue(testcerts.Options{CommonName: "broker", DNSNames: []string{"localhost"}})
	if err != nil {
		return err
	}
	expired, err := e.CA.Issue(testcerts.Options{CommonName: "expired-broker", IPs: loopback,
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		return err
	}
	for name, l := range map[string]*testcerts.Leaf{"broker.pem": broker, "expired-broker.pem": expired} {
		if err := os.WriteFile(filepath.Join(e.Dir, name), append(append([]byte(nil), l.KeyPEM...), l.CertPEM...), 0o600); err != nil {
			return err
		}
	}
	client, err := e.CA.Issue(testcerts.Options{CommonName: MTLSPrincipal, Client: true})
	if err != nil {
		return err
	}
	if e.KafkaCert, e.KafkaKey, err = client.Write(e.Dir, "kafka-client"); err != nil {
		return err
	}
	pgClient, err := e.CA.Issue(testcerts.Options{CommonName: PGCertUser, Client: true})
	if err != nil {
		return err
	}
	if e.PGClientCert, e.PGClientKey, err = pgClient.Write(e.Dir, "pg-client"); err != nil {
		return err
	}
	stranger, err := e.OtherCA.Issue(testcerts.Options{CommonName: PGCertUser, Client: true})
	if err != nil {
		return err
	}
	if e.PGStrangerCert, e.PGStrangerKey, err = stranger.Write(e.Dir, "pg-stranger"); err != nil {
		return err
	}
	pgServer, err := e.CA.Issue(testcerts.Options{CommonName: "postgres", DNSNames: []string{"localhost"}})
	if err != nil {
		return err
	}
	e.pgServerCert, e.pgServerKey = pgServer.CertPEM, pgServer.KeyPEM
	pgExpired, err := e.CA.Issue(testcerts.Options{CommonName: "postgres-expired", DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		return err
	}
	e.pgExpiredCert, e.pgExpiredKey = pgExpired.CertPEM, pgExpired.KeyPEM
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (e *Env) startKafka(ctx context.Context) error {
	names := []string{Plaintext, "CONTROLLER", SASLSSL, MTLS, SASLPlain, OAuth, Expired, Reauth}
	ports := map[string]int{}
	var held []net.Listener // kept open until every port is chosen, so that none is chosen twice
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for _, n := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		held = append(held, l)
		ports[n] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range held {
		l.Close()
	}
	held = nil
	host := map[string]string{SASLSSL: "localhost", MTLS: "localhost"} // their certificates name localhost only
	var listeners, advertised []string
	for _, n := range names {
		listeners = append(listeners, fmt.Sprintf("%s://127.0.0.1:%d", n, ports[n]))
		if n == "CONTROLLER" {
			continue
		}
		h := host[n]
		if h == "" {
			h = "127.0.0.1"
		}
		addr := fmt.Sprintf("%s:%d", h, ports[n])
		advertised = append(advertised, n+"://"+addr)
		e.Listeners[n] = addr
	}
	scram := "org.apache.kafka.common.security.scram.ScramLoginModule required;"
	plain := fmt.Sprintf(`org.apache.kafka.common.security.plain.PlainLoginModule required user_%s="%s";`, PlainUser, PlainPassword)
	keystore := filepath.Join(e.Dir, "broker.pem")
	settings := map[string]string{
		"listeners":                           strings.Join(listeners, ","),
		"advertised.listeners":                strings.Join(advertised, ","),
		"controller.quorum.bootstrap.servers": fmt.Sprintf("127.0.0.1:%d", ports["CONTROLLER"]),
		"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASLSSL:SASL_SSL,MTLS:SSL,SASLPLAIN:SASL_PLAINTEXT," +
			"OAUTH:SASL_PLAINTEXT,EXPIRED:SSL,REAUTH:SASL_PLAINTEXT",
		"inter.broker.listener.name":     Plaintext,
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                    "User:ANONYMOUS", // the PLAINTEXT admin listener, the controller
		"allow.everyone.if.no.acl.found": "false",

		"listener.name.saslssl.ssl.keystore.type":                            "PEM",
		"listener.name.saslssl.ssl.keystore.location":                        keystore,
		"listener.name.saslssl.sasl.enabled.mechanisms":                      "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
		"listener.name.saslssl.scram-sha-256.sasl.jaas.config":               scram,
		"listener.name.saslssl.scram-sha-512.sasl.jaas.config":               scram,
		"listener.name.saslssl.plain.sasl.jaas.config":                       plain,
		"listener.name.mtls.ssl.keystore.type":                               "PEM",
		"listener.name.mtls.ssl.keystore.location":                           keystore,
		"listener.name.mtls.ssl.truststore.type":                             "PEM",
		"listener.name.mtls.ssl.truststore.location":                         e.CAFile,
		"listener.name.mtls.ssl.client.auth":                                 "required",
		"listener.name.mtls.ssl.principal.mapping.rules":                     "RULE:^CN=([^,]+)$/$1/,DEFAULT",
		"listener.name.expired.ssl.keystore.type":                            "PEM",
		"listener.name.expired.ssl.keystore.location":                        filepath.Join(e.Dir, "expired-broker.pem"),
		"listener.name.saslplain.sasl.enabled.mechanisms":                    "PLAIN",
		"listener.name.saslplain.plain.sasl.jaas.config":                     plain,
		"listener.name.oauth.sasl.enabled.mechanisms":                        "OAUTHBEARER",
		"listener.name.oauth.oauthbearer.sasl.jaas.config":                   "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
		"listener.name.oauth.oauthbearer.sasl.server.callback.handler.class": "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
		"sasl.oauthbearer.jwks.endpoint.url":                                 e.IdP.JWKSURL,
		"sasl.oauthbearer.expected.audience":                                 e.IdP.Audience,
		"sasl.oauthbearer.expected.issuer":                                   e.IdP.Issuer,
		"listener.name.reauth.sasl.enabled.mechanisms":                       "SCRAM-SHA-512",
		"listener.name.reauth.scram-sha-512.sasl.jaas.config":                scram,
		"listener.name.reauth.scram-sha-512.connections.max.reauth.ms":       fmt.Sprint(ReauthMs),
		"listener.name.oauth.oauthbearer.connections.max.reauth.ms":          fmt.Sprint(ReauthMs),
	}
	scramArg := func(mech, user, pw string) []string {
		return []string{"--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", mech, user, pw)}
	}
	var format []string
	format = append(format, scramArg("SCRAM-SHA-256", ScramUser, ScramPassword)...)
	format = append(format, scramArg("SCRAM-SHA-512", ScramUser, ScramPassword)...)
	format = append(format, scramArg("SCRAM-SHA-512", NobodyUser, NobodyPassword)...)
	k, err := testenv.StartKafka(ctx, testenv.KafkaOptions{
		Settings:   settings,
		Port:       ports[Plaintext],
		FormatArgs: format,
		JVMOptions: []string{"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=" + e.IdP.JWKSURL},
	})
	if err != nil {
		return fmt.Errorf("start the multi-listener broker: %w", err)
	}
	e.Kafka = k
	return nil
}

func (e *Env) startPostgres(ctx context.Context) error {
	hba := strings.Join([]string{
		"hostssl all postgres 127.0.0.1/32 trust",
		"hostssl all " + PGCertUser + " 127.0.0.1/32 cert",
		"hostssl replication " + PGCertUser + " 127.0.0.1/32 cert",
		"hostssl all all 127.0.0.1/32 scram-sha-256",
		"hostssl replication all 127.0.0.1/32 scram-sha-256",
	}, "\n")
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{
		Settings: map[string]string{"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'", "ssl_ca_file": "'root.crt'"},
		HBA:      hba,
		Files:    map[string][]byte{"server.crt": e.pgServerCert, "server.key": e.pgServerKey, "root.crt": e.CA.CertPEM},
	})
	if err != nil {
		return fmt.Errorf("start PostgreSQL with TLS: %w", err)
	}
	e.PG = pg
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'", PGUser, PGPassword),
		fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION", PGCertUser),
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", strings.SplitN(sql, " PASSWORD", 2)[0], err)
		}
	}
	return nil
}

// PGPort is the PostgreSQL port.
func (e *Env) PGPort() int { return e.PG.Port }

// NewDatabase creates a database owned by role with a table public.items (id int primary key, v
// text) owned by role, and returns the database name and the admin DSN to it.
func (e *Env) NewDatabase(ctx context.Context, name, role string) (string, error) {
	conn, err := pgx.Connect(ctx, e.PG.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{role}.Sanitize())); err != nil {
		return "", err
	}
	dsn := e.PG.DSN(name)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer db.Close(ctx)
	for _, sql := range []string{
		"CREATE TABLE public.items (id int PRIMARY KEY, v text)",
		"ALTER TABLE public.items OWNER TO " + pgx.Identifier{role}.Sanitize(),
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			return "", err
		}
	}
	return dsn, nil
}

// UseExpiredPostgresCert makes PostgreSQL present an expired certificate (expired true) or its valid
// one again, and waits until new connections see the change.
func (e *Env) UseExpiredPostgresCert(ctx context.Context, expired bool) error {
	cert, key := e.pgServerCert, e.pgServerKey
	if expired {
		cert, key = e.pgExpiredCert, e.pgExpiredKey
	}
	if err := e.PG.WriteDataFile("server.crt", cert); err != nil {
		return err
	}
	if err := e.PG.WriteDataFile("server.key", key); err != nil {
		return err
	}
	if err := e.PG.Reload(); err != nil {
		return err
	}
	want := "postgres-expired"
	if !expired {
		want = "postgres"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cn, err := e.postgresCertCN(ctx)
		if err == nil && cn == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL still presents %q (want %q) 30s after the reload: %v", cn, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// postgresCertCN returns the CN of the certificate PostgreSQL presents to a new connection.
func (e *Env) postgresCertCN(ctx context.Context) (string, error) {
	cfg, err := pgx.ParseConfig(e.PG.DSN("postgres"))
	if err != nil {
		return "", err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	tc, ok := conn.PgConn().Conn().(*tls.Conn)
	if !ok {
		return "", errors.New("not a TLS connection")
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return "", errors.New("no peer certificate")
	}
	return st.PeerCertificates[0].Subject.CommonName, nil
}

// LeastPrivilegeACLs is the ACL set pgcdc needs, for principal (e.g. "User:pgcdc") and topic prefix
// (kafka.topic_prefix), as docs/security.md documents it:
//
//   - run: on topics prefixed "<prefix>.": Create (unless kafka.create_topics is false), Describe,
//     DescribeConfigs (max.message.bytes), Write; with heartbeat.topic the literal topic
//     __debezium-heartbeat.<prefix> needs the same;
//   - check: Describe and DescribeConfigs on those topics, and DescribeConfigs on the cluster
//     (the brokers' default min.insync.replicas; without it check assumes 1);
//   - replay: Describe and Read on those topics (no consumer group: offsets live in the target);
//   - status and slot drop talk to PostgreSQL only.
func LeastPrivilegeACLs(principal, prefix string) []kafka.ACLEntry {
	allow := func(rt kafka.ResourceType, name string, pt kafka.PatternType, op kafka.ACLOperationType) kafka.ACLEntry {
		return kafka.ACLEntry{ResourceType: rt, ResourceName: name, ResourcePatternType: pt, Principal: principal, Host: "*",
			Operation: op, PermissionType: kafka.ACLPermissionTypeAllow}
	}
	var out []kafka.ACLEntry
	for _, op := range []kafka.ACLOperationType{kafka.ACLOperationTypeCreate, kafka.ACLOperationTypeDescribe,
		kafka.ACLOperationTypeDescribeConfigs, kafka.ACLOperationTypeWrite, kafka.ACLOperationTypeRead} {
		out = append(out, allow(kafka.ResourceTypeTopic, prefix+".", kafka.PatternTypePrefixed, op))
	}
	out = append(out, allow(kafka.ResourceTypeCluster, "kafka-cluster", kafka.PatternTypeLiteral, kafka.ACLOperationTypeDescribeConfigs))
	return out
}

// Grant creates ACL entries through the admin listener.
func (e *Env) Grant(ctx context.Context, acls []kafka.ACLEntry) error {
	client := &kafka.Client{Addr: kafka.TCP(e.Listeners[Plaintext]), Timeout: 30 * time.Second}
	res, err := client.CreateACLs(ctx, &kafka.CreateACLsRequest{ACLs: acls})
	if err != nil {
		return err
	}
	return errors.Join(res.Errors...)
}
