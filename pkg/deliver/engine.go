package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/pkg/deliver/payload"
	"github.com/pgcdc/pgcdc/pkg/deliver/route"
)

// Engine runs pgcdc deliver: one member of a consumer group.
type Engine struct {
	o       Options
	log     zerolog.Logger
	m       *Metrics
	admin   *kafka.Client
	builder *payload.Builder
	routes  map[string]*route.Route
	clients map[string]*http.Client // by route name
	dlq     *deadLetters

	ends map[string]map[int]int64 // UntilEnd: every partition's end offset when Run started

	pending, waiting atomic.Int64 // over all partitions, for the metrics
}

// New checks o and builds an Engine. Nothing connects before Run.
func New(o Options) (*Engine, error) {
	o.Defaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics("")
	}
	e := &Engine{
		o: o, log: o.Log, m: o.Metrics, admin: o.Kafka.client(), builder: payload.NewBuilder(),
		routes: map[string]*route.Route{}, clients: map[string]*http.Client{},
	}
	names := make([]string, 0, len(o.Routes))
	for _, r := range o.Routes {
		e.routes[r.Name] = r
		e.clients[r.Name] = httpClient(r, o.Concurrency)
		names = append(names, r.Name)
	}
	e.m.Routes(names)
	e.m.setPending(func() (int, int) { return int(e.pending.Load()), int(e.waiting.Load()) })
	if o.DeadLetterTopic != "" {
		e.dlq = newDeadLetters(o.Kafka, o.DeadLetterTopic, o.GroupID)
	}
	return e, nil
}

// Metrics is the engine's metrics registry.
func (e *Engine) Metrics() *Metrics { return e.m }

