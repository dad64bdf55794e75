package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// envPprofAddr names an optional profiling listener (e.g. 127.0.0.1:6060), used by the benchmark
// (internal/cmd/bench). Unset, nothing listens. It is not a configuration key: init removes it from
// the environment before config.Load, which rejects unknown PGCDC_* variables.
//
// The handlers are registered on a private mux, never on http.DefaultServeMux (importing
// net/http/pprof would put them there, exposed on any listener that serves the default mux):
//
//	GET /debug/pprof/profile?seconds=N   CPU profile over N seconds (default 30, at most 600)
//	GET /debug/pprof/NAME                runtime/pprof profile NAME (heap, allocs, goroutine, ...)
const envPprofAddr = "PGCDC_PPROF_ADDR"

func init() {
	addr := os.Getenv(envPprofAddr)
	if addr == "" {
		return
	}
	os.Unsetenv(envPprofAddr)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgcdc: %s=%s: %v\n", envPprofAddr, addr, err)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", cpuProfile)
	mux.HandleFunc("/debug/pprof/", namedProfile)
	go func() { _ = http.Serve(ln, mux) }() // lives as long as the process
}

func cpuProfile(w http.ResponseWriter, r *http.Request) {
	sec, err := strconv.Atoi(r.FormValue("seconds"))
	if err != nil || sec <= 0 {
		sec = 30
	}
	if sec > 600 {
		sec = 600
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	select {
	case <-time.After(time.Duration(sec) * time.Second):
	case <-r.Context().Done():
	}
	pprof.StopCPUProfile()
}

func namedProfile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_ = p.WriteTo(w, 0)
}
