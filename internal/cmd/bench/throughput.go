package main

import (
	"context"
	"fmt"
	"sort"
)

// ThroughputResult is the throughput mode: one workload, read by every consumer from its own slot.
type ThroughputResult struct {
	Workload *Workload `json:"workload"`
	Rounds   []Round   `json:"rounds"`
	Summary  []Summary `json:"summary"` // one per variant and value_schemas setting
}

// Round is pg_recvlogical followed by pgcdc with each schema setting and variant, on fresh slots.
type Round struct {
	Limit *Run   `json:"pg_recvlogical"`
	Pgcdc []*Run `json:"pgcdc"`
}

// Summary holds medians over the rounds for one variant and value_schemas setting.
type Summary struct {
	Variant           string    `json:"variant"`
	ValueSchemas      bool      `json:"value_schemas"`
	LimitRowsPerSec   float64   `json:"limit_rows_per_sec"`
	PgcdcRowsPerSec   float64   `json:"pgcdc_events_per_sec"`
	Ratio             float64   `json:"ratio"` // median of the rounds' pgcdc/limit ratios
	Ratios            []float64 `json:"ratios"`
	PgcdcCPUPerEvent  float64   `json:"pgcdc_cpu_us_per_event"`
	WalsenderPerEvent float64   `json:"walsender_cpu_us_per_event"`
	BrokerPerEvent    float64   `json:"broker_cpu_us_per_event"`
	LimitWalsenderPE  float64   `json:"limit_walsender_cpu_us_per_event"`
	PeakRSS           int64     `json:"pgcdc_peak_rss_bytes"` // the largest of the rounds
	AvgRecordBytes    float64   `json:"avg_record_bytes"`
	StartupSeconds    float64   `json:"pgcdc_startup_seconds"`
}

func schemaName(v bool) string {
	if v {
		return "schema"
	}
	return "noschema"
}

func (b *bench) throughput(ctx context.Context) error {
	o := b.o
	const table, pub = "bench", "bench_pub"
	if err := createTable(ctx, b.db, table, pub); err != nil {
		return err
	}
	// Every slot exists before the workload, so each reads exactly the same WAL.
	type roundSlots struct {
		recv  string
		pgcdc []string
	}
	rounds := make([]roundSlots, o.repeat)
	var all []string
	for i := range rounds {
		rounds[i].recv = fmt.Sprintf("b%d_recv", i+1)
		all = append(all, rounds[i].recv)
		for _, c := range b.configs() {
			n := fmt.Sprintf("b%d_%s", i+1, c.tag())
			rounds[i].pgcdc = append(rounds[i].pgcdc, n)
			all = append(all, n)
		}
	}
	const profSlot = "b_profile"
	if o.profileDir != "" {
		all = append(all, profSlot)
	}
	if err := b.createSlots(ctx, all...); err != nil {
		return err
	}
	logf("throughput: writing %d rows in transactions of %d", o.rows, o.txnRows)
	w, err := writeWorkload(ctx, b.db, table, o.rows, o.txnRows)
	if err != nil {
		return err
	}
	tr := &ThroughputResult{Workload: w}
	b.res.Throughput = tr
	logf("throughput: workload written in %.1fs (%.0f rows/s), %.1f MiB of WAL, %.0f bytes/row as text, last commit ends at %s (exact: %v)",
		w.WriteSeconds, float64(w.Rows)/w.WriteSeconds, float64(w.WALBytes)/(1<<20), w.RowBytes, w.EndLSN, w.walInspection)

	for i, rs := range rounds {
		var round Round
		logf("throughput round %d/%d: pg_recvlogical", i+1, o.repeat)
		r, err := measure(ctx, o, b.s, b.db, recvlogicalSpec(b.s, b.dsn, fmt.Sprintf("r%d-pg_recvlogical", i+1), rs.recv, pub, w.end, w.Rows))
		if err != nil {
			return err
		}
		round.Limit = r
		logRun(r)
		b.dropSlots(ctx, rs.recv)
		for j, c := range b.configs() {
			label := fmt.Sprintf("r%d-pgcdc-%s", i+1, c.tag())
			prefix := fmt.Sprintf("b%d_%s", i+1, c.tag())
			logf("throughput round %d/%d: pgcdc %s, value_schemas=%v", i+1, o.repeat, c.variant.Name, c.schemas)
			spec := pgcdcSpec(o, b.s, b.dsn, label, rs.pgcdc[j], pub, prefix, table, c.schemas, w.end, w.Rows, c.variant.Env)
			r, err := measure(ctx, o, b.s, b.db, spec)
			if err != nil {
				return err
			}
			if err := finishPgcdcRun(ctx, o, b.s, r, prefix+".public."+table, c.schemas); err != nil {
				return err
			}
			r.Variant = c.variant.Name
			round.Pgcdc = append(round.Pgcdc, r)
			logRun(r)
			b.dropSlots(ctx, rs.pgcdc[j])
		}
		tr.Rounds = append(tr.Rounds, round)
	}
	tr.Summary = summarize(tr.Rounds, b.configs())
	if o.profileDir != "" {
		expect := 0.0
		for _, s := range tr.Summary {
			if s.Variant == "default" && s.ValueSchemas == o.profileSchemas || expect == 0 {
				expect = float64(w.Rows)/s.PgcdcRowsPerSec - s.StartupSeconds
			}
		}
		p, err := b.profile(ctx, profSlot, pub, table, w, expect)
		if err != nil {
			return err
		}
		b.res.Profile = p
		b.dropSlots(ctx, profSlot)
	}
	return nil
}

