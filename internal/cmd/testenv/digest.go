package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// digest passes a `go test` output through and keeps, for each failed test, its `--- FAIL` line and
// the last lines of its log, so that the end of a long run repeats why it failed: a CI log that
// shows only its head and tail then still names the failure.
type digest struct {
	mu      sync.Mutex
	out     io.Writer
	partial []byte
	blocks  []*failBlock
	cur     *failBlock
	recent  []string // the last log lines seen anywhere: with -v a test's log comes before its --- FAIL
}

type failBlock struct {
	header string
	lines  []string // the last keep lines of the block
	cut    int      // lines dropped from the front
	before []string // the log lines just before the header (go test -v prints them there)
}

const digestKeep = 30

func newDigest(out io.Writer) *digest { return &digest{out: out} }

func (d *digest) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.out.Write(p)
	d.partial = append(d.partial, p...)
	for {
		i := bytes.IndexByte(d.partial, '\n')
		if i < 0 {
			break
		}
		d.line(string(d.partial[:i]))
		d.partial = d.partial[i+1:]
	}
	return n, err
}

// line files one line of output: a `--- FAIL` line opens a block, indented lines extend it, and
// anything else closes it.
func (d *digest) line(l string) {
	trimmed := strings.TrimLeft(l, " ")
	switch {
	case strings.HasPrefix(trimmed, "--- FAIL"):
		d.cur = &failBlock{header: l, before: append([]string(nil), d.recent...)}
		d.blocks = append(d.blocks, d.cur)
	case strings.HasPrefix(trimmed, "panic:"):
		d.cur = &failBlock{header: l}
		d.blocks = append(d.blocks, d.cur)
	case d.cur != nil && (strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "goroutine ")):
		d.cur.lines = append(d.cur.lines, l)
		if len(d.cur.lines) > digestKeep {
			d.cur.lines = d.cur.lines[1:]
			d.cur.cut++
		}
	case d.cur != nil && strings.HasPrefix(d.cur.header, "panic:"):
		// a panic's stack has unindented frames
		d.cur.lines = append(d.cur.lines, l)
		if len(d.cur.lines) > digestKeep {
			d.cur.lines = d.cur.lines[:digestKeep]
		}
	default:
		d.cur = nil
	}
	if strings.HasPrefix(l, "    ") && !strings.HasPrefix(trimmed, "--- ") {
		d.recent = append(d.recent, l)
		if len(d.recent) > digestKeep {
			d.recent = d.recent[1:]
		}
	}
}

// report prints the failed tests' blocks, or nothing when there were none.
func (d *digest) report(w io.Writer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.partial) > 0 {
		d.line(string(d.partial))
		d.partial = nil
	}
	if len(d.blocks) == 0 {
		return
	}
	fmt.Fprintf(w, "testenv: failure digest (%d failed tests or panics; the end of each one's log):\n", len(d.blocks))
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }
	for i, b := range d.blocks {
		fmt.Fprintln(w, b.header)
		if len(b.lines) == 0 && i+1 < len(d.blocks) && indent(d.blocks[i+1].header) > indent(b.header) {
			continue // a parent whose subtest failed: the subtest's block follows
		}
		if b.cut > 0 {
			fmt.Fprintf(w, "    [... %d lines above]\n", b.cut)
		}
		lines := b.lines
		if len(lines) == 0 && len(b.before) > 0 {
			fmt.Fprintln(w, "    [the log lines printed just before it (go test -v):]")
			lines = b.before
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}
