package retry

import (
	"context"
	"io"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		err    error
		client bool
		want   Class
	}{
		{200, nil, false, Success},
		{204, nil, false, Success},
		{299, nil, false, Success},
		{301, nil, false, Permanent},
		{400, nil, false, Permanent},
		{404, nil, false, Permanent},
		{404, nil, true, Retryable},
		{408, nil, false, Retryable},
		{425, nil, false, Retryable},
		{429, nil, false, Retryable},
		{500, nil, false, Retryable},
		{503, nil, false, Retryable},
		{0, io.ErrUnexpectedEOF, false, Retryable},
		{0, context.DeadlineExceeded, false, Retryable},
		{0, context.Canceled, false, Retryable},
		{100, nil, false, Permanent},
	} {
		if got := Classify(tc.status, tc.err, tc.client); got != tc.want {
			t.Errorf("Classify(%d, %v, %v) = %s, want %s", tc.status, tc.err, tc.client, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := Policy{MaxAttempts: 10, InitialBackoff: time.Second, MaxBackoff: 10 * time.Second}
	for _, tc := range []struct {
		n        int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, time.Second},
		{3, 0.5, 3 * time.Second, 3 * time.Second},
		{4, 0, 4 * time.Second, 4 * time.Second},
		{5, 0, 5 * time.Second, 5 * time.Second}, // 16s capped at 10s
		{50, 0.999, 5 * time.Second, 10 * time.Second},
	} {
		got := p.Backoff(tc.n, tc.rnd)
		if got < tc.min || got > tc.max {
			t.Errorf("Backoff(%d, %v) = %s, want in [%s, %s]", tc.n, tc.rnd, got, tc.min, tc.max)
		}
	}
}

func TestNext(t *testing.T) {
	p := Policy{MaxAttempts: 3, MaxAge: time.Minute, InitialBackoff: time.Second, MaxBackoff: 10 * time.Second}
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name       string
		n          int
		c          Class
		now        time.Time
		retryAfter time.Duration
		giveUp     string
		delay      time.Duration
	}{
		{"first failure", 1, Retryable, t0, 0, "", 500 * time.Millisecond},
		{"permanent", 1, Permanent, t0, 0, "permanent", 0},
		{"attempts exhausted", 3, Retryable, t0, 0, "max_attempts", 2 * time.Second},
		{"retry-after longer", 1, Retryable, t0, 30 * time.Second, "", 30 * time.Second},
		{"retry-after beyond the age", 2, Retryable, t0.Add(50 * time.Second), 20 * time.Second, "max_age", 20 * time.Second},
		{"age exceeded", 2, Retryable, t0.Add(61 * time.Second), 0, "max_age", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Next(tc.n, tc.c, t0, tc.now, tc.retryAfter, 0)
			if d.GiveUp != (tc.giveUp != "") || d.Reason != tc.giveUp {
				t.Fatalf("Next = %+v, want give up %q", d, tc.giveUp)
			}
			if tc.giveUp != "permanent" && d.Delay != tc.delay {
				t.Fatalf("delay %s, want %s", d.Delay, tc.delay)
			}
		})
	}
	noAge := Policy{MaxAttempts: 100, InitialBackoff: time.Second, MaxBackoff: time.Second}
	if d := noAge.Next(5, Retryable, t0, t0.Add(1000*time.Hour), 0, 0); d.GiveUp {
		t.Fatalf("MaxAge 0 gave up: %+v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"Fri, 02 Jan 2026 03:04:35 GMT", 30 * time.Second},
		{"Fri, 02 Jan 2026 03:00:00 GMT", 0},
		{"99999999999", 365 * 24 * time.Hour},
	} {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
