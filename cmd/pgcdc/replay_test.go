package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// Usage errors of pgcdc replay exit 2 with a message, before contacting anything.
func TestReplayUsageErrors(t *testing.T) {
	base := []string{"--brokers", "127.0.0.1:1", "--topic-prefix", "app", "--target", "postgres://u@127.0.0.1:1/db"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--brokers", "127.0.0.1:1", "--topic-prefix", "app"}, "--target"},
		{[]string{"--topic-prefix", "app", "--target", "postgres://u@h/db"}, "--brokers"},
		{[]string{"--brokers", "h:1", "--target", "postgres://u@h/db"}, "--topic-prefix"},
		{append(append([]string{}, base...), "--batch-size", "0"), "--batch-size 0"},
		{append(append([]string{}, base...), "--batch-size", "-5"), "--batch-size -5"},
		{append(append([]string{}, base...), "--workers", "0"), "--workers 0"},
		{append(append([]string{}, base...), "--decimal-handling", "exact"), `decimal handling "exact"`},
		{append(append([]string{}, base...), "--time-precision", "nanos"), `time precision "nanos"`},
		{append(append([]string{}, base...), "--binary-handling", "b32"), `binary handling "b32"`},
		{append(append([]string{}, base...), "--hstore-handling", "list"), `hstore handling "list"`},
		{append(append([]string{}, base...), "--progress", "fancy"), `--progress "fancy"`},
		{append(append([]string{}, base...), "--tables", "public.["), "table pattern"},
		{append(append([]string{}, base...), "--park-file", "/tmp/x", "--park-topic", "p"), "choose one"},
		{append(append([]string{}, base...), "--target-password-file", "/nonexistent/pw"), "--target-password-file"},
		{append(append([]string{}, base...), "--from-timestamp", "yesterday"), "RFC 3339"},
		{append(append([]string{}, base...), "--log-format", "xml"), "--log-format"},
		{append(append([]string{}, base...), "extra"), "unexpected argument"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(append([]string{"replay"}, c.args...), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("pgcdc replay %s: exit %d, stderr %q (want 2 and %q)", strings.Join(c.args, " "), code, errOut.String(), c.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"replay", "--help"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String()+out.String(), "Exit status: 0 done") {
		t.Errorf("--help: exit %d", code)
	}
}

func TestTargetPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u:secret@h/db":          true,
		"postgres://u@h/db?password=x":      true,
		"postgresql://u@h/db":               false,
		"host=h user=u password=x dbname=d": true,
		"host=h user=u dbname=d":            false,
	} {
		if got := targetHasPassword(dsn); got != want {
			t.Errorf("targetHasPassword(%q) = %v", dsn, got)
		}
	}
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, err := targetPassword(f); err != nil || pw != "s3cret" {
		t.Errorf("from file: %q %v", pw, err)
	}
	t.Setenv("PGCDC_REPLAY_TARGET_PASSWORD", "envpw")
	if pw, err := targetPassword(""); err != nil || pw != "envpw" {
		t.Errorf("from the environment: %q %v", pw, err)
	}
}

// The target's password comes from --target-password-file or PGCDC_REPLAY_TARGET_PASSWORD against a
// server that requires one; without it replay fails to connect (exit 1, not 2).
func TestReplayTargetPasswordAuth(t *testing.T) {
	testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := testenv.StartPostgres(ctx, testenv.PostgresOptions{PasswordAuth: true})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	brokers := testenv.SharedKafka(t)
	prefix := testenv.UniqueName(t, "r")
	testenv.CreateTopic(t, brokers, prefix+".public.t", 1)
	dsn := pg.NewDatabase(t) // carries the password
	noPw := strings.Replace(dsn, ":postgres@", "@", 1)
	if noPw == dsn {
		t.Fatalf("cannot strip the password from %s", dsn)
	}
	args := []string{"replay", "--brokers", strings.Join(brokers, ","), "--topic-prefix", prefix, "--until-end", "--progress", "log", "--target", noPw}
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", "/nonexistent")
	code, out, errOut := pgcdc(t, nil, args...)
	if code != 1 || !strings.Contains(out+errOut, "password") {
		t.Fatalf("without a password: exit %d\n%s%s", code, out, errOut)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := pgcdc(t, nil, append(args, "--target-password-file", pwFile)...); code != 0 || !strings.Contains(out, "replay finished") {
		t.Fatalf("with --target-password-file: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := pgcdc(t, map[string]string{"PGCDC_REPLAY_TARGET_PASSWORD": "postgres"}, args...); code != 0 || strings.Contains(out, "process list") {
		t.Fatalf("with PGCDC_REPLAY_TARGET_PASSWORD: exit %d\n%s%s", code, out, errOut)
	}
	// A password in --target works but is warned about.
	args[len(args)-1] = dsn
	if code, out, _ := pgcdc(t, map[string]string{"PGCDC_REPLAY_TARGET_PASSWORD": ""}, args...); code != 0 || !strings.Contains(out, "process list") {
		t.Fatalf("password in --target: exit %d\n%s", code, out)
	}
}
