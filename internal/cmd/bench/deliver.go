package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/webhooktest"
)

// DeliverResult is the deliver mode: pgcdc deliver sending a topic's events to a trivial endpoint.
type DeliverResult struct {
	Events      int     `json:"events"`
	Keys        int     `json:"keys"`
	Partitions  int     `json:"partitions"`
	Ordering    string  `json:"ordering"`
	Concurrency int     `json:"concurrency"`
	Requests    int64   `json:"requests"`
	Seconds     float64 `json:"seconds"` // process start to exit (--until-end), group join included
	// EventsPerSec is over the delivery itself: first request to last request at the endpoint.
	EventsPerSec float64 `json:"events_per_sec"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPerEvent  float64 `json:"cpu_us_per_event"`
	PeakRSS      int64   `json:"peak_rss_bytes"`
	Log          string  `json:"log"`
}

// deliver writes -deliver-events Debezium-shaped records (pgcdc's format without schemas) to a
// topic, then runs `pgcdc deliver --until-end` against an endpoint that answers 204 at once and
// measures how fast the events arrive.
func (b *bench) deliver(ctx context.Context) error {
	o := b.o
	topic := fmt.Sprintf("bdeliver_%d", os.Getpid())
	res := &DeliverResult{Events: o.deliverEvents, Keys: min(10_000, o.deliverEvents), Partitions: o.deliverPartitions,
		Ordering: "key", Concurrency: o.deliverConcurrency}
	b.res.Deliver = res
	if err := createTopic(ctx, b.s.brokers, topic, res.Partitions); err != nil {
		return err
	}
	if !o.keepTopics {
		defer deleteTopic(context.Background(), b.s.brokers, topic)
	}
	logf("deliver: writing %d records to %s (%d partitions)", res.Events, topic, res.Partitions)
	events := make([]webhooktest.Event, res.Events)
	for i := range events {
		events[i] = webhooktest.Event{ID: i % res.Keys, Seq: i / res.Keys}
	}
	for i := 0; i < len(events); i += 10_000 {
		if err := webhooktest.Produce(ctx, b.s.brokers, topic, events[i:min(i+10_000, len(events))], int64(i)*8); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}

	var requests atomic.Int64
	var mu sync.Mutex
	var first, last time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		if requests.Add(1) == 1 {
			mu.Lock()
			first = now
			mu.Unlock()
		}
		mu.Lock()
		last = now
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	routes, _ := json.Marshal([]map[string]any{{"name": "bench", "url": srv.URL, "topics": []string{topic}, "timeout": "10s"}})
	cmd := exec.CommandContext(ctx, o.pgcdcBin, "deliver", "--until-end")
	cmd.Env = procEnv(map[string]string{
		"PGCDC_KAFKA_BROKERS":          b.s.brokers[0],
		"PGCDC_DELIVER_GROUP_ID":       topic,
		"PGCDC_DELIVER_METRICS_LISTEN": "off",
		"PGCDC_DELIVER_CONCURRENCY":    fmt.Sprint(res.Concurrency),
		"PGCDC_DELIVER_ROUTES":         string(routes),
	})
	res.Log = filepath.Join(o.outDir, "logs", "deliver.log")
	if err := os.MkdirAll(filepath.Dir(res.Log), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(res.Log)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf("deliver: pgcdc deliver --until-end to a trivial endpoint")
	t0 := time.Now()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(o.runTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("pgcdc deliver did not finish within %s (%d requests):\n%s", o.runTimeout, requests.Load(), tailOf(res.Log, 3000))
	}
	res.Seconds = time.Since(t0).Seconds()
	if err != nil {
		return fmt.Errorf("pgcdc deliver: %v:\n%s", err, tailOf(res.Log, 3000))
	}
	res.Requests = requests.Load()
	if res.Requests < int64(res.Events) {
		return fmt.Errorf("the endpoint got %d requests for %d events", res.Requests, res.Events)
	}
	mu.Lock()
	span := last.Sub(first)
	mu.Unlock()
	if span > 0 {
		res.EventsPerSec = float64(res.Requests) / span.Seconds()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		res.CPUPerEvent = res.CPUSeconds * 1e6 / float64(res.Events)
		res.PeakRSS = ru.Maxrss * 1024
	}
	logf("deliver: %d events in %.2fs (%.0f events/s over the deliveries), %.1f CPU µs/event", res.Events, res.Seconds, res.EventsPerSec, res.CPUPerEvent)
	return nil
}

func createTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
