package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffGrowsWithJitterAndStaysUnderTheCap(t *testing.T) {
	cases := []struct {
		initial, max time.Duration
	}{
		{100 * time.Millisecond, 5 * time.Second},
		{500 * time.Millisecond, 30 * time.Second},
		{time.Second, time.Second},
	}
	for _, c := range cases {
		b := New(c.initial, c.max)
		first := b.Next()
		if first < c.initial*3/4 || first > c.initial*5/4 {
			t.Errorf("%v: first wait %v, want within 25%% of the initial", c, first)
		}
		var last time.Duration
		distinct := map[time.Duration]bool{}
		for i := 0; i < 60; i++ {
			last = b.Next()
			distinct[last] = true
			if last > c.max {
				t.Fatalf("%v: wait %v above the cap", c, last)
			}
		}
		if last < c.max*3/4 {
			t.Errorf("%v: after 60 attempts the wait is %v, want near the cap", c, last)
		}
		if c.initial != c.max && len(distinct) < 5 {
			t.Errorf("%v: only %d distinct waits: no jitter", c, len(distinct))
		}
		b.Reset()
		if d := b.Next(); d > c.initial*5/4 {
			t.Errorf("%v: after Reset the wait is %v", c, d)
		}
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	cause := errors.New("stopping")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, cause) {
		t.Fatalf("Sleep = %v, want the cause", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep did not return at once")
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
