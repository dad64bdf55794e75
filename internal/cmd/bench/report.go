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
		fmt.Fprintln(w, "| run | seconds | rows/s | client CPU µs/ev | walsender µs/ev | broker µs/ev | peak RSS | bytes/record | records/request |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, rd := range t.Rounds {
			runs := append(append([]*Run{rd.Limit}, rd.Pgcdc...), rd.Debezium...)
			for _, x := range runs {
				size := ""
				if x.AvgRecordBytes > 0 {
					size = fmt.Sprintf("%.0f", x.AvgRecordBytes)
				}
				perReq := ""
				if x.RecordsPerRequest > 0 {
					perReq = fmt.Sprintf("%.0f", x.RecordsPerRequest)
				}
				fmt.Fprintf(w, "| %s | %.2f | %.0f | %s | %s | %s | %s | %s | %s |\n", x.Label, x.Seconds, x.RowsPerSec,
					us(x.ClientCPUPerEvent), us(x.WalsenderPerEvent), us(x.BrokerPerEvent), mib(x.PeakRSS), size, perReq)
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
		if len(t.Rounds) > 0 && len(t.Rounds[0].Debezium) > 0 {
			fmt.Fprintln(w, "\n| pgcdc config | value schemas | Debezium rows/s (startup s) | pgcdc/Debezium rows/s (median) | per round | Debezium CPU µs/ev | its broker µs/ev | CPU/ev Debezium÷pgcdc | Debezium peak RSS | RSS Debezium÷pgcdc |")
			fmt.Fprintln(w, "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
			for _, s := range t.Summary {
				var rs []string
				for _, x := range s.SpeedsVsDebezium {
					rs = append(rs, fmt.Sprintf("%.1f", x))
				}
				fmt.Fprintf(w, "| %s | %v | %.0f (%.1f) | **%.1f** | %s | %s | %s | **%.1f** | %s | **%.1f** |\n", s.Variant, s.ValueSchemas,
					s.DebeziumRowsPerSec, s.DebeziumStartup, s.SpeedVsDebezium, strings.Join(rs, " "), us(s.DebeziumCPUPerEvent),
					us(s.DebeziumBrokerPE), s.CPUAdvantage, mib(s.DebeziumPeakRSS), s.MemoryAdvantage)
			}
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
	if sn := r.Snapshot; sn != nil && sn.Pgcdc != nil {
		fmt.Fprintf(w, "\n### Initial snapshot: %d rows (%s table), value schemas on\n\n", sn.Rows, mib(sn.TableBytes))
		fmt.Fprintln(w, "| reader | seconds | rows/s | CPU µs/row | peak RSS |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
		fmt.Fprintf(w, "| COPY (SELECT ...) TO STDOUT (the read limit) | %.2f | %.0f | | |\n", sn.CopySeconds, sn.CopyRowsPerSec)
		for _, x := range []*Run{sn.Pgcdc, sn.Debezium} {
			if x != nil {
				fmt.Fprintf(w, "| %s | %.2f | %.0f | %s | %s |\n", x.Label, x.Seconds, x.RowsPerSec, us(x.ClientCPUPerEvent), mib(x.PeakRSS))
			}
		}
		fmt.Fprintf(w, "\npgcdc snapshot/COPY **%.2f**", sn.VsCopy)
		if sn.VsStreaming > 0 {
			fmt.Fprintf(w, ", snapshot/its own streaming (%.0f rows/s) **%.2f**", sn.StreamingRowsPerSec, sn.VsStreaming)
		}
		if sn.VsDebezium > 0 {
			fmt.Fprintf(w, ", pgcdc/Debezium snapshot **%.1f**", sn.VsDebezium)
		}
		fmt.Fprintln(w)
	}
	if sw := r.Sweep; sw != nil {
		printSweep(w, sw)
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

// printSweep writes a table per factor of the sweep.
func printSweep(w io.Writer, sw *SweepResult) {
	dbz := false
	for _, f := range sw.Factors {
		for _, p := range f.Points {
			dbz = dbz || p.Debezium != nil
		}
	}
	for _, f := range sw.Factors {
		fmt.Fprintf(w, "\n### Sweep: %s (pgcdc with value schemas; otherwise ~120-byte rows, 1 partition, 1 table, %d rows per transaction)\n\n", f.Title, sweepBaseTxn)
		head := "| " + f.Title + " | rows | WAL | row bytes text / heap | bytes/record | limit rows/s | pgcdc rows/s | ratio | pgcdc CPU µs/ev | walsender µs/ev | broker µs/ev | pgcdc peak RSS | pgcdc startup s |"
		sep := "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		if dbz {
			head += " Debezium rows/s | Debezium CPU µs/ev | Debezium peak RSS |"
			sep += " ---: | ---: | ---: |"
		}
		fmt.Fprintln(w, head)
		fmt.Fprintln(w, sep)
		for _, p := range f.Points {
			wal, row, size, limit, rate, ratio, cpu, ws, br, rss, start := "", "", "", "", "", "", "", "", "", "", ""
			if wl := p.Workload; wl != nil {
				wal, row = mib(wl.WALBytes), fmt.Sprintf("%.0f / %.0f", wl.RowBytes, wl.HeapRowBytes)
			}
			if p.Limit != nil {
				limit = fmt.Sprintf("%.0f", p.Limit.RowsPerSec)
			}
			if x := p.Pgcdc; x != nil {
				size = fmt.Sprintf("%.0f", x.AvgRecordBytes)
				rate, ratio = fmt.Sprintf("%.0f", x.RowsPerSec), fmt.Sprintf("**%.2f**", p.Ratio)
				cpu, ws, br = us(x.ClientCPUPerEvent), us(x.WalsenderPerEvent), us(x.BrokerPerEvent)
				rss, start = mib(x.PeakRSS), fmt.Sprintf("%.1f", x.StartupSeconds)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", p.Value, p.Rows, wal, row, size, limit, rate, ratio, cpu, ws, br, rss, start)
			if dbz {
				if d := p.Debezium; d != nil {
					fmt.Fprintf(w, " %.0f | %s | %s |", d.RowsPerSec, us(d.ClientCPUPerEvent), mib(d.PeakRSS))
				} else {
					fmt.Fprint(w, " | | |")
				}
			}
			fmt.Fprintln(w)
		}
		for _, p := range f.Points {
			if p.Error != "" {
				fmt.Fprintf(w, "\n%s %s failed: %s\n", f.Title, p.Value, firstLine(p.Error))
			}
		}
	}
	if wu := sw.Warmup; wu != nil && wu.Error != "" {
		fmt.Fprintf(w, "\nwarm-up failed: %s\n", firstLine(wu.Error))
	}
	for _, pl := range sw.Plots {
		fmt.Fprintf(w, "\nPlot: %s", pl)
	}
	if len(sw.Plots) > 0 {
		fmt.Fprintln(w)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
