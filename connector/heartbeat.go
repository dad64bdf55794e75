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

// heartbeatSQL writes pgcdc's heartbeat: a non-transactional logical decoding message. It comes
// back through the stream on its own, outside any transaction, and pgcdc confirms just past it, so
// the slot advances even when no captured table changes. Being non-transactional, it writes no
// transaction (no BEGIN/COMMIT) that other logical decoding consumers of the database would see:
// a Debezium connector beside pgcdc shows no transaction metadata for it, and its message topic
// leaves it out with message.prefix.exclude.list=__pgcdc_heartbeat (README).
const heartbeatSQL = `SELECT pg_logical_emit_message(false, '` + HeartbeatPrefix + `', $1)`

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
//
// A heartbeat outside a transaction (pgcdc's own, non-transactional) is a transaction of its own
// for the tracker, confirmable just past its LSN once its record (if any) is acknowledged; one
// inside a transaction (written by an older pgcdc, transactional) belongs to that transaction.
func (h *changes) heartbeat(ctx context.Context, lsn pglogrepl.LSN) error {
	own := !h.inTxn
	if own {
		h.begin(lsn, 0, time.Now())
	}
	if h.c.cfg.Heartbeat.Topic {
		topic := h.c.meta.HeartbeatTopic()
		if err := h.c.sink.EnsureTopic(ctx, topic); err != nil {
			return err
		}
		if err := h.send(ctx, kafkasink.Record{
			Topic: topic, Key: h.c.meta.AppendHeartbeatKey(nil), Value: h.c.meta.AppendHeartbeatValue(nil, time.Now()),
			Table: "heartbeat", LSN: uint64(lsn),
		}); err != nil {
			return err
		}
	}
	if own {
		h.c.tracker.Commit(h.txn, ackLSN(lsn+1))
		h.inTxn = false
	}
	return nil
}
