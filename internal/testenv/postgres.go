package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configures a cluster started by StartPostgres.
type PostgresOptions struct {
	// Settings are extra postgresql.conf parameters, applied over the defaults (wal_level=logical,
	// max_replication_slots=50, max_wal_senders=50, ...). Example: {"wal_level": "replica"}.
	Settings map[string]string
	// BinDir holds initdb and postgres; empty means PostgresBinDir(Version).
	BinDir string
	// Version is the major version (14 to 18); zero means PGCDC_TEST_PG_VERSION, else the
	// system's binaries (PATH, then the newest /usr/lib/postgresql/*/bin).
	Version int
	// PasswordAuth makes TCP connections authenticate with scram-sha-256; the superuser postgres
	// then has the password "postgres" (see DSN, which carries it).
	PasswordAuth bool
	// HBA, when set, replaces the pg_hba.conf lines for TCP connections (the local socket stays
	// trusted). It must admit the superuser postgres from 127.0.0.1 (the start-up probe and DSN).
	HBA string
	// Files are written into the data directory (mode 0600, owned by the server's user) before the
	// first start, e.g. {"server.crt": ..., "server.key": ...} for Settings ssl_cert_file = 'server.crt'.
	// With Settings ssl = on, DSN asks for sslmode=require.
	Files map[string][]byte
}

// Postgres is a throwaway PostgreSQL cluster on 127.0.0.1. Its port and data directory survive
// Stop/Start, so fault tests can restart it in place.
type Postgres struct {
	Port     int
	DataDir  string
	Major    int // major version of the running server (e.g. 17), known once started
	base     string
	binDir   string
	user     *serverUser
	proc     *process
	password string
	sslmode  string // of DSN: disable, or require when the server has ssl = on
	hba      string
	files    map[string][]byte
}

var defaultPostgresSettings = map[string]string{
	"listen_addresses":          "'127.0.0.1'",
	"wal_level":                 "logical",
	"max_replication_slots":     "50",
	"max_wal_senders":           "50",
	"max_connections":           "200",
	"fsync":                     "off",
	"full_page_writes":          "off",
	"shared_buffers":            "128MB",
	"log_min_messages":          "warning",
	"log_connections":           "off",
	"wal_sender_timeout":        "60s",
	"max_slot_wal_keep_size":    "-1",
	"logical_decoding_work_mem": "64MB",
}

// PostgresSettings returns the postgresql.conf parameters the test clusters start with (before
// PostgresOptions.Settings and the port). docker-compose.yml starts its PostgreSQL with the same
// replication settings (a test checks it).
func PostgresSettings() map[string]string {
	out := make(map[string]string, len(defaultPostgresSettings))
	for k, v := range defaultPostgresSettings {
		out[k] = v
	}
	return out
}

// findPostgresBin locates the system's directory that holds both initdb and postgres.
func findPostgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { // newest major version first
		return versionOf(matches[i]) > versionOf(matches[j])
	})
	if len(matches) == 0 {
		return "", errors.New("no PostgreSQL server binaries: initdb is neither on PATH nor under /usr/lib/postgresql/*/bin (install postgresql-15, or set PGCDC_TEST_PG_DSN to an existing server)")
	}
	return filepath.Dir(matches[0]), nil
}

func versionOf(initdbPath string) int {
	v := 0
	fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))), "%d", &v)
	return v
}

// StartPostgres initdbs a new cluster in a temporary directory and starts it on a free loopback port.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = PostgresBinDir(opts.Version); err != nil {
			return nil, err
		}
	}
	u, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp("", "pgcdc-pg-")
	if err != nil {
		return nil, fmt.Errorf("create PostgreSQL temp dir: %w", err)
	}
	pg := &Postgres{base: base, DataDir: filepath.Join(base, "data"), binDir: bin, user: u, sslmode: "disable", hba: opts.HBA, files: opts.Files}
	if opts.Settings["ssl"] == "on" {
		pg.sslmode = "require"
	}
	if opts.PasswordAuth {
		pg.password = "postgres"
	}
	if err := pg.initdb(opts.Settings); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	if err := pg.Start(ctx); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	return pg, nil
}

