package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DeliverConfig configures `pgcdc deliver` (docs/deliver.md): a consumer group member that reads
// pgcdc's topics and calls HTTP endpoints. It shares kafka.brokers, kafka.client_id, the Kafka
// security settings and log with `pgcdc run`; postgres.* is not needed.
type DeliverConfig struct {
	GroupID       string `yaml:"group_id"`       // consumer group, default "pgcdc-deliver"
	MetricsListen string `yaml:"metrics_listen"` // operations endpoint, default ":9188"; "" in the file or off disables it

	Ordering    string `yaml:"ordering"`    // key (default) | partition
	Concurrency int    `yaml:"concurrency"` // attempts in flight per partition, default 8 (ordering key)
	MaxPending  int    `yaml:"max_pending"` // records per partition read and not finished, default 1000
	OnFailure   string `yaml:"on_failure"`  // dead_letter (default) | hold

	RetryMaxAttempts    int           `yaml:"retry_max_attempts"`    // attempts per event, the first included; default 12
	RetryMaxAge         time.Duration `yaml:"retry_max_age"`         // give up when the next attempt would start later than this after the first; default 1h; 0: no limit
	RetryInitialBackoff time.Duration `yaml:"retry_initial_backoff"` // default 1s
	RetryMaxBackoff     time.Duration `yaml:"retry_max_backoff"`     // default 5m
	RetryClientErrors   bool          `yaml:"retry_client_errors"`   // retry 4xx answers (besides 408, 425, 429); default false: dead-letter at once

	DeadLetterTopic string `yaml:"dead_letter_topic"` // default "<group_id>.dlq"

	StartOffset          string        `yaml:"start_offset"`           // earliest (default) | latest: where a partition without a committed offset starts
	CommitInterval       time.Duration `yaml:"commit_interval"`        // default 1s
	ShutdownTimeout      time.Duration `yaml:"shutdown_timeout"`       // default 30s
	SessionTimeout       time.Duration `yaml:"session_timeout"`        // default 30s (the broker allows 6s to 30m by default)
	HeartbeatInterval    time.Duration `yaml:"heartbeat_interval"`     // default 3s
	RebalanceTimeout     time.Duration `yaml:"rebalance_timeout"`      // default 60s
	TopicRefreshInterval time.Duration `yaml:"topic_refresh_interval"` // default 30s

	Routes Routes `yaml:"routes"`
}

// RouteConfig is one endpoint (deliver.routes[i]); see docs/deliver.md.
type RouteConfig struct {
	Name    string        `yaml:"name"`    // required, unique: [A-Za-z0-9_.-]+
	URL     string        `yaml:"url"`     // required, http:// or https://
	URLEnv  string        `yaml:"url_env"` // environment variable holding the URL instead (when it carries a token)
	Topics  []string      `yaml:"topics"`  // topic globs; default <topic_prefix>.<each tables entry>
	Tables  []string      `yaml:"tables"`  // schema.table globs over the events' source
	Ops     []string      `yaml:"ops"`     // c, u, d, r, t, m; default c, u, d, r (any for payload raw)
	Payload string        `yaml:"payload"` // debezium (default) | flat | hasura | raw
	Timeout time.Duration `yaml:"timeout"` // one attempt; default 10s

	Headers     map[string]string `yaml:"headers"`      // sent as they are (no secrets here)
	HeaderEnv   map[string]string `yaml:"header_env"`   // header -> environment variable holding its value
	HeaderFiles map[string]string `yaml:"header_files"` // header -> file whose content (trimmed) is its value

	SigningSecretEnv  string `yaml:"signing_secret_env"`  // environment variable with whsec_ secrets (several: rotation)
	SigningSecretFile string `yaml:"signing_secret_file"` // file with whsec_ secrets, one per line

	CAFile         string `yaml:"ca_file"`          // PEM CAs trusted besides the system's
	ClientCertFile string `yaml:"client_cert_file"` // PEM client certificate (mutual TLS)
	ClientKeyFile  string `yaml:"client_key_file"`

	TriggerName string `yaml:"trigger_name"` // payload hasura: trigger.name; default the route's name
	IDHeader    string `yaml:"id_header"`    // record header with an outbox event's id; default "id"
}

