package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every command answers --help (and -h, and `pgcdc help CMD`) on stdout with exit 0 and its usage.
func TestHelpEverywhere(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "pgcdc slot drop --confirm"},
		{[]string{"help"}, "Usage:"},
		{[]string{"run", "--help"}, "Usage: pgcdc run"},
		{[]string{"run", "-h"}, "-config"},
		{[]string{"check", "--help"}, "Usage: pgcdc check"},
		{[]string{"check", "--help"}, "-strict"},
		{[]string{"status", "--help"}, "Usage: pgcdc status"},
		{[]string{"status", "-h"}, "-json"},
		{[]string{"slot", "--help"}, "Usage: pgcdc slot drop"},
		{[]string{"slot", "drop", "--help"}, "-confirm"},
		{[]string{"version", "--help"}, "Usage: pgcdc version"},
		{[]string{"help", "slot", "drop"}, "Without --confirm nothing is dropped"},
		{[]string{"help", "check"}, "Usage: pgcdc check"},
		{[]string{"deliver", "--help"}, "Usage: pgcdc deliver"},
		{[]string{"deliver", "-h"}, "-until-end"},
		{[]string{"deliver", "redrive", "--help"}, "-route"},
		{[]string{"help", "deliver", "secret"}, "whsec_"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), c.want) {
			t.Errorf("pgcdc %s: exit %d, stdout lacks %q:\n%s\nstderr: %s", strings.Join(c.args, " "), code, c.want, out.String(), errOut.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"slot"}, {"slot", "nope"}, {"check", "--nope"}, {"status", "extra"}, {"help", "nope"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("pgcdc %v: exit %d, stderr %q (want 2 and a message)", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "pgcdc ") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

// slot drop refuses without --confirm before touching any server; an invalid configuration is
// exit 2 for check with one FAIL line per problem naming its key and variable.
func TestRefusalsWithoutServers(t *testing.T) {
	t.Setenv("PGCDC_POSTGRES_DSN", "postgres://u@127.0.0.1:1/db")
	t.Setenv("PGCDC_KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("PGCDC_KAFKA_TOPIC_PREFIX", "app")
	var out, errOut bytes.Buffer
	if code := run([]string{"slot", "drop"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "without --confirm") {
		t.Errorf("slot drop: exit %d %q", code, errOut.String())
	}
	t.Setenv("PGCDC_KAFKA_ACKS", "maybe")
	out.Reset()
	if code := run([]string{"check"}, &out, &errOut); code != 2 || !strings.Contains(out.String(), `FAIL  config      kafka.acks: invalid value "maybe"`) ||
		!strings.Contains(out.String(), "PGCDC_KAFKA_ACKS") {
		t.Errorf("check with a bad config: exit %d\n%s", code, out.String())
	}
	// status needs only the postgres section: a bad kafka key does not stop it (it fails on the
	// unreachable server instead, exit 1, not 2).
	t.Setenv("PGCDC_POSTGRES_CONNECT_TIMEOUT", "1s")
	errOut.Reset()
	if code := run([]string{"status"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "127.0.0.1:1") {
		t.Errorf("status: exit %d %q", code, errOut.String())
	}
}
