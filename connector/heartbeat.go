package connector

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/route"
)

// heartbeatSQL writes pgcdc's heartbeat: a transactional logical decoding message. It comes back
// through the stream as a transaction of its own, whose commit pgcdc confirms, so the slot advances
// even when no captured table changes.
const heartbeatSQL = `SELECT pg_logical_emit_message(true, '` + route.HeartbeatPrefix + `', $1)`

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
