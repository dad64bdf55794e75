package pgsource_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/internal/testenv"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSlotHolderString(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		h    pgsource.SlotHolder
		want string
	}{
		{pgsource.SlotHolder{PID: 42, User: "pgcdc", ApplicationName: "pgcdc", ClientAddr: "10.0.0.7", ClientPort: 5341, BackendStart: start},
			`walsender pid 42 (application_name "pgcdc", user pgcdc, client 10.0.0.7:5341, since 2026-01-02T03:04:05Z)`},
		{pgsource.SlotHolder{PID: 7, User: "u", ClientAddr: "local", ClientPort: -1},
			`walsender pid 7 (user u, client on a local socket)`},
		{pgsource.SlotHolder{PID: 7, ApplicationName: "x", User: "u"},
			`walsender pid 7 (application_name "x", user u, client address hidden from this role: pg_read_all_stats shows it)`},
		{pgsource.SlotHolder{PID: 7, ClientAddr: "::1", ClientHostname: "h", ClientPort: 1},
			`walsender pid 7 (client h (::1):1)`},
	}
	for _, tt := range tests {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

// ReadSlotHolder names the walsender that streams from a slot and the client behind it.
func TestReadSlotHolder(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	slot := testenv.UniqueName(t, "slot")
	if _, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatal(err)
	}
	if _, err := pgsource.ReadSlotHolder(ctx, conn, slot); !errors.Is(err, pgsource.ErrSlotNotHeld) {
		t.Fatalf("idle slot: %v, want ErrSlotNotHeld", err)
	}
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("application_name", "holder-test")
	u.RawQuery = q.Encode()
	repl, err := pgsource.ConnectReplication(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	// The walsender holds the slot from START_REPLICATION on; closing the connection ends it (the
	// result is never read: it streams until then).
	_ = repl.Exec(ctx, `START_REPLICATION SLOT `+slot+` LOGICAL 0/0 (proto_version '1', publication_names 'none')`)
	var h pgsource.SlotHolder
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err = pgsource.ReadSlotHolder(ctx, conn, slot)
		if err == nil || !errors.Is(err, pgsource.ErrSlotNotHeld) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if h.PID == 0 || h.ApplicationName != "holder-test" || h.ClientAddr != "127.0.0.1" || h.ClientPort <= 0 || h.User == "" || h.BackendStart.IsZero() {
		t.Fatalf("holder %+v", h)
	}
	var pid int32
	if err := conn.QueryRow(ctx, `SELECT pid FROM pg_stat_replication WHERE application_name = 'holder-test'`).Scan(&pid); err != nil || pid != h.PID {
		t.Fatalf("pg_stat_replication pid %d (%v), holder pid %d", pid, err, h.PID)
	}
	if s := h.String(); !strings.Contains(s, `application_name "holder-test"`) || !strings.Contains(s, "client 127.0.0.1:") {
		t.Errorf("String: %s", s)
	}
}
