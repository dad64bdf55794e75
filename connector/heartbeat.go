package connector

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/route"
)

// heartbeatSQL writes pgcdc's heartbeat: a non-transactional logical decoding message. It comes
// back through the stream on its own, outside any transaction, and pgcdc confirms just past it, so
// the slot advances even when no captured table changes. Being non-transactional, it writes no
// transaction (no BEGIN/COMMIT) that other logical decoding consumers of the database would see:
// a Debezium connector beside pgcdc shows no transaction metadata for it, and its message topic
// leaves it out with message.prefix.exclude.list=__pgcdc_heartbeat (README).
const heartbeatSQL = `SELECT pg_logical_emit_message(false, '` + route.HeartbeatPrefix + `', $1)`

// heartbeat is the periodic job that writes a heartbeat (heartbeat.action_query, or the message).
func (c *Connector) heartbeat(ctx context.Context, conn *pgx.Conn) error {
	var err error
	if q := c.cfg.Heartbeat.ActionQuery; q != "" {
		_, err = conn.Exec(ctx, q)
	} else {
		_, err = conn.Exec(ctx, heartbeatSQL, strconv.FormatInt(time.Now().UnixMilli(), 10))
	}
	return err
}