// Routes is the list of routes. In the environment (PGCDC_DELIVER_ROUTES) it is written as YAML,
// e.g. '[{name: orders, url: "https://example.com/hook", tables: [public.orders]}]'.
type Routes []RouteConfig

// UnmarshalText parses the YAML form (used for PGCDC_DELIVER_ROUTES).
func (r *Routes) UnmarshalText(text []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return fmt.Errorf("want a YAML list of routes: %w", err)
	}
	var out Routes
	d := &yamlDecoder{name: "PGCDC_DELIVER_ROUTES"}
	d.node(&doc, reflect.ValueOf(&out).Elem(), "deliver.routes")
	if err := errors.Join(d.errs...); err != nil {
		return err
	}
	*r = out
	return nil
}

// Deliver defaults.
const (
	DefaultDeliverGroup         = "pgcdc-deliver"
	DefaultDeliverMetricsListen = ":9188"
	DefaultRouteTimeout         = 10 * time.Second
)

func defaultDeliver() DeliverConfig {
	return DeliverConfig{
		GroupID:              DefaultDeliverGroup,
		MetricsListen:        DefaultDeliverMetricsListen,
		Ordering:             "key",
		Concurrency:          8,
		MaxPending:           1000,
		OnFailure:            "dead_letter",
		RetryMaxAttempts:     12,
		RetryMaxAge:          time.Hour,
		RetryInitialBackoff:  time.Second,
		RetryMaxBackoff:      5 * time.Minute,
		StartOffset:          "earliest",
		CommitInterval:       time.Second,
		ShutdownTimeout:      30 * time.Second,
		SessionTimeout:       30 * time.Second,
		HeartbeatInterval:    3 * time.Second,
		RebalanceTimeout:     60 * time.Second,
		TopicRefreshInterval: 30 * time.Second,
		Routes:               Routes{},
	}
}

// DeadLetter is the dead-letter topic: deliver.dead_letter_topic or "<group_id>.dlq".
func (d DeliverConfig) DeadLetter() string {
	if d.DeadLetterTopic != "" {
		return d.DeadLetterTopic
	}
	return d.GroupID + ".dlq"
}

// MetricsEnabled reports whether deliver's operations endpoint is served.
func (d DeliverConfig) MetricsEnabled() bool {
	return d.MetricsListen != "" && d.MetricsListen != MetricsOff
}

var (
	groupRe     = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,200}$`)
	routeNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,100}$`)
	headerRe    = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