func (pg *Postgres) initdb(settings map[string]string) error {
	if err := os.Chmod(pg.base, 0o755); err != nil {
		return err
	}
	if err := pg.user.chownTree(pg.base); err != nil {
		return fmt.Errorf("hand %s to the PostgreSQL user: %w", pg.base, err)
	}
	args := []string{"-D", pg.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"}
	if pg.password != "" {
		pwfile := filepath.Join(pg.base, "pwfile")
		if err := os.WriteFile(pwfile, []byte(pg.password+"\n"), 0o644); err != nil {
			return err
		}
		args = append(args, "--pwfile="+pwfile)
	}
	cmd := command(pg.user, filepath.Join(pg.binDir, "initdb"), args...)
	if err := runQuiet(cmd); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	pg.Port = port
	conf := map[string]string{}
	for k, v := range defaultPostgresSettings {
		conf[k] = v
	}
	for k, v := range settings {
		conf[k] = v
	}
	conf["port"] = fmt.Sprint(port)
	conf["unix_socket_directories"] = "'" + pg.base + "'"
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# pgcdc test environment\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, conf[k])
	}
	f, err := os.OpenFile(filepath.Join(pg.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(b.String())
	if err == nil {
		// Connections from loopback only; trusted unless PasswordAuth (throwaway cluster).
		method := "trust"
		if pg.password != "" {
			method = "scram-sha-256"
		}
		tcp := "host all all 127.0.0.1/32 " + method + "\nhost replication all 127.0.0.1/32 " + method + "\n"
		if pg.hba != "" {
			tcp = pg.hba + "\n"
		}
		err = os.WriteFile(filepath.Join(pg.DataDir, "pg_hba.conf"), []byte("local all all trust\nlocal replication all trust\n"+tcp), 0o600)
		for name, data := range pg.files {
			if err == nil {
				err = os.WriteFile(filepath.Join(pg.DataDir, name), data, 0o600)
			}
		}
		if err == nil {
			err = pg.user.chownTree(pg.DataDir)
		}
	}
	return err
}

func (pg *Postgres) logPath() string { return filepath.Join(pg.base, "postgres.log") }

// Start starts the server (again) on its port and data directory and waits until it accepts queries.
func (pg *Postgres) Start(ctx context.Context) error {
	if pg.proc != nil && !pg.proc.exited() {
		return errors.New("PostgreSQL is already running")
	}
	cmd := command(pg.user, filepath.Join(pg.binDir, "postgres"), "-D", pg.DataDir)
	p, err := startProcess(cmd, pg.logPath())
	if err != nil {
		return err
	}
	pg.proc = p
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			return fmt.Errorf("PostgreSQL exited during start-up: %v\n%s", p.err, tailFile(pg.logPath(), 3000))
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, pg.DSN("postgres"))
		cancel()
		if err == nil {
			var num int
			err = conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num)
			conn.Close(ctx)
			if err == nil {
				pg.Major = num / 10000
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop(syscall.SIGQUIT, 5*time.Second)
			return fmt.Errorf("PostgreSQL on port %d not ready after 60s: %v\n%s", pg.Port, err, tailFile(pg.logPath(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopMode is how a PostgreSQL server is stopped.
type StopMode int

const (
	StopFast      StopMode = iota // SIGINT: roll back sessions, checkpoint, exit
	StopImmediate                 // SIGQUIT: exit at once, crash recovery on the next start
	StopKill                      // SIGKILL of the postmaster
)

// Stop stops the server in the given mode and waits for it and its server processes to exit.
func (pg *Postgres) Stop(mode StopMode) {
	pg.StopWithin(mode, 30*time.Second)
}

// StopWithin stops the server like Stop, allowing it grace to exit before it is killed; it reports
// whether the server exited in time.
func (pg *Postgres) StopWithin(mode StopMode, grace time.Duration) (inTime bool) {
	if pg.proc == nil {
		return true
	}
	children := childPIDs(pg.proc.pid())
	sig := map[StopMode]syscall.Signal{StopFast: syscall.SIGINT, StopImmediate: syscall.SIGQUIT, StopKill: syscall.SIGKILL}[mode]
	inTime = pg.proc.stop(sig, grace)
	// A fast stop that did not finish in time (a walsender waits for its client to confirm the
	// last WAL) ends with a SIGKILL of the postmaster's group, which misses the server processes:
	// each runs in a session of its own (PostgreSQL calls setsid). They exit once they notice the
	// postmaster died, but a start before that fails ("pre-existing shared memory block is still
	// in use"): kill them, and wait until they are gone.
	reap(children, 15*time.Second)
	return inTime
}

// proc identifies a process across pid reuse: its pid and its start time (clock ticks after boot).
type proc struct {
	pid   int
	start string
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range entries {
		var child int
		if _, err := fmt.Sscan(e.Name(), &child); err != nil || child <= 0 {
			continue
		}
		if parent, start, ok := procStat(child); ok && parent == pid {
			out = append(out, proc{child, start})
		}
	}
	return out
}

// procStat reads a process's parent and start time from /proc/<pid>/stat.
func procStat(pid int) (parent int, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:]) // state, ppid, ... starttime is field 22 of the line, 20 here
	if len(f) < 20 {
		return 0, "", false
	}
	if _, err := fmt.Sscan(f[1], &parent); err != nil {
		return 0, "", false
	}
	return parent, f[19], true
}

// reap kills those of procs that are still there (their postmaster is gone: they are orphans now)
// and waits up to limit for them to exit. A pid that now names another process is left alone.
func reap(procs []proc, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, p := range procs {
		for time.Now().Before(deadline) {
			if _, start, ok := procStat(p.pid); !ok || start != p.start {
				break
			}
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Restart stops the server in the given mode and starts it again on the same port and data directory.
func (pg *Postgres) Restart(ctx context.Context, mode StopMode) error {
	pg.Stop(mode)
	return pg.Start(ctx)
}

// BinDir is the directory of the server binaries (initdb, postgres, pg_ctl).
func (pg *Postgres) BinDir() string { return pg.binDir }

// PID is the postmaster's process id (changes on every Start).
func (pg *Postgres) PID() int { return pg.proc.pid() }

// Close stops the server and removes its files.
func (pg *Postgres) Close() {
	pg.Stop(StopImmediate)
	os.RemoveAll(pg.base)
}

// DSN is a superuser connection URL for database db.
func (pg *Postgres) DSN(db string) string {
	user := "postgres"
	if pg.password != "" {
		user += ":" + pg.password
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=%s", user, pg.Port, db, pg.sslmode)
}

// Log returns the end of the server log (for test failure messages).
func (pg *Postgres) Log() string { return tailFile(pg.logPath(), 5000) }

// WriteDataFile writes (or replaces) a file in the data directory, mode 0600 and owned by the
// server's user, e.g. a new server certificate; Reload makes the server read it.
func (pg *Postgres) WriteDataFile(name string, data []byte) error {
	p := filepath.Join(pg.DataDir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	return pg.user.chownTree(p)
}

// Reload makes the server re-read its configuration files (SIGHUP), TLS certificates included.
func (pg *Postgres) Reload() error { return pg.proc.signal(syscall.SIGHUP) }
