package config

import (
	"strings"
	"testing"
)

func TestSnapshotDefaultsAndValidation(t *testing.T) {
	d := Default().Snapshot
	if d.Mode != SnapshotInitial || d.Workers != 2 || d.ChunkRows != 100000 || d.MaxRowsPerSec != 0 || d.ProgressSchema != "public" {
		t.Fatalf("defaults: %+v", d)
	}
	for _, m := range []string{SnapshotInitial, SnapshotNoData, SnapshotInitialOnly, SnapshotAlways, SnapshotWhenNeeded} {
		c := valid()
		c.Snapshot.Mode = m
		if err := c.Validate(); err != nil {
			t.Errorf("mode %s: %v", m, err)
		}
	}
	bad := []struct {
		mutate func(*SnapshotConfig)
		want   string
	}{
		{func(s *SnapshotConfig) { s.Mode = "never" }, `snapshot.mode: must be initial, no_data, initial_only, always or when_needed, got "never"`},
		{func(s *SnapshotConfig) { s.Workers = 0 }, "snapshot.workers: must be between 1 and 64, got 0"},
		{func(s *SnapshotConfig) { s.Workers = 65 }, "snapshot.workers: must be between 1 and 64, got 65"},
		{func(s *SnapshotConfig) { s.ChunkRows = 0 }, "snapshot.chunk_rows: must be >= 1, got 0"},
		{func(s *SnapshotConfig) { s.MaxRowsPerSec = -1 }, "snapshot.max_rows_per_sec: must be >= 0 (0: no limit), got -1"},
		{func(s *SnapshotConfig) { s.ProgressSchema = "" }, `snapshot.progress_schema: must be a schema name of 1 to 63 bytes, got ""`},
	}
	for _, b := range bad {
		c := valid()
		b.mutate(&c.Snapshot)
		fes := FieldErrors(c.Validate())
		if len(fes) != 1 || fes[0].Error() != b.want {
			t.Errorf("got %v, want %q", fes, b.want)
		}
	}
}

func TestSnapshotFromFileAndEnv(t *testing.T) {
	path := writeFile(t, "c.yaml", "snapshot:\n  mode: always\n  workers: 4\n  chunk_rows: 5000\n  progress_schema: ops\n")
	cfg, err := Load(path, append(append([]string(nil), minimalEnv...), "PGCDC_SNAPSHOT_MAX_ROWS_PER_SEC=1000", "PGCDC_SNAPSHOT_MODE=when_needed"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Snapshot
	if s.Mode != SnapshotWhenNeeded || s.Workers != 4 || s.ChunkRows != 5000 || s.MaxRowsPerSec != 1000 || s.ProgressSchema != "ops" {
		t.Fatalf("got %+v", s)
	}
	if _, err := Load("", append(append([]string(nil), minimalEnv...), "PGCDC_SNAPSHOT_MODE=schema_only")); err == nil || !strings.Contains(err.Error(), "snapshot.mode") {
		t.Fatalf("bad mode from env: %v", err)
	}
}

func TestProgressTableNeverCaptured(t *testing.T) {
	tc := TablesConfig{Include: []string{"*.*"}}
	if tc.Matches("public", SnapshotProgressTable) || tc.Matches("ops", SnapshotProgressTable) {
		t.Fatal("the snapshot progress table must never be captured")
	}
	if !tc.Matches("public", "orders") {
		t.Fatal("other tables still match")
	}
}
