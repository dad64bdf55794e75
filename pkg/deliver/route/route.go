package route

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
	"github.com/pgcdc/pgcdc/pkg/deliver/signature"
)

// Route is one endpoint and what it receives. Build it, then call Compile once before use.
type Route struct {
	Name    string
	URL     string
	Topics  []string // topic globs (path.Match: * never crosses '/'; it does cross '.')
	Tables  []string // "schema.table" globs over the event's source; empty: every table
	Ops     string   // Debezium ops taken ("cudr"); empty: c, u, d and r for change formats, anything for raw
	Format  payload.Format
	Timeout time.Duration // one attempt, connection to last body byte

	Header      http.Header      // sent with every request (secrets resolved by the caller)
	Signer      signature.Signer // Standard Webhooks signatures; no secrets: unsigned (webhook-id and -timestamp are still sent)
	TLS         *tls.Config      // nil: Go's defaults (system roots)
	TriggerName string           // hasura trigger.name; default Name
	IDHeader    string           // header with an outbox event's id; default "id"
}

// DefaultOps are the ops a change-format route takes when Ops is empty.
const DefaultOps = "cudr"

// Compile checks r and fills its defaults. topicPrefix (kafka.topic_prefix) turns table globs into
// topic globs when Topics is empty: public.* becomes <prefix>.public.*.
func (r *Route) Compile(topicPrefix string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Name == "" {
		bad("name: required")
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url: %q is not an http:// or https:// URL", redactURL(r.URL))
	}
	if r.Format == "" {
		r.Format = payload.Debezium
	}
	if _, err := payload.ParseFormat(string(r.Format)); err != nil {
		bad("payload: %v", err)
	}
	if r.Timeout <= 0 {
		bad("timeout: must be > 0")
	}
	for _, op := range r.Ops {
		if !strings.ContainsRune("cudrtm", op) {
			bad("ops: unknown op %q (allowed: c, u, d, r, t, m)", op)
		}
	}
	if r.Ops == "" && r.Format != payload.Raw {
		r.Ops = DefaultOps
	}
	for _, p := range r.Topics {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			bad("topics: bad glob %q", p)
		}
	}
	for _, p := range r.Tables {
		s, t, ok := strings.Cut(p, ".")
		_, e1 := path.Match(s, "")
		_, e2 := path.Match(t, "")
		if !ok || s == "" || t == "" || strings.Contains(t, ".") || e1 != nil || e2 != nil {
			bad("tables: bad pattern %q (want schema.table, each side a glob, e.g. public.*)", p)
		}
	}
	if len(r.Topics) == 0 {
		if len(r.Tables) == 0 {
			bad("topics or tables: set at least one")
		}
		for _, p := range r.Tables {
			r.Topics = append(r.Topics, topicPrefix+"."+p)
		}
	}
	if r.TriggerName == "" {
		r.TriggerName = r.Name
	}
	if r.IDHeader == "" {
		r.IDHeader = "id"
	}
	if r.Header == nil {
		r.Header = http.Header{}
	}
	return errors.Join(errs...)
}

// MatchesTopic reports whether the route reads topic.
func (r *Route) MatchesTopic(topic string) bool {
	for _, p := range r.Topics {
		if ok, _ := path.Match(p, topic); ok {
			return true
		}
	}
	return false
}

// Matches reports whether the route takes e (read from one of its topics).
func (r *Route) Matches(e *payload.Event) bool {
	if !r.MatchesTopic(e.OriginTopic) {
		return false
	}
	if len(r.Tables) > 0 {
		if !e.Change || !matchTable(r.Tables, e.Source.Schema, e.Source.Table) {
			return false
		}
	}
	if r.Ops != "" {
		if !e.Change || !strings.ContainsRune(r.Ops, rune(e.Op)) {
			return false
		}
	}
	return true
}

func matchTable(patterns []string, schema, table string) bool {
	for _, p := range patterns {
		sp, tp, _ := strings.Cut(p, ".")
		if ms, _ := path.Match(sp, schema); !ms {
			continue
		}
		if mt, _ := path.Match(tp, table); mt {
			return true
		}
	}
	return false
}

// RedactedURL is the route's URL without user info and query (which may hold tokens), for logs.
func (r *Route) RedactedURL() string { return redactURL(r.URL) }

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "..."
	}
	return u.String()
}
