package main

import (
	"fmt"
	"io"
	"strings"
)

func mib(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func us(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}

// printReport writes the results as Markdown tables (pasteable into docs/performance.md).
func printReport(w io.Writer, r *Results) {
	m := r.Machine
	fmt.Fprintf(w, "\n## pgcdc benchmark, %s\n\n", r.Started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %d MiB RAM, Linux %s, load at start %s; PostgreSQL %s, Kafka %s, %s, %s. Wall time %.0fs.\n",
		m.CPUs, m.CPUModel, m.MemoryMiB, m.Kernel, m.Load1, m.Postgres, orNA(m.Kafka), orNA(m.Pgcdc), m.GoVersion, r.Seconds)
	if t := r.Throughput; t != nil {
		wl := t.Workload
		fmt.Fprintf(w, "\n### Throughput: %d rows, %d per transaction, %.0f bytes/row as text (%.0f in the heap), %.1f MiB of WAL\n\n",
			wl.Rows, wl.RowsPerTxn, wl.RowBytes, wl.HeapRowBytes, float64(wl.WALBytes)/(1<<20))
		if vs, ok := r.Settings["variants"].([]variant); ok {
			for _, v := range vs[1:] {
				fmt.Fprintf(w, "Variant %s: %v\n\n", v.Name, v.Env)
			}
		}
		fmt.Fprintln(w, "| run | seconds | rows/s | client CPU µs/ev | walsender µs/ev | broker µs/ev | peak RSS | bytes/record |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, rd := range t.Rounds {
			runs := append([]*Run{rd.Limit}, rd.Pgcdc...)
			for _, x := range runs {
				size := ""
				if x.AvgRecordBytes > 0 {
					size = fmt.Sprintf("%.0f", x.AvgRecordBytes)
				}
				fmt.Fprintf(w, "| %s | %.2f | %.0f | %s | %s | %s | %s | %s |\n", x.Label, x.Seconds, x.RowsPerSec,
					us(x.ClientCPUPerEvent), us(x.WalsenderPerEvent), us(x.BrokerPerEvent), mib(x.PeakRSS), size)
			}
		}
		fmt.Fprintln(w, "\n| pgcdc config | value schemas | limit rows/s | pgcdc events/s | ratio (median) | ratios | pgcdc CPU µs/ev | broker µs/ev | pgcdc peak RSS |")
		fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
		for _, s := range t.Summary {
			var rs []string
			for _, x := range s.Ratios {
				rs = append(rs, fmt.Sprintf("%.2f", x))
			}
			fmt.Fprintf(w, "| %s | %v | %.0f | %.0f | **%.2f** | %s | %s | %s | %s |\n", s.Variant, s.ValueSchemas, s.LimitRowsPerSec, s.PgcdcRowsPerSec,
				s.Ratio, strings.Join(rs, " "), us(s.PgcdcCPUPerEvent), us(s.BrokerPerEvent), mib(s.PeakRSS))
		}
	}
	if l := r.Latency; l != nil && l.Measured > 0 {
		fmt.Fprintf(w, "\n### Latency: %d rows/s in transactions of %d, %.0fs measured after %.0fs warm-up (value schemas %v)\n\n",
			l.RateTarget, l.RowsPerTxn, l.DurationSeconds, l.WarmupSeconds, l.ValueSchemas)
		fmt.Fprintln(w, "| p50 | p95 | p99 | max | mean | rows | writer rows/s | pgcdc CPU | broker CPU | pgcdc peak RSS |")
		fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		fmt.Fprintf(w, "| %.1f ms | %.1f ms | **%.1f ms** | %.1f ms | %.1f ms | %d | %.0f | %.0f%% | %.0f%% | %s |\n",
			l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs, l.MeanMs, l.Measured, l.WriterRate, l.PgcdcCPUPercent, l.BrokerCPUPct, mib(l.PeakRSS))
	}
	if g := r.Large; g != nil && g.Pgcdc != nil {
		fmt.Fprintf(w, "\n### Large transaction: %d rows in one transaction, %.1f MiB of WAL\n\n", g.Rows, float64(g.WALBytes)/(1<<20))
		fmt.Fprintln(w, "| run | seconds to last ack | rows/s | client CPU µs/ev | peak RSS |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
		for _, x := range []*Run{g.Limit, g.Pgcdc} {
			if x != nil {
				fmt.Fprintf(w, "| %s | %.2f | %.0f | %s | %s |\n", x.Label, x.Seconds, x.RowsPerSec, us(x.ClientCPUPerEvent), mib(x.PeakRSS))
			}
		}
		if g.Ratio > 0 {
			fmt.Fprintf(w, "\nratio pgcdc/pg_recvlogical: **%.2f**\n", g.Ratio)
		}
	}
	if d := r.Deliver; d != nil && d.Requests > 0 {
		fmt.Fprintf(w, "\n### Deliver: %d events (%d keys) on %d partitions to an endpoint answering 204, ordering %s, concurrency %d per partition\n\n",
			d.Events, d.Keys, d.Partitions, d.Ordering, d.Concurrency)
		fmt.Fprintln(w, "| events/s (first to last request) | process seconds (join included) | requests | CPU µs/event | peak RSS |")
		fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: |")
		fmt.Fprintf(w, "| **%.0f** | %.2f | %d | %.1f | %s |\n", d.EventsPerSec, d.Seconds, d.Requests, d.CPUPerEvent, mib(d.PeakRSS))
	}
	if in := r.Incremental; in != nil && in.Seconds > 0 {
		fmt.Fprintf(w, "\n### Incremental snapshot: %d rows in chunks of %d while %d rows/s stream (value schemas true)\n\n", in.Rows, in.ChunkRows, in.LatencyRate)
		fmt.Fprintln(w, "| seconds | rows/s | stream p50 before | p99 before | p50 during | p99 during | max during | pgcdc CPU | pgcdc peak RSS |")
		fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		fmt.Fprintf(w, "| %.1f | **%.0f** | %.1f ms | %.1f ms | %.1f ms | **%.1f ms** | %.1f ms | %.0f%% | %s |\n", in.Seconds, in.RowsPerSec,
			in.Baseline.P50Ms, in.Baseline.P99Ms, in.During.P50Ms, in.During.P99Ms, in.During.MaxMs, in.PgcdcCPUPercent, mib(in.PeakRSS))
	}
	if p := r.Profile; p != nil {
		fmt.Fprintf(w, "\n### Profile (pgcdc, value schemas %v, a %.1fs run with the profiler on): %s\n\n```\n%s\n```\n", p.ValueSchemas, p.RunSeconds, p.CPUProfile, p.TopFlat)
		fmt.Fprintf(w, "\nCumulative:\n\n```\n%s\n```\n\nAllocations (alloc_space): %s\n\n```\n%s\n```\n", p.TopCum, p.AllocsProfile, p.TopAllocs)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nERROR: %s\n", e)
	}
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}
