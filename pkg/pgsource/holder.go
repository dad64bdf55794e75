package pgsource

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SlotHolder is the session that holds a replication slot: its walsender process and the client
// behind it, as pg_stat_activity shows them. Client fields are empty when the role may not see
// them (another role's session, without pg_read_all_stats).
type SlotHolder struct {
	PID             int32
	User            string
	ApplicationName string
	ClientAddr      string // IP address; "local" for a Unix-socket connection; "" when hidden
	ClientPort      int32  // -1 for a Unix socket
	ClientHostname  string // only with log_hostname on
	BackendStart    time.Time
}

// String says who holds the slot in one line, e.g. `walsender pid 4242 (application_name
// "pgcdc", user pgcdc, client 10.0.0.7:53412, since 2026-01-02T03:04:05Z)`.
func (h SlotHolder) String() string {
	var parts []string
	if h.ApplicationName != "" {
		parts = append(parts, "application_name "+strconv.Quote(h.ApplicationName))
	}
	if h.User != "" {
		parts = append(parts, "user "+h.User)
	}
	switch {
	case h.ClientAddr == "":
		parts = append(parts, "client address hidden from this role: pg_read_all_stats shows it")
	case h.ClientAddr == "local":
		parts = append(parts, "client on a local socket")
	case h.ClientAddr != "":
		c := h.ClientAddr
		if h.ClientHostname != "" {
			c = h.ClientHostname + " (" + c + ")"
		}
		if h.ClientPort > 0 {
			c += ":" + strconv.Itoa(int(h.ClientPort))
		}
		parts = append(parts, "client "+c)
	}
	if !h.BackendStart.IsZero() {
		parts = append(parts, "since "+h.BackendStart.UTC().Format(time.RFC3339))
	}
	return "walsender pid " + strconv.Itoa(int(h.PID)) + " (" + strings.Join(parts, ", ") + ")"
}

// ErrSlotNotHeld says no session holds the slot (or it does not exist).
var ErrSlotNotHeld = errors.New("replication slot is not held by any session")

const slotHolderSQL = `
SELECT s.active_pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
       CASE WHEN a.pid IS NULL THEN '' WHEN a.client_addr IS NULL AND a.client_port = -1 THEN 'local'
            ELSE coalesce(host(a.client_addr), '') END,
       coalesce(a.client_port, 0), coalesce(a.client_hostname, ''), a.backend_start
FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
WHERE s.slot_name = $1 AND s.active_pid IS NOT NULL`

// ReadSlotHolder names the session holding slot: pid, user, application_name, client address and
// port, start time. ErrSlotNotHeld when no session holds it. pgcdc's walsender sessions carry
// application_name "pgcdc" unless postgres.dsn sets another.
func ReadSlotHolder(ctx context.Context, conn *pgx.Conn, slot string) (SlotHolder, error) {
	var h SlotHolder
	var start *time.Time
	err := conn.QueryRow(ctx, slotHolderSQL, slot).Scan(&h.PID, &h.User, &h.ApplicationName, &h.ClientAddr, &h.ClientPort, &h.ClientHostname, &start)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fmt.Errorf("postgres: slot %q: %w", slot, ErrSlotNotHeld)
	}
	if err != nil {
		return h, fmt.Errorf("postgres: read who holds replication slot %q: %w", slot, err)
	}
	if start != nil {
		h.BackendStart = *start
	}
	return h, nil
}
