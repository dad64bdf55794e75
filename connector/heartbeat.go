package connector

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// heartbeatSQL writes pgcdc's heartbeat: a transactional logical decoding message. It comes back
// through the stream as a transaction of its own, whose commit pgcdc confirms, so the slot advances
// even when no captured table changes.
const heartbeatSQL = `SELECT pg_logical_emit_message(true, '` + HeartbeatPrefix + `', $1)`

// heartbeats writes a heartbeat every heartbeat.interval until ctx ends, on a connection of its own.
func (c *Connector) heartbeats(ctx context.Context) {
	ticker := time.NewTicker(c.cfg.Heartbeat.Interval)
	defer ticker.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			conn, err = pgsource.ConnectSQL(cctx, c.connStr)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					c.log.Warn().Err(err).Msg("heartbeat: cannot connect; will retry")
				}
				conn = nil
				continue
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		if q := c.cfg.Heartbeat.ActionQuery; q != "" {
			_, err = conn.Exec(qctx, q)
		} else {
			_, err = conn.Exec(qctx, heartbeatSQL, strconv.FormatInt(time.Now().UnixMilli(), 10))
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("heartbeat failed; will retry")
			conn.Close(context.Background())
			conn = nil
		}
	}
}

// heartbeat handles pgcdc's own heartbeat message coming back through the stream: nothing is
// published unless heartbeat.topic asks for Debezium's heartbeat records.
func (h *changes) heartbeat(ctx context.Context, lsn pglogrepl.LSN) error {
	if !h.c.cfg.Heartbeat.Topic || !h.inTxn {
		return nil
	}
	topic := h.c.meta.HeartbeatTopic()
	if err := h.c.sink.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	return h.send(ctx, kafkasink.Record{
		Topic: topic, Key: h.c.meta.AppendHeartbeatKey(nil), Value: h.c.meta.AppendHeartbeatValue(nil, time.Now()),
		Table: "heartbeat", LSN: uint64(lsn),
	})
}
