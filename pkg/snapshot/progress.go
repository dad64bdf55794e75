package snapshot

import (
	"sync/atomic"
	"time"
)

// Progress counts a snapshot's work for progress reports. It is safe for concurrent use.
type Progress struct {
	start       time.Time
	estimate    int64 // rows of the chunks to read in this run (pg_class.reltuples based)
	chunksTotal int
	chunksPrior int // chunks done by an earlier run
	rows        atomic.Int64
	chunksDone  atomic.Int64
}

// NewProgress starts counting a run that reads chunks (Done ones were finished by an earlier run).
func NewProgress(chunks []*Chunk) *Progress {
	p := &Progress{start: time.Now(), chunksTotal: len(chunks)}
	for _, c := range chunks {
		if c.Done {
			p.chunksPrior++
		} else {
			p.estimate += c.Estimate
		}
	}
	return p
}

// ChunkDone counts a chunk Kafka acknowledged whole.
func (p *Progress) ChunkDone() { p.chunksDone.Add(1) }

// Report is one progress line's numbers.
type Report struct {
	Rows        int64         // rows read in this run
	Estimate    int64         // rows expected in this run (0: unknown)
	RowsPerSec  float64       // average over the run
	ETA         time.Duration // -1 when unknown
	ChunksDone  int           // chunks acknowledged, earlier runs included
	ChunksTotal int
	Elapsed     time.Duration
}

// Report returns the numbers at now.
func (p *Progress) Report(now time.Time) Report {
	r := Report{Rows: p.rows.Load(), Estimate: p.estimate, ChunksDone: p.chunksPrior + int(p.chunksDone.Load()),
		ChunksTotal: p.chunksTotal, Elapsed: now.Sub(p.start), ETA: -1}
	if s := r.Elapsed.Seconds(); s > 0 {
		r.RowsPerSec = float64(r.Rows) / s
	}
	r.ETA = eta(r.Rows, r.Estimate, r.RowsPerSec)
	return r
}

// eta is the time left to read estimate rows at rate when done are read (-1: unknown).
func eta(done, estimate int64, rate float64) time.Duration {
	if estimate <= 0 || rate <= 0 {
		return -1
	}
	left := estimate - done
	if left < 0 {
		left = 0
	}
	return time.Duration(float64(left) / rate * float64(time.Second))
}
