package opshttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/rs/zerolog"
)

// Source is what the endpoint serves: Prometheus metrics and a readiness answer. pgcdc run's
// *metrics.Metrics and pgcdc deliver's *deliver.Metrics are both one.
type Source interface {
	Handler() http.Handler
	Ready() (bool, string)
}

// Options say where the endpoint listens and how.
type Options struct {
	Key    string // the configuration key of Listen, named in errors ("metrics.listen")
	Listen string // host:port; port 0 picks a free one
	// WebConfigFile is a Prometheus web configuration file (TLS, client certificates, basic auth;
	// exporter-toolkit); "" serves plain HTTP. Its key is named in errors as WebConfigKey.
	WebConfigFile string
	WebConfigKey  string
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

// Start listens on o.Listen and serves m's endpoint until Close. With o.WebConfigFile it serves as
// that Prometheus web configuration file says, which is checked here so that a mistake in it stops
// start-up.
func Start(o Options, m Source, log zerolog.Logger) (*Server, error) {
	if o.WebConfigFile != "" {
		if err := web.Validate(o.WebConfigFile); err != nil {
			return nil, fmt.Errorf("%s %q: %w (the format: https://prometheus.io/docs/prometheus/latest/configuration/https/)", o.WebConfigKey, o.WebConfigFile, err)
		}
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot listen on %q: %w (choose another address, or set it to off)", o.Key, o.Listen, err)
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
	webFile := o.WebConfigFile
	flags := &web.FlagConfig{WebListenAddresses: &[]string{o.Listen}, WebConfigFile: &webFile}
	// exporter-toolkit logs through slog: its start-up lines (info there) at debug here.
	slogger := slog.New(demoteInfo{zerolog.NewSlogHandler(log.With().Str("component", "opshttp").Logger())})
	go func() {
		defer close(s.done)
		if err := web.Serve(ln, s.srv, flags, slogger); err != nil && !errors.Is(err, http.ErrServerClosed) {
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

// demoteInfo logs slog's info records at debug level.
type demoteInfo struct{ h slog.Handler }

func demote(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

func (d demoteInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, demote(l))
}

func (d demoteInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoteInfo) WithAttrs(attrs []slog.Attr) slog.Handler {
	return demoteInfo{d.h.WithAttrs(attrs)}
}
func (d demoteInfo) WithGroup(name string) slog.Handler { return demoteInfo{d.h.WithGroup(name)} }
