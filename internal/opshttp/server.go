package opshttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Source is what the endpoint serves: Prometheus metrics and a readiness answer. pgcdc run's
// *metrics.Metrics and pgcdc deliver's *deliver.Metrics are both one.
type Source interface {
	Handler() http.Handler
	Ready() (bool, string)
}

// Server is a running operations endpoint.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Handler returns the endpoint's routes for m.
func Handler(m Source) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := m.Ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = fmt.Fprintln(w, reason)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "pgcdc operations endpoint: /metrics /healthz /readyz")
	})
	return mux
}

// Start listens on addr (host:port; port 0 picks a free one) and serves m's endpoint until Close.
func Start(addr string, m Source, log zerolog.Logger) (*Server, error) {
	return StartFor("metrics.listen", addr, m, log)
}

// StartFor is Start for the endpoint configured by key (named in the error).
func StartFor(key, addr string, m Source, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot listen on %q: %w (choose another address, or set it to off)", key, addr, err)
	}
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           Handler(m),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", s.Addr()).Msg("operations endpoint stopped")
		}
	}()
	return s, nil
}

// Addr is the address the endpoint listens on (with the port chosen when addr had port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the endpoint, waiting for requests in progress until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}
