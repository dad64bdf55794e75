package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyOptions configure a physical standby started by StartStandby.
type StandbyOptions struct {
	// Slot is the physical replication slot the standby streams from; StartStandby creates it on
	// the primary (reserving WAL at once). Default "standby1".
	Slot string
	// Name is the standby's application_name in primary_conninfo (what synchronous_standby_names
	// names). Default "standby1".
	Name string
	// DBName goes into primary_conninfo: PostgreSQL 17's slot synchronization needs it.
	// Default "postgres".
	DBName string
	// Settings are extra postgresql.conf parameters of the standby (e.g. sync_replication_slots).
	Settings map[string]string
}

// dataDirSkip are the contents of a data directory a base backup leaves out (the PostgreSQL
// documentation's list for a low-level backup): the standby starts with them empty.
var dataDirSkip = map[string]bool{
	"postmaster.pid": true, "postmaster.opts": true, "pg_wal": true, "pg_replslot": true,
	"pg_dynshmem": true, "pg_notify": true, "pg_serial": true, "pg_snapshots": true,
	"pg_stat_tmp": true, "pg_subtrans": true,
}

// StartStandby builds a physical standby of pg (hot standby, streaming replication through a
// physical slot) with a low-level base backup: pg_backup_start, a copy of the data directory
// without WAL and replication slots, pg_backup_stop's backup label. It starts it on a free port
// and returns once it accepts read-only queries.
func (pg *Postgres) StartStandby(ctx context.Context, o StandbyOptions) (*Postgres, error) {
	if o.Slot == "" {
		o.Slot = "standby1"
	}
	if o.Name == "" {
		o.Name = "standby1"
	}
	if o.DBName == "" {
		o.DBName = "postgres"
	}
	base, err := os.MkdirTemp("", "pgcdc-pg-standby-")
	if err != nil {
		return nil, err
	}
	sb := &Postgres{base: base, DataDir: filepath.Join(base, "data"), binDir: pg.binDir, user: pg.user, password: pg.password}
	fail := func(err error) (*Postgres, error) {
		os.RemoveAll(base)
		return nil, err
	}
	if sb.Port, err = freePort(); err != nil {
		return fail(err)
	}
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fail(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, o.Slot); err != nil {
		return fail(fmt.Errorf("create the standby's physical slot: %w", err))
	}
	start, stop := `SELECT pg_backup_start('pgcdc-standby', true)`, `SELECT labelfile FROM pg_backup_stop(false)`
	if pg.Major < 15 {
		start, stop = `SELECT pg_start_backup('pgcdc-standby', true, false)`, `SELECT labelfile FROM pg_stop_backup(false, false)`
	}
	if _, err := conn.Exec(ctx, start); err != nil {
		return fail(fmt.Errorf("start the base backup: %w", err))
	}
	copyErr := copyDataDir(pg.DataDir, sb.DataDir)
	var label string
	if err := conn.QueryRow(ctx, stop).Scan(&label); err != nil {
		return fail(fmt.Errorf("stop the base backup: %w", err))
	}
	if copyErr != nil {
		return fail(fmt.Errorf("copy the data directory: %w", copyErr))
	}
	if err := os.WriteFile(filepath.Join(sb.DataDir, "backup_label"), []byte(label), 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(sb.DataDir, "standby.signal"), nil, 0o600); err != nil {
		return fail(err)
	}
	user := "postgres"
	if pg.password != "" {
		user += " password=" + pg.password
	}
	conf := map[string]string{
		"port":                    fmt.Sprint(sb.Port),
		"unix_socket_directories": "'" + base + "'",
		"hot_standby":             "on",
		"primary_conninfo":        fmt.Sprintf("'host=127.0.0.1 port=%d user=%s dbname=%s application_name=%s'", pg.Port, user, o.DBName, o.Name),
		"primary_slot_name":       "'" + o.Slot + "'",
	}
	for k, v := range o.Settings {
		conf[k] = v
	}
	var b strings.Builder
	b.WriteString("\n# pgcdc test standby\n")
	for k, v := range conf {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	f, err := os.OpenFile(filepath.Join(sb.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fail(err)
	}
	_, err = f.WriteString(b.String())
	f.Close()
	if err != nil {
		return fail(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return fail(err)
	}
	if err := sb.user.chownTree(base); err != nil {
		return fail(err)
	}
	if err := sb.Start(ctx); err != nil {
		return fail(err)
	}
	return sb, nil
}

// copyDataDir copies a running server's data directory for a base backup: regular files and
// directories, skipping (but creating empty) what dataDirSkip names at the top level. Files that
// vanish during the copy are skipped: the WAL replayed from the backup's start restores them.
func copyDataDir(from, to string) error {
	return filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		top := strings.Split(rel, string(filepath.Separator))[0]
		if rel != "." && dataDirSkip[top] {
			if info.IsDir() && rel == top {
				if err := os.MkdirAll(dst, 0o700); err != nil {
					return err
				}
				if top == "pg_wal" {
					return os.MkdirAll(filepath.Join(dst, "archive_status"), 0o700)
				}
				return filepath.SkipDir
			}
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case info.IsDir():
			return os.MkdirAll(dst, 0o700)
		case info.Mode().IsRegular():
			return copyFile(p, dst)
		}
		return nil
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Promote promotes a standby to a primary (pg_ctl promote) and waits until it accepts writes.
func (pg *Postgres) Promote(ctx context.Context) error {
	cmd := command(pg.user, filepath.Join(pg.binDir, "pg_ctl"), "promote", "-D", pg.DataDir, "-w", "-t", "60")
	if err := runQuiet(cmd); err != nil {
		return fmt.Errorf("promote: %w\n%s", err, pg.Log())
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err == nil {
			var recovery bool
			err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovery)
			conn.Close(context.Background())
			if err == nil && !recovery {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("standby on port %d still in recovery 60s after pg_ctl promote (%v)", pg.Port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
