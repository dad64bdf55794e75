package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/opshttp"
	"github.com/pgcdc/pgcdc/pkg/deliver"
	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
	"github.com/pgcdc/pgcdc/pkg/deliver/retry"
	"github.com/pgcdc/pgcdc/pkg/deliver/route"
	"github.com/pgcdc/pgcdc/pkg/deliver/signature"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
	"github.com/pgcdc/pgcdc/pkg/version"
)

const deliverSummary = `Usage: pgcdc deliver [--config FILE] [--until-end]
       pgcdc deliver redrive [--config FILE] [--route NAME]
       pgcdc deliver secret

Reads pgcdc's topics in the Kafka consumer group deliver.group_id and calls the HTTP endpoints of
deliver.routes: at least once, in order per key, with retries; an event retrying gives up on goes
to the dead-letter topic (or is held: deliver.on_failure). Runs until SIGINT/SIGTERM, then finishes
the attempts in flight (deliver.shutdown_timeout), commits and exits 0. Uses kafka.* and log.* of
the configuration; postgres.* is not needed. Serves /metrics, /healthz and /readyz on
deliver.metrics_listen (default :9188). See docs/deliver.md.

Subcommands:
  redrive   send the dead-letter topic's records again (to the route that gave up on each, or
            --route), then exit; what fails again goes back to the dead-letter topic
  secret    print a new Standard Webhooks signing secret (whsec_...)
`

func deliverFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	untilEnd := fs.Bool("until-end", false, "exit once every partition is delivered up to its end offset at start-up")
	return func(stdout, stderr io.Writer) int {
		return runDeliver(*configPath, stdout, stderr, func(o *deliver.Options) { o.UntilEnd = *untilEnd })
	}
}

const redriveSummary = `Usage: pgcdc deliver redrive [--config FILE] [--route NAME]

Sends the records of the dead-letter topic (deliver.dead_letter_topic, default <group_id>.dlq)
again, each to the route named in its pgcdc.dlq.route header (or --route), with the same retries,
signatures and event ids as the first time. It reads the topic in the consumer group
<group_id>.redrive up to the end it had at start-up and exits: 0 when every record was delivered,
1 when some went back to the dead-letter topic. A redriven event arrives after later events of its
key: receivers that keep state must compare the event's LSN (header Pgcdc-Lsn) with theirs.
`

func redriveFlags(fs *flag.FlagSet) func(stdout, stderr io.Writer) int {
	configPath := configFlag(fs)
	routeName := fs.String("route", "", "send every record to this route instead of the one in its pgcdc.dlq.route header")
	return func(stdout, stderr io.Writer) int {
		return runDeliver(*configPath, stdout, stderr, func(o *deliver.Options) {
			o.Redrive, o.RedriveRoute = true, *routeName
			o.GroupID += ".redrive"
		})
	}
}

const secretSummary = `Usage: pgcdc deliver secret

Prints a new random signing secret in the Standard Webhooks form whsec_<base64 of 32 bytes>. Give it
to the receiver and to pgcdc deliver (a route's signing_secret_env or signing_secret_file). To
rotate, list the new and the old secret (blank-separated) until every receiver knows the new one.
`

func secretFlags(_ *flag.FlagSet) func(stdout, stderr io.Writer) int {
	return func(stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, signature.NewSecret())
		return 0
	}
}

func runDeliver(path string, stdout, stderr io.Writer, adjust func(*deliver.Options)) int {
	cfg, ok := loadDeliverConfig(path, stderr)
	if !ok {
		return 2
	}
	log := newLogger(cfg.Log, stdout)
	m := deliver.NewMetrics(version.String())
	o, err := deliverOptions(cfg, log, m)
	if err != nil {
		fmt.Fprintf(stderr, "pgcdc deliver: invalid configuration:\n%v\n", err)
		return 2
	}
	adjust(&o)
	e, err := deliver.New(o)
	if err != nil {
		fmt.Fprintf(stderr, "pgcdc deliver: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.Deliver.MetricsEnabled() {
		closeOps, err := serveOps(opshttp.Options{Key: "deliver.metrics_listen", Listen: cfg.Deliver.MetricsListen}, m, log)
		if err != nil {
			log.Error().Err(err).Msg("pgcdc deliver cannot start")
			return 1
		}
		defer closeOps()
	}
	routes := make([]string, 0, len(o.Routes))
	for _, r := range o.Routes {
		routes = append(routes, r.Name+" -> "+r.RedactedURL())
	}
	log.Info().Str("group", o.GroupID).Strs("routes", routes).Str("dead_letter_topic", o.DeadLetterTopic).
		Str("ordering", string(o.Ordering)).Str("on_failure", string(o.OnFailure)).Bool("redrive", o.Redrive).Msg("pgcdc deliver starting")
	if err := e.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Err(err).Msg("pgcdc deliver stopped on an error")
		return 1
	}
	t := &m.Totals
	log.Info().Int64("delivered", t.Delivered.Load()).Int64("dead_lettered", t.DeadLettered.Load()).
		Int64("skipped", t.Skipped.Load()).Int64("attempts", t.Attempts.Load()).Msg("pgcdc deliver stopped")
	if o.Redrive && t.DeadLettered.Load() > 0 {
		return 1
	}
	return 0
}

// loadDeliverConfig loads the configuration; problems of postgres.* keys (not needed here) are
// ignored, and kafka.topic_prefix is only needed when a route names tables without topics.
func loadDeliverConfig(path string, stderr io.Writer) (config.Config, bool) {
	return loadConfigFor(path, stderr, func(cfg config.Config, key string) bool {
		if key == "kafka.topic_prefix" {
			for _, r := range cfg.Deliver.Routes {
				if len(r.Topics) == 0 {
					return true
				}
			}
			return false
		}
		return !strings.HasPrefix(key, "postgres.")
	})
}

