package connector

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/internal/retry"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// catalog describes relations for the decoder on a connection of its own, reconnecting when the
// connection breaks (a PostgreSQL restart, a terminated backend): meanwhile the pipeline waits and
// the stream keeps the replication connection alive.
type catalog struct {
	connStr string
	conn    *pgx.Conn
	log     zerolog.Logger
}

func (c *catalog) Describe(ctx context.Context, relID uint32) (t decode.CatalogTable, err error) {
	err = c.query(ctx, func(q decode.PGCatalog) error {
		t, err = q.Describe(ctx, relID)
		return err
	})
	return t, err
}

func (c *catalog) DescribeType(ctx context.Context, typeOID uint32) (t decode.CatalogType, err error) {
	err = c.query(ctx, func(q decode.PGCatalog) error {
		t, err = q.DescribeType(ctx, typeOID)
		return err
	})
	return t, err
}

// query runs fn on the catalog connection, reconnecting and retrying while the connection is lost.
func (c *catalog) query(ctx context.Context, fn func(decode.PGCatalog) error) error {
	b := retry.New(200*time.Millisecond, 5*time.Second)
	for {
		if c.conn == nil || c.conn.IsClosed() {
			conn, err := pgsource.ConnectSQL(ctx, c.connStr)
			if err != nil {
				return err
			}
			c.conn = conn
		}
		err := fn(decode.PGCatalog{Conn: c.conn})
		if err == nil || !connectionLost(c.conn, err) || ctx.Err() != nil {
			return err
		}
		c.log.Warn().Err(err).Msg("catalog connection lost; reconnecting")
		c.conn.Close(context.Background())
		c.conn = nil
		if err := b.Wait(ctx); err != nil {
			return err
		}
	}
}

func (c *catalog) close() {
	if c.conn != nil {
		c.conn.Close(context.Background())
		c.conn = nil
	}
}

// connectionLost reports whether a query failed because its connection broke: transient.
func connectionLost(conn *pgx.Conn, err error) bool {
	if conn.IsClosed() || pgsource.IsConnectionError(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57")
	}
	return false
}
