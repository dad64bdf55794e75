package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pgcdc/pgcdc/pkg/deliver/retry"
)

// Request headers pgcdc deliver adds besides the Standard Webhooks ones.
const (
	HeaderIdempotencyKey = "Idempotency-Key" // the event id again (webhook-id), for receivers that look for this name
	HeaderTopic          = "Pgcdc-Topic"     // where the event was read (for a redriven event: where it was first read)
	HeaderPartition      = "Pgcdc-Partition"
	HeaderOffset         = "Pgcdc-Offset"
	HeaderLSN            = "Pgcdc-Lsn"      // source.lsn of a change event
	HeaderPosition       = "Pgcdc-Position" // the event's position in its transaction
	HeaderAttempt        = "Pgcdc-Attempt"  // 1 for the first attempt
	HeaderRoute          = "Pgcdc-Route"
)

// excerptBytes is how much of a failed answer's body is kept (logs, dead-letter header).
const excerptBytes = 1024

// attempt makes one HTTP attempt at d and records its outcome in d.
func (e *Engine) attempt(hard context.Context, d *delivery) {
	rt := d.rt
	d.attempts++
	start := time.Now()
	if d.attempts == 1 {
		d.first = start
	}
	if d.prep == nil { // the event cannot be put in the route's format (errText says why)
		d.outcome, d.class, d.last = outcomeFailed, retry.Permanent, start
		e.m.attempt(rt.Name, 0, d.attempts > 1, "payload")
		return
	}
	body := d.prep.Body(d.attempts, e.o.Retry.MaxAttempts)
	ctx, cancel := context.WithTimeout(hard, rt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.URL, bytes.NewReader(body))
	if err != nil { // the URL was checked at start-up
		d.outcome, d.class, d.errText, d.last = outcomeFailed, retry.Permanent, err.Error(), time.Now()
		return
	}
	h := rt.Header.Clone()
	h.Set("Content-Type", d.prep.ContentType())
	h.Set("User-Agent", e.o.UserAgent)
	rt.Signer.Sign(h, d.id, start, body)
	h.Set(HeaderIdempotencyKey, d.id)
	ev := d.ev
	h.Set(HeaderTopic, ev.OriginTopic)
	h.Set(HeaderPartition, strconv.Itoa(ev.OriginPartition))
	h.Set(HeaderOffset, strconv.FormatInt(ev.OriginOffset, 10))
	if ev.Change && ev.Source.HasLSN {
		h.Set(HeaderLSN, strconv.FormatUint(ev.Source.LSN, 10))
	}
	if ev.HasPosition {
		h.Set(HeaderPosition, strconv.FormatInt(ev.Position, 10))
	}
	h.Set(HeaderAttempt, strconv.Itoa(d.attempts))
	h.Set(HeaderRoute, rt.Name)
	req.Header = h

	resp, err := e.clients[rt.Name].Do(req)
	status := 0
	var excerpt []byte
	var retryAfter time.Duration
	if err == nil {
		status = resp.StatusCode
		if status >= 200 && status < 300 {
			// Read a little so the connection can be reused; a slow or long body does not
			// change the answer.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		} else {
			excerpt, _ = io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
			retryAfter = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		_ = resp.Body.Close()
	}
	d.last = time.Now()
	if status == 0 && hard.Err() != nil {
		d.outcome = outcomeAborted
		return
	}
	d.class = retry.Classify(status, err, e.o.RetryClientErrors)
	reason := ""
	if d.class != retry.Success {
		reason = failReason(status, err)
	}
	e.m.attempt(rt.Name, d.last.Sub(start), d.attempts > 1, reason)
	if d.class == retry.Success {
		d.outcome = outcomeDelivered
		return
	}
	d.outcome, d.status, d.excerpt, d.retryAfter = outcomeFailed, status, excerpt, retryAfter
	d.errText = ""
	if err != nil {
		d.errText = redactErr(err)
	} else {
		d.errText = "HTTP " + strconv.Itoa(status)
	}
}

// failReason is the failed-attempts metric's reason label.
func failReason(status int, err error) string {
	switch {
	case err != nil:
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "connection"
	case status >= 500:
		return "status_5xx"
	case status >= 400:
		return "status_4xx"
	}
	return "status_other"
}

// redactErr is err's text without the request URL (url.Error quotes it, query tokens included).
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
