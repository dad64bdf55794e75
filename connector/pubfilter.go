package connector

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// publicationFilters (issue 18, kept apart for the port) returns the row filters and column lists
// of tables.row_filters and tables.columns, refused on PostgreSQL 14 and on a FOR ALL TABLES
// publication. At start-up, when pgcdc manages the publication, it also gives the tables already
// in it the configured filters (pgsource.SyncFilters); new tables get them as they are added.
func (c *Connector) publicationFilters(ctx context.Context, conn *pgx.Conn, pub pgsource.Publication, published []pgsource.Table, startup bool) (pgsource.Filters, error) {
	f := pgsource.NewFilters(c.cfg.Tables.RowFilters, c.cfg.Tables.Columns)
	if !startup {
		return f, nil
	}
	if err := f.Check(c.info.Version, pub); err != nil {
		return nil, err
	}
	if !c.cfg.Postgres.ManagesPublicationTables() {
		if len(f) > 0 {
			c.log.Warn().Str("publication", pub.Name).Msg("tables.row_filters and tables.columns are not applied: pgcdc does not manage the publication (postgres.create_publication: false); set them in the publication itself")
		}
		return f, nil
	}
	if !pub.Exists {
		return f, nil
	}
	changed, err := pgsource.SyncFilters(ctx, conn, pub.Name, published, f, c.info.Version)
	if err != nil {
		return nil, err
	}
	if len(changed) > 0 {
		c.log.Info().Str("publication", pub.Name).Strs("tables", changed).Msg("set the publication's row filters and column lists")
	}
	return f, nil
}
