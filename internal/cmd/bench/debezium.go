package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/debeziumtest"
)

// debeziumSettings are the Debezium settings of the throughput runs: Debezium's and Kafka Connect's
// own defaults, except what makes it read the benchmark's WAL (the slot created before the workload,
// the benchmark's publication, no snapshot) and offset.flush.interval.ms, which the test harness
// sets to 1 s and which is put back to Kafka Connect's default. Kafka 4's producer default
// linger.ms=5 is set again for the same reason (the test harness sets 0).
func debeziumSettings(slot, pub, include string) (connector, worker map[string]string) {
	connector = map[string]string{
		"slot.name":                   slot,
		"publication.name":            pub,
		"publication.autocreate.mode": "disabled",
		"snapshot.mode":               "no_data", // stream from the slot's start, which is before the workload
		"table.include.list":          include,
	}
	worker = map[string]string{
		"offset.flush.interval.ms": "60000",
		"producer.linger.ms":       "5",
	}
	return connector, worker
}

// measureDebezium runs Debezium (Kafka Connect standalone, JsonConverter with key and value schemas
// as valueSchemas says; overrides replace connector settings, e.g. snapshot.mode) over slot, from
// the JVM's start until the topic holds every row of the workload: Debezium confirms the slot only
// on its offset flushes, so the end criterion is the topic's end offset rather than the slot. CPU
// and peak RSS are the JVM's. With snapshot.mode initial, Start returns only once the snapshot is
// done and Debezium streams (its slot becomes active then), so its StartupSeconds include it.
func (b *bench) measureDebezium(ctx context.Context, label, slot, pub, table, prefix string, valueSchemas bool, rows int64, overrides map[string]string) (*Run, error) {
	return b.runDebezium(ctx, label, slot, pub, prefix,
		dbzTarget{include: "public." + table, topics: []string{prefix + ".public." + table}, partitions: b.o.partitions},
		valueSchemas, rows, overrides)
}

// dbzTarget is what a Debezium run captures: table.include.list, the topics the rows go to (its end
// criterion is their records adding up to the rows) and their partitions.
type dbzTarget struct {
	include    string
	topics     []string
	partitions int
}

// runDebezium is measureDebezium for any set of tables.
func (b *bench) runDebezium(ctx context.Context, label, slot, pub, prefix string, tg dbzTarget, valueSchemas bool, rows int64, overrides map[string]string) (*Run, error) {
	o, s := b.o, b.s
	connector, worker := debeziumSettings(slot, pub, tg.include)
	for k, v := range overrides {
		connector[k] = v
	}
	r := &Run{Consumer: "debezium", Label: label, Slot: slot, Rows: rows}
	vs := valueSchemas
	r.ValueSchemas = &vs
	r.Topic = tg.topics[0]
	if len(tg.topics) > 1 {
		r.Topic = fmt.Sprintf("%s ... %s (%d topics)", tg.topics[0], tg.topics[len(tg.topics)-1], len(tg.topics))
	}
	r.Log = filepath.Join(o.outDir, "logs", label+".log")
	brokerBefore := cpuSeconds(s.brokerPID)
	t0 := time.Now()
	c, err := debeziumtest.Start(ctx, debeziumtest.Options{
		PostgresDSN:  b.dsn,
		Brokers:      s.brokers,
		TopicPrefix:  prefix,
		Partitions:   tg.partitions,
		KeySchemas:   valueSchemas,
		ValueSchemas: valueSchemas,
		Extra:        connector,
		Worker:       worker,
		JVMOptions:   strings.Fields(o.debeziumJVM),
		StartTimeout: o.runTimeout, // an initial snapshot happens inside Start
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	defer c.Stop()
	r.StartupSeconds = time.Since(t0).Seconds()

	ends := &kafka.Client{Addr: kafka.TCP(s.brokers...), Timeout: 5 * time.Second,
		Transport: &kafka.Transport{MetadataTTL: time.Second}}
	deadline := t0.Add(o.runTimeout)
	// A Debezium that skipped the workload (e.g. started streaming at the current WAL position)
	// would otherwise wait out the whole run timeout.
	const stallLimit = 90 * time.Second
	lastCount, lastGrowth := int64(-1), time.Now()
	walsenderPID := 0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if gone, werr := c.Exited(); gone {
			return nil, fmt.Errorf("%s: Kafka Connect exited before it was done (%v):\n%s", label, werr, tailString(c.Log(), 3000))
		}
		if st, err := readSlot(ctx, b.db, slot); err == nil && st.pid != 0 {
			walsenderPID = st.pid
		}
		n := int64(0)
		counts, _ := topicEnds(ctx, ends, tg.topics, tg.partitions) // some topics may not exist yet
		for _, c := range counts {
			n += c
		}
		now := time.Now()
		if n >= rows {
			r.Seconds = now.Sub(t0).Seconds()
			break
		}
		if n != lastCount {
			lastCount, lastGrowth = n, now
		} else if now.Sub(lastGrowth) > stallLimit {
			return nil, fmt.Errorf("%s: topic %s stuck at %d of %d records for %s:\n%s", label, r.Topic, n, rows, stallLimit, tailString(c.Log(), 3000))
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("%s: topic %s holds %d of %d records after %s:\n%s", label, r.Topic, n, rows, o.runTimeout, tailString(c.Log(), 3000))
		}
	}
	r.collect(s, c.Pid(), walsenderPID, brokerBefore)
	if err := os.MkdirAll(filepath.Dir(r.Log), 0o755); err == nil {
		_ = os.WriteFile(r.Log, []byte(c.Log()), 0o644)
	}
	c.Stop()
	r.rates()

	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	counts, err := topicEnds(cctx, ends, tg.topics, tg.partitions)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	for _, c := range counts {
		r.TopicRecords += c
	}
	if _, avg, err := topicStats(cctx, s.brokers, tg.topics[0]); err == nil {
		r.AvgRecordBytes = avg
	}
	if !o.keepTopics {
		deleteTopics(cctx, s.brokers, tg.topics)
	}
	if r.TopicRecords != rows {
		return nil, fmt.Errorf("%s: topic %s holds %d records, want %d", label, r.Topic, r.TopicRecords, rows)
	}
	return r, nil
}

// topicEnd is the sum of the end offsets of a new topic's partitions (its record count); 0 and an
// error while the topic does not exist yet.
func topicEnd(ctx context.Context, c *kafka.Client, topic string, partitions int) (int64, error) {
	n, err := topicEnds(ctx, c, []string{topic}, partitions)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// topicEnds is topicEnd for several topics of the same number of partitions, in one request. With
// an error for some topic, the counts of the partitions that answered are returned beside it.
func topicEnds(ctx context.Context, c *kafka.Client, topics []string, partitions int) ([]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range topics {
		reqs := make([]kafka.OffsetRequest, partitions)
		for p := range reqs {
			reqs[p] = kafka.LastOffsetOf(p)
		}
		req.Topics[t] = reqs
	}
	res, err := c.ListOffsets(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(topics))
	var errs []error
	for i, t := range topics {
		for _, po := range res.Topics[t] {
			if po.Error != nil {
				errs = append(errs, fmt.Errorf("topic %s: %w", t, po.Error))
				continue
			}
			out[i] += po.LastOffset
		}
		if len(res.Topics[t]) != partitions {
			errs = append(errs, errors.New("topic "+t+": not every partition answered"))
		}
	}
	if len(errs) > 0 {
		return out, errs[0] // with the counts of the partitions that answered
	}
	return out, nil
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
