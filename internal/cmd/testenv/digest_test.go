package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	var long []string
	for i := 0; i < 100; i++ {
		long = append(long, fmt.Sprintf("    kinds.go:356: fault %d", i))
	}
	cases := []struct {
		name      string
		in        string
		want      []string
		wantNot   []string
		wantEmpty bool
	}{
		{name: "all passed", in: "ok  \tgithub.com/x/a\t1.0s\nok  \tgithub.com/x/b\t2.0s\n", wantEmpty: true},
		{
			name: "a failure in the middle",
			in: "ok  \tgithub.com/x/a\t1.0s\n--- FAIL: TestShortChaos (272.34s)\n" + strings.Join(long, "\n") +
				"\n    chaos_test.go:55: broker lane, broker-kill fault: boom\nFAIL\nFAIL\tgithub.com/x/chaos\t280s\nok  \tgithub.com/x/z\t1s\n",
			want:    []string{"--- FAIL: TestShortChaos", "chaos_test.go:55: broker lane, broker-kill fault: boom", "fault 99", "[... 71 lines above]"},
			wantNot: []string{"fault 69\n", "ok  \tgithub.com/x/z"},
		},
		{
			name: "a panic",
			in:   "panic: runtime error: index out of range\n\ngoroutine 7 [running]:\nmain.f()\n\t/x/a.go:3 +0x1\nFAIL\tgithub.com/x/p\t0.1s\n",
			want: []string{"panic: runtime error", "main.f()", "/x/a.go:3"},
		},
		{
			name: "verbose: the log before the FAIL line",
			in:   "=== RUN   TestX\n    x_test.go:5: step one\n    x_test.go:9: it broke\n--- FAIL: TestX (1.00s)\n=== RUN   TestY\n--- PASS: TestY (0.00s)\nFAIL\n",
			want: []string{"--- FAIL: TestX", "go test -v", "x_test.go:9: it broke"},
		},
		{
			name:    "a failed subtest",
			in:      "    y_test.go:1: old noise\n--- FAIL: TestP (1.00s)\n    --- FAIL: TestP/sub (1.00s)\n        p_test.go:7: sub broke\nFAIL\n",
			want:    []string{"--- FAIL: TestP (1.00s)", "--- FAIL: TestP/sub", "p_test.go:7: sub broke"},
			wantNot: []string{"old noise"},
		},
		{name: "no newline at the end", in: "--- FAIL: TestX (0.00s)\n    x_test.go:9: wrong", want: []string{"x_test.go:9: wrong"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var pass, rep strings.Builder
			d := newDigest(&pass)
			for _, chunk := range strings.SplitAfter(c.in, "s") { // writes cut mid-line
				if _, err := d.Write([]byte(chunk)); err != nil {
					t.Fatal(err)
				}
			}
			d.report(&rep)
			if pass.String() != c.in {
				t.Fatalf("output not passed through unchanged")
			}
			got := rep.String()
			if c.wantEmpty != (got == "") {
				t.Fatalf("digest %q, want empty %v", got, c.wantEmpty)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("digest lacks %q:\n%s", w, got)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("digest has %q:\n%s", w, got)
				}
			}
		})
	}
}
