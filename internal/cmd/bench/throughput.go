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

// Round is pg_recvlogical followed by pgcdc with each schema setting and variant, then Debezium with
// each schema setting (-debezium), on fresh slots.
type Round struct {
	Limit    *Run   `json:"pg_recvlogical"`
	Pgcdc    []*Run `json:"pgcdc"`
	Debezium []*Run `json:"debezium,omitempty"` // in the order of -schemas
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
	// Debezium with the same value_schemas setting (medians over the rounds; zero without -debezium):
	// its rows/s, CPU µs per event and peak RSS, and pgcdc's against them (median of the rounds'
	// ratios: rows/s pgcdc/Debezium, CPU per event and peak RSS Debezium/pgcdc, so higher is better).
	DebeziumRowsPerSec  float64   `json:"debezium_rows_per_sec,omitempty"`
	DebeziumCPUPerEvent float64   `json:"debezium_cpu_us_per_event,omitempty"`
	DebeziumBrokerPE    float64   `json:"debezium_broker_cpu_us_per_event,omitempty"`
	DebeziumPeakRSS     int64     `json:"debezium_peak_rss_bytes,omitempty"`
	DebeziumStartup     float64   `json:"debezium_startup_seconds,omitempty"`
	SpeedVsDebezium     float64   `json:"speed_vs_debezium,omitempty"`
	SpeedsVsDebezium    []float64 `json:"speeds_vs_debezium,omitempty"`
	CPUAdvantage        float64   `json:"cpu_per_event_debezium_over_pgcdc,omitempty"`
	MemoryAdvantage     float64   `json:"peak_rss_debezium_over_pgcdc,omitempty"`
	DebeziumRecordBytes float64   `json:"debezium_avg_record_bytes,omitempty"`
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
		recv     string
		pgcdc    []string
		debezium []string // per -schemas setting
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
		if o.debezium {
			for _, vs := range o.schemas {
				n := fmt.Sprintf("b%d_dbz_%s", i+1, schemaName(vs))
				rounds[i].debezium = append(rounds[i].debezium, n)
				all = append(all, n)
			}
		}
	}
	const profSlot, warmSlot = "b_profile", "b_warmup"
	if o.profileDir != "" {
		all = append(all, profSlot)
	}
	if o.warmup {
		all = append(all, warmSlot)
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

	if o.warmup {
		// The broker's JIT compiles its hot paths during the first runs: one pgcdc run with value
		// schemas (the broker's heaviest) before round 1, not reported, so that round 1 is measured
		// on a warm broker as the later rounds are (the first round read 0.77 where the later ones
		// read 1.14 and 0.98 without it).
		logf("throughput: warm-up run of pgcdc (value schemas on), not reported")
		spec := pgcdcSpec(o, b.s, b.dsn, "warmup-pgcdc", warmSlot, pub, "bwarm", table, true, w.end, w.Rows, nil)
		r, err := measure(ctx, o, b.s, b.db, spec)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := finishPgcdcRun(ctx, o, b.s, r, "bwarm.public."+table, true); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		logRun(r)
		b.dropSlots(ctx, warmSlot)
	}
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
		for j, vs := range o.schemas {
			if !o.debezium {
				break
			}
			label := fmt.Sprintf("r%d-debezium-%s", i+1, schemaName(vs))
			prefix := fmt.Sprintf("b%d_dbz_%s", i+1, schemaName(vs))
			logf("throughput round %d/%d: Debezium, value schemas %v", i+1, o.repeat, vs)
			r, err := b.measureDebezium(ctx, label, rs.debezium[j], pub, table, prefix, vs, w.Rows, nil)
			if err != nil {
				return err
			}
			round.Debezium = append(round.Debezium, r)
			logRun(r)
			b.dropSlots(ctx, rs.debezium[j])
		}
		tr.Rounds = append(tr.Rounds, round)
	}
	tr.Summary = summarize(tr.Rounds, b.configs(), o.schemas)
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
	perReq := ""
	if r.RecordsPerRequest > 0 {
		perReq = fmt.Sprintf("; %.0f records per produce request", r.RecordsPerRequest)
	}
	logf("  %s: %.2fs (startup %.2fs), %.0f rows/s; CPU µs/event: client %.1f, walsender %.1f, broker %.1f; peak RSS %.1f MiB%s",
		r.Label, r.Seconds, r.StartupSeconds, r.RowsPerSec, r.ClientCPUPerEvent, r.WalsenderPerEvent, r.BrokerPerEvent, float64(r.PeakRSS)/(1<<20), perReq)
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

func summarize(rounds []Round, configs []config, schemas []bool) []Summary {
	var out []Summary
	for j, c := range configs {
		s := Summary{Variant: c.variant.Name, ValueSchemas: c.schemas}
		var limit, rate, cpu, ws, br, lws, size, start []float64
		var dRate, dCPU, dBroker, dStart, dSize, cpuAdv, memAdv []float64
		for _, r := range rounds {
			if j >= len(r.Pgcdc) {
				continue
			}
			p := r.Pgcdc[j]
			if d := debeziumRun(r, schemas, c.schemas); d != nil {
				dRate = append(dRate, d.RowsPerSec)
				dCPU = append(dCPU, d.ClientCPUPerEvent)
				dBroker = append(dBroker, d.BrokerPerEvent)
				dStart = append(dStart, d.StartupSeconds)
				dSize = append(dSize, d.AvgRecordBytes)
				s.SpeedsVsDebezium = append(s.SpeedsVsDebezium, p.RowsPerSec/d.RowsPerSec)
				if p.ClientCPUPerEvent > 0 {
					cpuAdv = append(cpuAdv, d.ClientCPUPerEvent/p.ClientCPUPerEvent)
				}
				if p.PeakRSS > 0 {
					memAdv = append(memAdv, float64(d.PeakRSS)/float64(p.PeakRSS))
				}
				s.DebeziumPeakRSS = max(s.DebeziumPeakRSS, d.PeakRSS)
			}
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
		s.DebeziumRowsPerSec, s.DebeziumCPUPerEvent, s.DebeziumBrokerPE = median(dRate), median(dCPU), median(dBroker)
		s.DebeziumStartup, s.DebeziumRecordBytes = median(dStart), median(dSize)
		s.SpeedVsDebezium, s.CPUAdvantage, s.MemoryAdvantage = median(s.SpeedsVsDebezium), median(cpuAdv), median(memAdv)
		out = append(out, s)
	}
	return out
}

// debeziumRun is a round's Debezium run with the given value_schemas setting (nil without one).
func debeziumRun(r Round, schemas []bool, valueSchemas bool) *Run {
	for i, vs := range schemas {
		if vs == valueSchemas && i < len(r.Debezium) {
			return r.Debezium[i]
		}
	}
	return nil
}