func logRun(r *Run) {
	logf("  %s: %.2fs (startup %.2fs), %.0f rows/s; CPU µs/event: client %.1f, walsender %.1f, broker %.1f; peak RSS %.1f MiB",
		r.Label, r.Seconds, r.StartupSeconds, r.RowsPerSec, r.ClientCPUPerEvent, r.WalsenderPerEvent, r.BrokerPerEvent, float64(r.PeakRSS)/(1<<20))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// config is one pgcdc run of a round: a variant with a value_schemas setting.
type config struct {
	variant variant
	schemas bool
}

func (c config) tag() string {
	if c.variant.Name == "default" {
		return schemaName(c.schemas)
	}
	return c.variant.Name + "_" + schemaName(c.schemas)
}

// configs lists the pgcdc runs of a round: for each schema setting, the default then the variants,
// so that the runs to compare follow each other closely.
func (b *bench) configs() []config {
	var out []config
	for _, vs := range b.o.schemas {
		for _, v := range b.o.variants {
			out = append(out, config{variant: v, schemas: vs})
		}
	}
	return out
}

func summarize(rounds []Round, configs []config) []Summary {
	var out []Summary
	for j, c := range configs {
		s := Summary{Variant: c.variant.Name, ValueSchemas: c.schemas}
		var limit, rate, cpu, ws, br, lws, size, start []float64
		for _, r := range rounds {
			if j >= len(r.Pgcdc) {
				continue
			}
			p := r.Pgcdc[j]
			limit = append(limit, r.Limit.RowsPerSec)
			rate = append(rate, p.RowsPerSec)
			s.Ratios = append(s.Ratios, p.RowsPerSec/r.Limit.RowsPerSec)
			cpu = append(cpu, p.ClientCPUPerEvent)
			ws = append(ws, p.WalsenderPerEvent)
			br = append(br, p.BrokerPerEvent)
			lws = append(lws, r.Limit.WalsenderPerEvent)
			size = append(size, p.AvgRecordBytes)
			start = append(start, p.StartupSeconds)
			if p.PeakRSS > s.PeakRSS {
				s.PeakRSS = p.PeakRSS
			}
		}
		s.LimitRowsPerSec, s.PgcdcRowsPerSec, s.Ratio = median(limit), median(rate), median(s.Ratios)
		s.PgcdcCPUPerEvent, s.WalsenderPerEvent, s.BrokerPerEvent = median(cpu), median(ws), median(br)
		s.LimitWalsenderPE, s.AvgRecordBytes, s.StartupSeconds = median(lws), median(size), median(start)
		out = append(out, s)
	}
	return out
}
