package webhooktest

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgcdc/pgcdc/pkg/deliver/signature"
)

// Faults are the probabilities (0..1, drawn per request, in this order) of each misbehaviour.
type Faults struct {
	Status5xx float64       // answer 500 or 503 (half of the 503s with Retry-After: 1)
	Timeout   float64       // hold the request for Hang, then close it unanswered
	Reset     float64       // reset the connection without answering
	SlowBody  float64       // answer 200 at once, then trickle a body for SlowFor
	Hang      time.Duration // default 2s
	SlowFor   time.Duration // default 300ms
}

// Request is one accepted request.
type Request struct {
	Header   http.Header
	Body     []byte
	Received time.Time
}

// Server is the endpoint.
type Server struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	faults   Faults
	secrets  []signature.Secret
	status   func(r *http.Request, body []byte) int // forced answer; 0: none
	delay    time.Duration
	accepted []Request
	rnd      *rand.Rand

	Requests   atomic.Int64 // every request received
	BadSigned  atomic.Int64 // requests whose signature did not verify (with secrets set)
	Injected   [4]atomic.Int64
	InFlight   atomic.Int64 // requests being handled now
	Interrupts atomic.Int64 // accepted requests whose client went away before the body was sent
}

// Indexes of Server.Injected.
const (
	Injected5xx = iota
	InjectedTimeout
	InjectedReset
	InjectedSlowBody
)

// New starts a server; Close stops it.
func New(seed uint64) *Server {
	s := &Server{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	s.URL = s.srv.URL
	return s
}

// Close stops the server (and ends hung requests).
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// SetFaults replaces the fault probabilities.
func (s *Server) SetFaults(f Faults) {
	if f.Hang == 0 {
		f.Hang = 2 * time.Second
	}
	if f.SlowFor == 0 {
		f.SlowFor = 300 * time.Millisecond
	}
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// SetSecrets makes the server verify signatures (requests that fail are counted in BadSigned and
// answered 401).
func (s *Server) SetSecrets(secrets ...signature.Secret) {
	s.mu.Lock()
	s.secrets = secrets
	s.mu.Unlock()
}

// SetStatus forces an answer for the requests f returns a status for (0: no forcing): a 2xx
// accepts, anything else refuses.
func (s *Server) SetStatus(f func(r *http.Request, body []byte) int) {
	s.mu.Lock()
	s.status = f
	s.mu.Unlock()
}

// SetDelay makes every request take d before its answer.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Accepted returns the accepted requests so far, in the order they were accepted.
func (s *Server) Accepted() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.accepted...)
}

// AcceptedCount is len(Accepted()).
func (s *Server) AcceptedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	s.InFlight.Add(1)
	defer s.InFlight.Add(-1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	f, secrets, force, delay := s.faults, s.secrets, s.status, s.delay
	draw := s.rnd.Float64()
	coin := s.rnd.IntN(4)
	s.mu.Unlock()
	if len(secrets) > 0 {
		if err := signature.Verify(r.Header, body, secrets, time.Now(), 5*time.Minute); err != nil {
			s.BadSigned.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if force != nil {
		if st := force(r, body); st != 0 {
			if st >= 200 && st < 300 {
				s.accept(w, r, body, st, 0)
				return
			}
			http.Error(w, "forced failure "+strconv.Itoa(st), st)
			return
		}
	}
	switch {
	case draw < f.Status5xx:
		s.Injected[Injected5xx].Add(1)
		if coin < 2 {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		if coin == 2 {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, "injected unavailability", http.StatusServiceUnavailable)
		return
	case draw < f.Status5xx+f.Timeout:
		s.Injected[InjectedTimeout].Add(1)
		select {
		case <-time.After(f.Hang):
		case <-r.Context().Done():
		}
		reset(w)
		return
	case draw < f.Status5xx+f.Timeout+f.Reset:
		s.Injected[InjectedReset].Add(1)
		reset(w)
		return
	case draw < f.Status5xx+f.Timeout+f.Reset+f.SlowBody:
		s.Injected[InjectedSlowBody].Add(1)
		s.accept(w, r, body, http.StatusOK, f.SlowFor)
		return
	}
	s.accept(w, r, body, http.StatusOK, 0)
}

// accept records the request and answers status, trickling a body over slow when > 0.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, body []byte, status int, slow time.Duration) {
	s.mu.Lock()
	s.accepted = append(s.accepted, Request{Header: r.Header.Clone(), Body: body, Received: time.Now()})
	s.mu.Unlock()
	if slow == 0 {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "ok")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	fl, _ := w.(http.Flusher)
	const pieces = 10
	for i := 0; i < pieces; i++ {
		if _, err := io.WriteString(w, "accepted, slowly\n"); err != nil {
			s.Interrupts.Add(1)
			return
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-time.After(slow / pieces):
		case <-r.Context().Done():
			s.Interrupts.Add(1)
			return
		}
	}
}

// reset closes the connection with a TCP RST and no answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("webhooktest: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