// httpClient is a route's client: its TLS settings, no redirects followed (a 3xx is an answer:
// the configured URL is wrong), connections kept for the route's parallel attempts.
func httpClient(r *route.Route, concurrency int) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: min(r.Timeout, 10*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       r.TLS,
		TLSHandshakeTimeout:   min(r.Timeout, 10*time.Second),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   max(concurrency*16, 64), // a route's requests over all assigned partitions
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Run consumes until ctx ends (then it delivers what it has read, bounded by ShutdownTimeout,
// commits, leaves the group and returns nil) or, with UntilEnd, until every partition is done. An
// error is a start-up failure: the dead-letter topic or the end offsets cannot be had.
func (e *Engine) Run(ctx context.Context) error {
	defer e.closeClients()
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if e.dlq != nil {
		defer e.dlq.close()
		if err := e.startup(ctx, "dead-letter topic", func(ctx context.Context) error {
			return ensureTopic(ctx, e.admin, e.o.DeadLetterTopic, e.o.DeadLetterSpec)
		}); err != nil {
			return stopped(err)
		}
	}
	for ctx.Err() == nil {
		topics, err := e.waitTopics(ctx)
		if err != nil {
			return stopped(err)
		}
		if e.o.UntilEnd && e.ends == nil {
			if err := e.startup(ctx, "end offsets", func(ctx context.Context) error { return e.readEnds(ctx, topics) }); err != nil {
				return stopped(err)
			}
		}
		finished, err := e.runGroup(ctx, topics)
		if err != nil {
			return err
		}
		if finished {
			return nil
		}
	}
	return nil
}

func (e *Engine) closeClients() {
	for _, c := range e.clients {
		c.CloseIdleConnections()
	}
}

// startup retries a start-up step until it works, ctx ends, or 2 minutes pass.
func (e *Engine) startup(ctx context.Context, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; ; i++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deliver: %s: %w", what, err)
		}
		if i == 0 || i%10 == 0 {
			e.log.Warn().Err(err).Msgf("%s: retrying", what)
		}
		e.m.setWaiting(what + ": " + err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// subscribed reports whether the engine reads topic.
func (e *Engine) subscribed(topic string) bool {
	if e.o.Redrive {
		return topic == e.o.DeadLetterTopic
	}
	if topic == e.o.DeadLetterTopic {
		return false
	}
	for _, r := range e.o.Routes {
		if r.MatchesTopic(topic) {
			return true
		}
	}
	return false
}

// waitTopics returns the topics to read, waiting while none exists.
func (e *Engine) waitTopics(ctx context.Context) ([]string, error) {
	for i := 0; ; i++ {
		topics, err := listTopics(ctx, e.admin, e.subscribed)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			if i%10 == 0 {
				e.log.Warn().Err(err).Msg("cannot list topics; retrying")
			}
			e.m.setWaiting("cannot list topics: " + err.Error())
		case len(topics) > 0:
			return topics, nil
		case e.o.UntilEnd:
			return nil, nil
		default:
			if i == 0 {
				e.log.Warn().Strs("routes_topics", e.routeTopicGlobs()).Msg("no topic matches the routes yet; waiting for one")
			}
			e.m.setWaiting("no topic matches the routes")
		}
		wait := e.o.TopicRefreshInterval
		if err != nil {
			wait = min(wait, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (e *Engine) routeTopicGlobs() []string {
	var out []string
	for _, r := range e.o.Routes {
		out = append(out, r.Topics...)
	}
	return out
}

func (e *Engine) readEnds(ctx context.Context, topics []string) error {
	parts, err := topicPartitions(ctx, e.admin, topics)
	if err != nil {
		return err
	}
	_, ends, err := partitionOffsets(ctx, e.admin, parts)
	if err != nil {
		return err
	}
	if ends == nil {
		ends = map[string]map[int]int64{}
	}
	e.ends = ends
	return nil
}

// errTopicsChanged ends a group session when the set of matching topics changes.
var errTopicsChanged = errors.New("the topics matching the routes changed")

// runGroup is one consumer group session over a fixed set of topics. finished: UntilEnd is
// done. It returns (false, nil) to be called again with a fresh topic list.
func (e *Engine) runGroup(ctx context.Context, topics []string) (finished bool, err error) {
	if len(topics) == 0 { // UntilEnd and nothing to read
		return true, nil
	}
	logger := e.log.With().Str("group", e.o.GroupID).Logger()
	g, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     e.o.GroupID,
		Brokers:                e.o.Kafka.Brokers,
		Dialer:                 e.o.Kafka.Dialer,
		Topics:                 topics,
		GroupBalancers:         []kafka.GroupBalancer{kafka.RoundRobinGroupBalancer{}, kafka.RangeGroupBalancer{}},
		HeartbeatInterval:      e.o.HeartbeatInterval,
		SessionTimeout:         e.o.SessionTimeout,
		RebalanceTimeout:       e.o.RebalanceTimeout,
		JoinGroupBackoff:       time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: max(e.o.TopicRefreshInterval, 5*time.Second),
		StartOffset:            e.o.StartOffset,
		Timeout:                10 * time.Second,
		Logger:                 kafka.LoggerFunc(func(f string, a ...any) { logger.Trace().Msgf(f, a...) }),
		ErrorLogger:            kafka.LoggerFunc(func(f string, a ...any) { logger.Debug().Msgf(f, a...) }),
	})
	if err != nil {
		return false, fmt.Errorf("deliver: consumer group: %w", err)
	}
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-gctx.Done()
		_ = g.Close() // ends the current generation (its partitions drain and commit), then leaves
	}()
	var wg sync.WaitGroup
	if !e.o.UntilEnd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.watchTopics(gctx, topics, cancel)
		}()
	}
	logger.Info().Strs("topics", topics).Msg("joining the consumer group")
	e.m.setWaiting("joining the consumer group")
	failures := 0
	for gctx.Err() == nil {
		gen, err := g.Next(gctx)
		if err != nil {
			if gctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			if failures++; failures == 1 || failures%20 == 0 {
				logger.Warn().Err(err).Int("failures", failures).Msg("cannot join the consumer group yet; retrying")
			}
			e.m.setWaiting("joining the consumer group: " + err.Error())
			continue
		}
		failures = 0
		if e.generation(gctx, cancel, gen) {
			finished = true
			break
		}
	}
	cancel(nil)
	<-closed
	wg.Wait()
	e.m.setWaiting("left the consumer group")
	if finished {
		logger.Info().Msg("every partition is done up to its end offset at start-up")
	}
	if errors.Is(context.Cause(gctx), errTopicsChanged) && ctx.Err() == nil {
		return false, nil
	}
	return finished, nil
}

// watchTopics ends the session (cancel with errTopicsChanged) when the matching topics change.
func (e *Engine) watchTopics(ctx context.Context, topics []string, cancel context.CancelCauseFunc) {
	t := time.NewTicker(e.o.TopicRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := listTopics(ctx, e.admin, e.subscribed)
		if err != nil || len(now) == 0 || slices.Equal(now, topics) {
			continue
		}
		e.log.Info().Strs("topics", now).Strs("before", topics).Msg("the topics matching the routes changed; rejoining the consumer group")
		cancel(errTopicsChanged)
		return
	}
}

// logKey names a route's key for logs: bounded, printable.
func logKey(k []byte) string {
	if len(k) > 120 {
		return strings.ToValidUTF8(string(k[:120]), "?") + "..."
	}
	return strings.ToValidUTF8(string(k), "?")
}
