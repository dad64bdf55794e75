package deliver

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/deliver/retry"
	"github.com/pgcdc/pgcdc/pkg/deliver/route"
)

// Ordering is the unit whose events reach an endpoint one after the other.
type Ordering string

const (
	// OrderKey: the events of one record key (one row) reach a route's endpoint in offset order,
	// one at a time; different keys of a partition are delivered in parallel (up to Concurrency).
	OrderKey Ordering = "key"
	// OrderPartition: all events of a partition reach a route's endpoint in offset order, one at a
	// time.
	OrderPartition Ordering = "partition"
)

// OnFailure is what happens to an event once retrying gives up.
type OnFailure string

const (
	// DeadLetter writes it to the dead-letter topic and moves on to the next event of its key.
	DeadLetter OnFailure = "dead_letter"
	// Hold keeps retrying it (at most every MaxBackoff): the key (or partition) waits, nothing is
	// skipped.
	Hold OnFailure = "hold"
)

// Options configure an Engine.
type Options struct {
	Kafka   Kafka
	GroupID string
	Routes  []*route.Route // compiled (route.Compile)

	Ordering    Ordering
	Concurrency int // attempts in flight per partition (OrderKey); >= 1
	MaxPending  int // records per partition read and not finished; reading pauses beyond it; >= 1
	OnFailure   OnFailure
	Retry       retry.Policy
	// RetryClientErrors retries 4xx answers too (other than 408, 425 and 429, which always are).
	RetryClientErrors bool

	DeadLetterTopic string
	DeadLetterSpec  TopicSpec

	StartOffset          int64         // kafka.FirstOffset or kafka.LastOffset: where a partition without a committed offset starts
	CommitInterval       time.Duration // how often finished positions are committed
	ShutdownTimeout      time.Duration // how long a stop (or a rebalance) waits for in-flight attempts
	SessionTimeout       time.Duration
	HeartbeatInterval    time.Duration
	RebalanceTimeout     time.Duration
	TopicRefreshInterval time.Duration // how often new topics matching the routes are looked for
	LagInterval          time.Duration // how often log end offsets are read for the lag metric

	// UntilEnd stops Run once every partition's records up to its end offset at start-up are
	// finished (and committed).
	UntilEnd bool
	// Redrive reads the dead-letter topic instead of the routes' topics and sends each record to
	// the route named in its pgcdc.dlq.route header (or RedriveRoute when set); implies UntilEnd.
	Redrive      bool
	RedriveRoute string

	UserAgent string
	Log       zerolog.Logger
	Metrics   *Metrics // nil: the engine makes its own (Engine.Metrics)
}

// Defaults fills unset durations and sizes with the documented defaults.
func (o *Options) Defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.CommitInterval, time.Second)
	def(&o.ShutdownTimeout, 30*time.Second)
	def(&o.SessionTimeout, 30*time.Second)
	def(&o.HeartbeatInterval, 3*time.Second)
	def(&o.RebalanceTimeout, 60*time.Second)
	def(&o.TopicRefreshInterval, 30*time.Second)
	def(&o.LagInterval, 5*time.Second)
	if o.Ordering == "" {
		o.Ordering = OrderKey
	}
	if o.OnFailure == "" {
		o.OnFailure = DeadLetter
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.MaxPending == 0 {
		o.MaxPending = 1000
	}
	if o.StartOffset == 0 {
		o.StartOffset = kafka.FirstOffset
	}
	if o.UserAgent == "" {
		o.UserAgent = "pgcdc-deliver"
	}
	if o.Retry.MaxAttempts == 0 {
		o.Retry = retry.Policy{MaxAttempts: 12, MaxAge: time.Hour, InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute}
	}
	if o.Redrive {
		o.UntilEnd = true
		o.StartOffset = kafka.FirstOffset // every dead letter, whatever start_offset says
	}
}

func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(o.Kafka.Brokers) == 0 || o.Kafka.Dialer == nil || o.Kafka.Transport == nil {
		bad("no Kafka connection (NewKafka)")
	}
	if o.GroupID == "" {
		bad("no consumer group id")
	}
	if len(o.Routes) == 0 {
		bad("no routes: configure deliver.routes")
	}
	names := map[string]bool{}
	for _, r := range o.Routes {
		if names[r.Name] {
			bad("two routes are named %q", r.Name)
		}
		names[r.Name] = true
	}
	if o.Redrive && o.RedriveRoute != "" && !names[o.RedriveRoute] {
		bad("no route is named %q", o.RedriveRoute)
	}
	if o.Ordering != OrderKey && o.Ordering != OrderPartition {
		bad("ordering %q: want key or partition", o.Ordering)
	}
	if o.OnFailure != DeadLetter && o.OnFailure != Hold {
		bad("on_failure %q: want dead_letter or hold", o.OnFailure)
	}
	if o.Concurrency < 1 || o.MaxPending < 1 || o.Retry.MaxAttempts < 1 {
		bad("concurrency, max_pending and retry max attempts must be >= 1")
	}
	if o.DeadLetterTopic == "" && (o.OnFailure == DeadLetter || o.Redrive) {
		bad("no dead-letter topic")
	}
	if o.StartOffset != kafka.FirstOffset && o.StartOffset != kafka.LastOffset {
		bad("start offset must be kafka.FirstOffset or kafka.LastOffset")
	}
	return errors.Join(errs...)
}
