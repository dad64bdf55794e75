// Package opshttp serves pgcdc's operations endpoint over HTTP:
//
//	/metrics   Prometheus metrics (package metrics)
//	/healthz   liveness: 200 "ok" while the process serves requests
//	/readyz    readiness: 200 while streaming with Kafka acknowledgements flowing, 503 with the
//	           reason otherwise (metrics.Metrics.Ready)
//
// pgcdc deliver serves the same routes for its own metrics (deliver.Metrics); any Source will do.
//
// Start binds the listen address at once, so a port in use is an error at start-up rather than a
// silent lack of metrics, and serves until Close. metrics.web_config_file, a Prometheus web
// configuration file (github.com/prometheus/exporter-toolkit), adds TLS, client certificates and
// basic auth; it is validated at Start and read again on every connection:
//
//	srv, err := opshttp.Start(opshttp.Options{Key: "metrics.listen", Listen: cfg.Metrics.Listen}, m, log)
//	if err != nil { ... }             // names metrics.listen
//	defer srv.Close(ctx)
//	log.Info().Str("addr", srv.Addr()).Msg("operations endpoint")
package opshttp
