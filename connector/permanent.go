package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// This file sorts failures into transient ones (a reconnect cures them) and permanent ones (the
// process ends with what happened and how to recover; docs/faults.md lists them all).

// catalogLost reports whether a catalog query failed because the catalog connection broke (a
// PostgreSQL restart, pg_terminate_backend): transient, the next stream session reconnects it.
func (c *Connector) catalogLost(err error) bool {
	if c.sql == nil || c.sql.IsClosed() || pgsource.IsConnectionError(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57")
	}
	return false
}

// errPublicationDropped is the publication refresher's finding that the publication pgcdc streams
// from no longer exists.
type errPublicationDropped struct{ name string }

func (e *errPublicationDropped) Error() string {
	return fmt.Sprintf("postgres: publication %q was dropped while pgcdc ran. pgcdc does not recreate it silently: "+
		"PostgreSQL cannot decode, for this slot, the changes made while it did not exist. "+publicationRecovery, e.name, pgx.Identifier{e.name}.Sanitize())
}

const publicationRecovery = "Recover: recreate the publication (CREATE PUBLICATION %s FOR TABLE ... WITH (publish_via_partition_root = true), " +
	"or let pgcdc create it at start with postgres.create_publication: true) and start pgcdc again. If it then stops with " +
	"\"publication ... does not exist\" at the same position, changes were made while the publication was missing and this slot can " +
	"never get past them: drop the slot (SELECT pg_drop_replication_slot('<slot>')), start pgcdc to create a new one, and re-snapshot " +
	"the tables (docs/faults.md, \"Publication dropped\")"

// abort ends Run with err after a clean stop (the current transaction finished, what Kafka holds
// confirmed). Goroutines other than the stream loop use it to report a permanent failure.
func (c *Connector) abort(err error) {
	if c.cancel != nil {
		c.cancel(fatal(err))
	}
}

// abortCause returns the error abort was called with, nil after an ordinary stop.
func abortCause(ctx context.Context) error {
	var f *fatalError
	if cause := context.Cause(ctx); errors.As(cause, &f) {
		return f.err
	}
	return nil
}

// explain adds what happened and how to recover to a permanent error from the replication
// connection, when PostgreSQL's own message does not say it.
func (c *Connector) explain(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	pub := c.cfg.Postgres.Publication
	switch {
	case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "publication"):
		return fmt.Errorf("%w: the publication pgcdc streams from is missing at the WAL position being decoded (dropped while changes were made). "+publicationRecovery,
			err, pgx.Identifier{pub}.Sanitize())
	case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "replication slot"):
		return fmt.Errorf("%w: the replication slot was dropped while pgcdc ran; pgcdc does not recreate it silently (changes made meanwhile would be lost): see docs/operations.md, \"Recovering from a lost slot\"", err)
	case pgErr.Code == "42501" || pgErr.Code == "28000":
		return fmt.Errorf("%w: the role pgcdc connects as lost a privilege it needs (REPLICATION to stream, LOGIN and CONNECT to connect). "+
			"Recover: grant it again (ALTER ROLE ... REPLICATION; GRANT CONNECT ON DATABASE ...) and start pgcdc: it resumes from the slot's confirmed position, nothing is lost (docs/faults.md)", err)
	case pgErr.Code == "55000" && strings.Contains(pgErr.Detail+pgErr.Message, "invalidated"):
		return fmt.Errorf("%w: the replication slot was invalidated (PostgreSQL removed WAL it still needed, max_slot_wal_keep_size); the changes in between are lost to it. "+
			"Recover: drop the slot, start pgcdc to create a new one and re-snapshot the tables: see docs/operations.md, \"Recovering from a lost slot\"", err)
	}
	return err
}