func (d DeliverConfig) validate(v *validator) {
	if !groupRe.MatchString(d.GroupID) {
		v.add("deliver.group_id", "invalid value %q: use letters, digits, '.', '_' and '-' only", d.GroupID)
	}
	if d.MetricsEnabled() {
		checkListen(v, "deliver.metrics_listen", d.MetricsListen)
	}
	v.oneOf("deliver.ordering", d.Ordering, "key", "partition")
	v.atLeast("deliver.concurrency", int64(d.Concurrency), 1)
	v.atLeast("deliver.max_pending", int64(d.MaxPending), 1)
	v.oneOf("deliver.on_failure", d.OnFailure, "dead_letter", "hold")
	v.atLeast("deliver.retry_max_attempts", int64(d.RetryMaxAttempts), 1)
	if d.RetryMaxAge < 0 {
		v.add("deliver.retry_max_age", "must be a duration >= 0 (0: no limit), got %s", d.RetryMaxAge)
	}
	v.positive("deliver.retry_initial_backoff", d.RetryInitialBackoff)
	v.positive("deliver.retry_max_backoff", d.RetryMaxBackoff)
	if d.RetryMaxBackoff > 0 && d.RetryMaxBackoff < d.RetryInitialBackoff {
		v.add("deliver.retry_max_backoff", "must be >= deliver.retry_initial_backoff (%s), got %s", d.RetryInitialBackoff, d.RetryMaxBackoff)
	}
	if d.DeadLetterTopic != "" && !groupRe.MatchString(d.DeadLetterTopic) {
		v.add("deliver.dead_letter_topic", "invalid topic name %q: use letters, digits, '.', '_' and '-' only", d.DeadLetterTopic)
	}
	v.oneOf("deliver.start_offset", d.StartOffset, "earliest", "latest")
	v.positive("deliver.commit_interval", d.CommitInterval)
	v.positive("deliver.shutdown_timeout", d.ShutdownTimeout)
	v.positive("deliver.session_timeout", d.SessionTimeout)
	v.positive("deliver.heartbeat_interval", d.HeartbeatInterval)
	if d.HeartbeatInterval > 0 && d.SessionTimeout > 0 && d.HeartbeatInterval*3 > d.SessionTimeout {
		v.add("deliver.heartbeat_interval", "must be at most a third of deliver.session_timeout (%s), got %s", d.SessionTimeout, d.HeartbeatInterval)
	}
	v.positive("deliver.rebalance_timeout", d.RebalanceTimeout)
	v.positive("deliver.topic_refresh_interval", d.TopicRefreshInterval)
	names := map[string]int{}
	for i, r := range d.Routes {
		r.validate(v, fmt.Sprintf("deliver.routes[%d]", i))
		if j, dup := names[r.Name]; dup && r.Name != "" {
			v.add(fmt.Sprintf("deliver.routes[%d].name", i), "%q is already the name of deliver.routes[%d]", r.Name, j)
		}
		names[r.Name] = i
	}
}

func (r RouteConfig) validate(v *validator, key string) {
	if !routeNameRe.MatchString(r.Name) {
		v.add(key+".name", "required: letters, digits, '.', '_' and '-' (got %q)", r.Name)
	}
	switch {
	case r.URL != "" && r.URLEnv != "":
		v.add(key+".url", "set url or url_env, not both")
	case r.URL == "" && r.URLEnv == "":
		v.add(key+".url", "required (or url_env)")
	case r.URL != "":
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(key+".url", "want an http:// or https:// URL")
		}
	}
	if len(r.Topics) == 0 && len(r.Tables) == 0 {
		v.add(key+".tables", "set tables (schema.table globs) or topics (topic globs)")
	}
	for i, p := range r.Topics {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			v.add(fmt.Sprintf("%s.topics[%d]", key, i), "bad glob %q", p)
		}
	}
	for i, p := range r.Tables {
		if msg := checkTablePattern(p); msg != "" {
			v.add(fmt.Sprintf("%s.tables[%d]", key, i), "%s", msg)
		}
	}
	for i, op := range r.Ops {
		if len(op) != 1 || !strings.Contains("cudrtm", op) {
			v.add(fmt.Sprintf("%s.ops[%d]", key, i), "invalid op %q (allowed: c, u, d, r, t, m)", op)
		}
	}
	if r.Payload != "" {
		v.oneOf(key+".payload", r.Payload, "debezium", "flat", "hasura", "raw")
	}
	if r.Timeout < 0 {
		v.add(key+".timeout", "must be a duration > 0, e.g. 10s (got %s)", r.Timeout)
	}
	for _, m := range []map[string]string{r.Headers, r.HeaderEnv, r.HeaderFiles} {
		for h := range m {
			if !headerRe.MatchString(h) {
				v.add(key+".headers", "invalid header name %q", h)
			}
		}
	}
	if r.SigningSecretEnv != "" && r.SigningSecretFile != "" {
		v.add(key+".signing_secret_env", "set signing_secret_env or signing_secret_file, not both")
	}
	if (r.ClientCertFile == "") != (r.ClientKeyFile == "") {
		v.add(key+".client_cert_file", "client_cert_file and client_key_file go together")
	}
}
