package connector

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// syncPublication makes the publication hold the captured tables (when pgcdc manages it) and
// returns them. At start-up, a table that cannot be published, or an include entry naming a table
// that does not exist, is an error; later (refresh) it is logged and retried at the next refresh.
func (c *Connector) syncPublication(ctx context.Context, conn *pgx.Conn, startup bool) ([]pgsource.Table, error) {
	// The signal table is published (its rows are signals, read from the stream) but not captured.
	sigSchema, sigName := c.cfg.Signal.TableName()
	isSignal := func(schema, table string) bool {
		return c.cfg.Signal.Table != "" && schema == sigSchema && table == sigName
	}
	tables, err := pgsource.ListTables(ctx, conn, func(schema, table string) bool {
		return c.cfg.Tables.Matches(schema, table) || isSignal(schema, table)
	})
	if err != nil {
		return nil, err
	}

	if startup {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.String()
		}
		if missing := c.cfg.Tables.UnmatchedIncludes(names); len(missing) > 0 {
			return nil, fmt.Errorf("tables.include: table %s does not exist (or is excluded, or is a partition: name its partitioned root)", missing[0])
		}
	}
	pub, err := pgsource.ReadPublication(ctx, conn, c.cfg.Postgres.Publication)
	if err != nil {
		return nil, err
	}
	if !startup && !pub.Exists {
		return nil, pgsource.StopJob(&errPublicationDropped{c.cfg.Postgres.Publication})
	}
	var publishable, missing []pgsource.Table
	for _, t := range tables {
		if pub.Tables[t.String()] || pub.AllTables {
			publishable = append(publishable, t)
			continue
		}
		if problem := t.IdentityProblem(); problem != "" {
			if startup && c.cfg.Postgres.CreatePublication {
				return nil, fmt.Errorf("postgres: refusing to capture %s: %s", t, problem)
			}
			c.log.Error().Str("table", t.String()).Msg("not captured: " + problem)
			continue
		}
		missing = append(missing, t)
	}
	filters, err := c.publicationFilters(ctx, conn, pub, publishable, startup) // pubfilter.go
	if err != nil {
		return nil, err
	}
	if !c.cfg.Postgres.CreatePublication {
		if !pub.Exists {
			return nil, fmt.Errorf("postgres: publication %q does not exist and postgres.create_publication is false: create it (CREATE PUBLICATION %s FOR TABLE ... WITH (publish_via_partition_root = true)) or set create_publication: true",
				c.cfg.Postgres.Publication, pgx.Identifier{c.cfg.Postgres.Publication}.Sanitize())
		}
		for _, t := range missing {
			c.log.Warn().Str("table", t.String()).Str("publication", c.cfg.Postgres.Publication).
				Msg("table matches tables.include but is not in the publication, which pgcdc does not manage (postgres.create_publication: false): its changes are not captured; add it with ALTER PUBLICATION ... ADD TABLE")
		}
		return withoutSignal(publishable, isSignal), nil
	}
	if !pub.Exists {
		if err := pgsource.CreatePublication(ctx, conn, c.cfg.Postgres.Publication, missing, c.cfg.Tables.PublishViaPartitionRoot, filters); err != nil {
			return nil, err
		}
		c.log.Info().Str("publication", c.cfg.Postgres.Publication).Int("tables", len(missing)).Msg("created publication")
	} else if pub.ViaRoot != c.cfg.Tables.PublishViaPartitionRoot {
		if err := pgsource.SetViaRoot(ctx, conn, c.cfg.Postgres.Publication, c.cfg.Tables.PublishViaPartitionRoot); err != nil {
			return nil, err
		}
		c.log.Info().Str("publication", c.cfg.Postgres.Publication).Bool("publish_via_partition_root", c.cfg.Tables.PublishViaPartitionRoot).Msg("changed publication setting")
	}
	if pub.Exists && len(missing) > 0 {
		if err := pgsource.AddTables(ctx, conn, c.cfg.Postgres.Publication, missing, filters); err != nil {
			return nil, err
		}
		for _, t := range missing {
			c.log.Info().Str("table", t.String()).Str("publication", c.cfg.Postgres.Publication).Msg("added table to publication")
		}
	}
	return withoutSignal(append(publishable, missing...), isSignal), nil
}

// withoutSignal returns tables without the signal table.
func withoutSignal(tables []pgsource.Table, isSignal func(schema, table string) bool) []pgsource.Table {
	return slices.DeleteFunc(tables, func(t pgsource.Table) bool { return isSignal(t.Schema, t.Name) })
}

// refreshPublication is the periodic job that re-syncs the publication, so that tables created
// later that match tables.include are captured. A dropped publication stops pgcdc.
func (c *Connector) refreshPublication(ctx context.Context, conn *pgx.Conn) error {
	tables, err := c.syncPublication(ctx, conn, false)
	if err != nil {
		return err
	}
	c.tablesMu.Lock()
	before := c.tables
	c.tables = tables
	c.tablesMu.Unlock()
	if err := c.backfill(ctx, before, tables); err != nil { // incremental.go
		c.tablesMu.Lock()
		c.tables = before // the next refresh sees the new tables again, and asks again
		c.tablesMu.Unlock()
		return err
	}
	return nil
}

// errPublicationDropped is the publication refresher's finding that the publication pgcdc streams
// from no longer exists.
type errPublicationDropped struct{ name string }

func (e *errPublicationDropped) Error() string {
	return fmt.Sprintf("postgres: publication %q was dropped while pgcdc ran. pgcdc does not recreate it silently: "+
		"PostgreSQL cannot decode, for this slot, the changes made while it did not exist. "+pgsource.PublicationRecovery, e.name, pgx.Identifier{e.name}.Sanitize())
}
