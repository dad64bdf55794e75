package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ProfileResult locates the profiles of the extra pgcdc run and keeps their top entries.
type ProfileResult struct {
	CPUProfile      string  `json:"cpu_profile"`
	AllocsProfile   string  `json:"allocs_profile"`
	ProfiledSeconds int     `json:"profiled_seconds"`
	ValueSchemas    bool    `json:"value_schemas"`
	RunSeconds      float64 `json:"run_seconds"` // with the profiler on; not a measurement
	TopFlat         string  `json:"top_flat"`
	TopCum          string  `json:"top_cum"`
	TopAllocs       string  `json:"top_alloc_space"`
}

// profile runs pgcdc (value schemas as -profile-schemas says) over the throughput WAL from its own slot with
// the pprof listener on, takes a CPU profile over most of the run, and the allocation profile at
// its end. expect is the streaming time of an unprofiled run (seconds).
func (b *bench) profile(ctx context.Context, slot, pub, table string, w *Workload, expect float64) (*ProfileResult, error) {
	o := b.o
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	res := &ProfileResult{
		CPUProfile:    filepath.Join(o.profileDir, "cpu.pprof"),
		AllocsProfile: filepath.Join(o.profileDir, "allocs.pprof"),
	}
	// The profile covers the whole run: it is asked for a little longer than an unprofiled run
	// took, and the run's end waits for it (idle time adds no samples).
	res.ProfiledSeconds = int(math.Ceil(expect*1.2)) + 1
	var cpuErr error
	cpuDone := make(chan struct{})
	label := "profile-pgcdc-" + schemaName(o.profileSchemas)
	spec := pgcdcSpec(o, b.s, b.dsn, label, slot, pub, "bprof", table, o.profileSchemas, w.end, w.Rows,
		map[string]string{"PGCDC_PPROF_ADDR": addr})
	spec.during = func(ctx context.Context, pid int) {
		defer close(cpuDone)
		cpuErr = fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, res.ProfiledSeconds), res.CPUProfile)
	}
	var allocErr error
	spec.afterDone = func(int) {
		select {
		case <-cpuDone:
		case <-time.After(time.Duration(res.ProfiledSeconds+30) * time.Second):
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		allocErr = fetch(actx, fmt.Sprintf("http://%s/debug/pprof/allocs", addr), res.AllocsProfile)
	}
	logf("profile: pgcdc with pprof on, CPU profile over %ds", res.ProfiledSeconds)
	r, err := measure(ctx, o, b.s, b.db, spec)
	if err != nil {
		return nil, err
	}
	res.RunSeconds = r.Seconds
	res.ValueSchemas = o.profileSchemas
	if err := finishPgcdcRun(ctx, o, b.s, r, "bprof.public."+table, o.profileSchemas); err != nil {
		return nil, err
	}
	if cpuErr != nil {
		return nil, fmt.Errorf("CPU profile: %w", cpuErr)
	}
	if allocErr != nil {
		return nil, fmt.Errorf("allocation profile: %w", allocErr)
	}
	res.TopFlat = pprofTop(ctx, o.pgcdcBin, res.CPUProfile, "-top")
	res.TopCum = pprofTop(ctx, o.pgcdcBin, res.CPUProfile, "-top", "-cum")
	res.TopAllocs = pprofTop(ctx, o.pgcdcBin, res.AllocsProfile, "-top", "-sample_index=alloc_space")
	return res, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop is `go tool pprof -top` of a profile (its first 30 entries), or why it is missing.
func pprofTop(ctx context.Context, bin, profile string, args ...string) string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args = append([]string{"tool", "pprof", "-nodecount=30"}, args...)
	args = append(args, bin, profile)
	out, err := exec.CommandContext(cctx, "go", args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(go tool pprof failed: %v) %s", err, out)
	}
	return strings.TrimSpace(string(out))
}
