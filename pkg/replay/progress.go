package replay

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// progress reports until ctx ends: a bar with rate and ETA on a terminal, log lines otherwise.
func (e *engine) progress(ctx context.Context, start time.Time) {
	t := time.NewTicker(e.opts.ProgressInterval)
	defer t.Stop()
	lastN, lastT := int64(0), start
	for {
		select {
		case <-ctx.Done():
			if e.opts.Progress != nil {
				e.draw(start, 0, true)
			}
			return
		case now := <-t.C:
			n := e.records.Load()
			rate := float64(n-lastN) / now.Sub(lastT).Seconds()
			lastN, lastT = n, now
			if e.opts.Progress != nil {
				e.draw(start, rate, false)
				continue
			}
			ev := e.log.Info().Int64("records", n).Int64("rows", e.rows.Load()).Float64("records_per_s", float64(int64(rate)))
			if total := e.total.Load(); total > 0 {
				ev = ev.Int64("total", total).Float64("percent", float64(int64(1000*float64(n)/float64(total)))/10)
				if rate > 0 {
					ev = ev.Int64("eta_s", int64(float64(total-n)/rate))
				}
			}
			ev.Msg("replay progress")
		}
	}
}

// draw writes one progress bar line (\r-rewritten); final ends it with a newline.
func (e *engine) draw(start time.Time, rate float64, final bool) {
	n, total := e.records.Load(), e.total.Load()
	elapsed := time.Since(start)
	if final || rate <= 0 {
		rate = float64(n) / max(elapsed.Seconds(), 1e-9)
	}
	var line string
	if total > 0 {
		frac := min(float64(n)/float64(total), 1)
		const width = 30
		filled := int(frac * width)
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		eta := "--"
		if rate > 0 && n < total {
			eta = (time.Duration(float64(total-n)/rate) * time.Second).Round(time.Second).String()
		}
		line = fmt.Sprintf("\r[%s] %5.1f%% %d/%d records  %.0f/s  ETA %s   ", bar, 100*frac, n, total, rate, eta)
	} else {
		line = fmt.Sprintf("\r%d records applied  %.0f/s  %s (following)   ", n, rate, elapsed.Round(time.Second))
	}
	fmt.Fprint(e.opts.Progress, line)
	if final {
		fmt.Fprintln(e.opts.Progress)
	}
}
