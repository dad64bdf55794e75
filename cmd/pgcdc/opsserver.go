package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/internal/opshttp"
)

// serveOps starts the operations endpoint o describes and returns the function that stops it
// (waiting up to 5s for requests in progress).
func serveOps(o opshttp.Options, src opshttp.Source, log zerolog.Logger) (func(), error) {
	srv, err := opshttp.Start(o, src, log)
	if err != nil {
		return nil, err
	}
	log.Info().Str("addr", srv.Addr()).Bool("web_config", o.WebConfigFile != "").Msg("operations endpoint: /metrics /healthz /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Close(ctx)
		cancel()
	}, nil
}