// deliverOptions turns the configuration into the engine's options: routes with their secrets
// (from the environment and files) and TLS settings read.
func deliverOptions(cfg config.Config, log zerolog.Logger, m *deliver.Metrics) (deliver.Options, error) {
	d := cfg.Deliver
	var errs []error
	var routes []*route.Route
	for i, rc := range d.Routes {
		rt, err := buildRoute(rc, cfg.Kafka.TopicPrefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("deliver.routes[%d] (%s): %w", i, rc.Name, err))
			continue
		}
		routes = append(routes, rt)
	}
	if len(d.Routes) == 0 {
		errs = append(errs, errors.New("deliver.routes: no route configured (see config/example.yaml and docs/deliver.md)"))
	}
	start := kafka.FirstOffset
	if d.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	kc, err := kafkaclient.New(context.Background(), kafkaclient.FromConfig(cfg.Kafka))
	if err != nil {
		errs = append(errs, err)
		kc = nil
	}
	o := deliver.Options{
		GroupID:           d.GroupID,
		Routes:            routes,
		Ordering:          deliver.Ordering(d.Ordering),
		Concurrency:       d.Concurrency,
		MaxPending:        d.MaxPending,
		OnFailure:         deliver.OnFailure(d.OnFailure),
		Retry:             retry.Policy{MaxAttempts: d.RetryMaxAttempts, MaxAge: d.RetryMaxAge, InitialBackoff: d.RetryInitialBackoff, MaxBackoff: d.RetryMaxBackoff},
		RetryClientErrors: d.RetryClientErrors,
		DeadLetterTopic:   d.DeadLetter(),
		DeadLetterSpec: deliver.TopicSpec{Create: cfg.Kafka.CreateTopics, Partitions: cfg.Kafka.Partitions,
			ReplicationFactor: cfg.Kafka.ReplicationFactor, Config: cfg.Kafka.TopicConfig},
		StartOffset:          start,
		CommitInterval:       d.CommitInterval,
		ShutdownTimeout:      d.ShutdownTimeout,
		SessionTimeout:       d.SessionTimeout,
		HeartbeatInterval:    d.HeartbeatInterval,
		RebalanceTimeout:     d.RebalanceTimeout,
		TopicRefreshInterval: d.TopicRefreshInterval,
		UserAgent:            "pgcdc-deliver/" + version.String(),
		Log:                  log,
		Metrics:              m,
	}
	if kc != nil { // every Kafka connection deliver opens: TLS and SASL as kafka.tls and kafka.sasl say
		o.Kafka = deliver.NewKafka(kc)
	}
	return o, errors.Join(errs...)
}

// buildRoute resolves one route's URL, headers, secrets and TLS files and compiles it.
func buildRoute(rc config.RouteConfig, topicPrefix string) (*route.Route, error) {
	var errs []error
	url := rc.URL
	if rc.URLEnv != "" {
		if url = os.Getenv(rc.URLEnv); url == "" {
			errs = append(errs, fmt.Errorf("url_env: the environment variable %s is not set", rc.URLEnv))
		}
	}
	timeout := rc.Timeout
	if timeout == 0 {
		timeout = config.DefaultRouteTimeout
	}
	rt := &route.Route{
		Name: rc.Name, URL: url, Topics: rc.Topics, Tables: rc.Tables, Ops: strings.Join(rc.Ops, ""),
		Format: payload.Format(rc.Payload), Timeout: timeout, Header: http.Header{},
		TriggerName: rc.TriggerName, IDHeader: rc.IDHeader,
	}
	for h, v := range rc.Headers {
		rt.Header.Set(h, v)
	}
	for h, name := range rc.HeaderEnv {
		v := os.Getenv(name)
		if v == "" {
			errs = append(errs, fmt.Errorf("header_env[%s]: the environment variable %s is not set", h, name))
			continue
		}
		rt.Header.Set(h, v)
	}
	for h, file := range rc.HeaderFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("header_files[%s]: %w", h, err))
			continue
		}
		rt.Header.Set(h, strings.TrimSpace(string(b)))
	}
	var secrets string
	switch {
	case rc.SigningSecretEnv != "":
		if secrets = os.Getenv(rc.SigningSecretEnv); secrets == "" {
			errs = append(errs, fmt.Errorf("signing_secret_env: the environment variable %s is not set", rc.SigningSecretEnv))
		}
	case rc.SigningSecretFile != "":
		b, err := os.ReadFile(rc.SigningSecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("signing_secret_file: %w", err))
		}
		secrets = string(b)
	}
	if strings.TrimSpace(secrets) != "" {
		s, err := signature.ParseSecrets(secrets)
		if err != nil {
			errs = append(errs, fmt.Errorf("signing secret: %w", err))
		}
		rt.Signer = signature.Signer{Secrets: s}
	}
	if rc.CAFile != "" || rc.ClientCertFile != "" {
		tc, err := routeTLS(rc)
		if err != nil {
			errs = append(errs, err)
		}
		rt.TLS = tc
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rt, rt.Compile(topicPrefix)
}

// routeTLS is a route's TLS configuration: the system's roots plus ca_file, and a client
// certificate for mutual TLS.
func routeTLS(rc config.RouteConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if rc.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", rc.CAFile)
		}
		tc.RootCAs = pool
	}
	if rc.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(rc.ClientCertFile, rc.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("client_cert_file/client_key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
