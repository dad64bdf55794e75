package retry

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is what an attempt's outcome means for the event.
type Class uint8

const (
	// Success: the endpoint answered 2xx; the event is delivered.
	Success Class = iota
	// Retryable: worth another attempt (5xx, 408, 425, 429, a timeout, a broken connection).
	Retryable
	// Permanent: another attempt would get the same answer (other 4xx, 3xx: redirects are not
	// followed).
	Permanent
)

func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	}
	return "permanent"
}

// Classify says what an attempt's outcome means. status is the HTTP status (0 when no response
// came: err says why). clientErrorsRetryable makes every 4xx retryable.
func Classify(status int, err error, clientErrorsRetryable bool) Class {
	if err != nil || status == 0 {
		return Retryable // no answer: a timeout, a refused or broken connection
	}
	switch {
	case status >= 200 && status < 300:
		return Success
	case status >= 500:
		return Retryable
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return Retryable
	case status >= 400 && status < 500 && clientErrorsRetryable:
		return Retryable
	}
	return Permanent
}

// Policy bounds the attempts at one event.
type Policy struct {
	MaxAttempts    int           // attempts in all, the first included; >= 1
	MaxAge         time.Duration // give up when the next attempt would start this long after the first; 0: no limit
	InitialBackoff time.Duration // wait after the first failed attempt (before jitter)
	MaxBackoff     time.Duration // the exponential growth stops here
}

// Backoff is the wait after the failed attempt number n (1-based): InitialBackoff doubled n-1
// times, capped at MaxBackoff, then jittered to [d/2, d) with rnd in [0, 1) ("equal jitter": never
// less than half, so a retry storm is spread out but no retry comes early).
func (p Policy) Backoff(n int, rnd float64) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rnd*float64(d/2))
}

// Decision is what to do after a failed attempt.
type Decision struct {
	GiveUp bool          // no further attempt: the event goes to the dead-letter topic (or is held)
	Reason string        // why it gives up: "permanent", "max_attempts", "max_age"
	Delay  time.Duration // otherwise: wait this long before the next attempt
}

// Next decides after the failed attempt number n (1-based) whose outcome was c. first is when the
// first attempt started, now is the time of the decision, retryAfter the endpoint's Retry-After
// (0 when absent): the wait is the longer of the backoff and retryAfter.
func (p Policy) Next(n int, c Class, first, now time.Time, retryAfter time.Duration, rnd float64) Decision {
	if c == Permanent {
		return Decision{GiveUp: true, Reason: "permanent"}
	}
	delay := max(p.Backoff(n, rnd), retryAfter)
	if n >= p.MaxAttempts {
		return Decision{GiveUp: true, Reason: "max_attempts", Delay: delay}
	}
	if p.MaxAge > 0 && now.Add(delay).Sub(first) > p.MaxAge {
		return Decision{GiveUp: true, Reason: "max_age", Delay: delay}
	}
	return Decision{Delay: delay}
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an HTTP-date (RFC 9110
// 10.2.3). It returns 0 for an absent, malformed or past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(365 * 24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
