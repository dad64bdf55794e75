package connector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// syncPublication brings the publication in line with postgres.publication_mode and returns the
// captured tables: those tables.include selects whose changes the publication carries, and among
// them the ones it added to the publication (publication_mode filtered). It runs at
// start-up and at every refresh, with the same rules both times: an include entry that matches no
// table yet is a warning (the table may be created later); a table that cannot be published without
// breaking the application's UPDATE and DELETE (no replica identity) is left out with a warning and
// counted in pgcdc_tables_skipped. The tables a refresh finds captured anew join the capture (see
// refreshPublication).
//
// The signal table (signal.table) is published as the captured tables are (its rows are signals,
// read from the stream) but never captured: it is in neither list returned.
func (c *Connector) syncPublication(ctx context.Context, conn *pgx.Conn, startup bool) (captured, added []pgsource.Table, err error) {
	sigSchema, sigName := c.cfg.Signal.TableName()
	isSignal := func(t pgsource.Table) bool {
		return c.cfg.Signal.Table != "" && t.Schema == sigSchema && t.Name == sigName
	}
	captured, added, err = c.publish(ctx, conn, startup, func(schema, table string) bool {
		return c.cfg.Tables.Matches(schema, table) || isSignal(pgsource.Table{Schema: schema, Name: table})
	})
	return slices.DeleteFunc(captured, isSignal), slices.DeleteFunc(added, isSignal), err
}

// publish is syncPublication for the tables match selects (the captured ones and the signal table);
// added are the tables it added to the publication.
func (c *Connector) publish(ctx context.Context, conn *pgx.Conn, startup bool, match func(schema, table string) bool) (captured, added []pgsource.Table, err error) {
	pg := c.cfg.Postgres
	mode := pg.PublicationModeEffective()
	tables, err := pgsource.ListTables(ctx, conn, match)
	if err != nil {
		return nil, nil, err
	}
	if startup {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.String()
		}
		for _, p := range c.cfg.Tables.UnmatchedIncludes(names) {
			c.log.Warn().Str("include", p).Msg("tables.include names a table that does not exist (yet): it is captured once it is created; check the name (schema.table, unquoted names are lower case; a partition's root, not the partition)")
		}
	}
	pub, err := pgsource.ReadPublication(ctx, conn, pg.Publication)
	if err != nil {
		return nil, nil, err
	}
	if !startup && !pub.Exists {
		return nil, nil, pgsource.StopJob(&errPublicationDropped{pg.Publication})
	}
	ident := pgx.Identifier{pg.Publication}.Sanitize()
	if pub.Exists && pub.ViaRoot != c.cfg.Tables.PublishViaPartitionRoot {
		// Never flipped silently: it changes the topics of partitioned tables.
		return nil, nil, fmt.Errorf("postgres: publication %q has publish_via_partition_root = %t but tables.publish_via_partition_root is %t: "+
			"the topics of partitioned tables differ (one per partitioned table when true, one per partition when false). Keep the topics consumers read: "+
			"set tables.publish_via_partition_root: %t; or move to the other topics knowingly: ALTER PUBLICATION %s SET (publish_via_partition_root = %t)",
			pg.Publication, pub.ViaRoot, c.cfg.Tables.PublishViaPartitionRoot, pub.ViaRoot, ident, c.cfg.Tables.PublishViaPartitionRoot)
	}
	switch mode {
	case config.PublicationAllTables:
		if !pub.Exists {
			if err := c.warnUnpublishable(ctx, conn); err != nil {
				return nil, nil, err
			}
			if err := pgsource.CreatePublicationAllTables(ctx, conn, pg.Publication, c.cfg.Tables.PublishViaPartitionRoot); err != nil {
				return nil, nil, fmt.Errorf("%w (postgres.publication_mode all_tables needs a superuser: create it as one, or use publication_mode filtered)", err)
			}
			c.createdPublication = startup
			c.log.Info().Str("publication", pg.Publication).Msg("created publication FOR ALL TABLES")
		} else if !pub.AllTables {
			return nil, nil, fmt.Errorf("postgres: publication %q exists but is not FOR ALL TABLES, and postgres.publication_mode is all_tables: drop it (DROP PUBLICATION %s) to let pgcdc create it, or set publication_mode to filtered or disabled",
				pg.Publication, ident)
		}
		return tables, nil, nil
	case config.PublicationDisabled, config.PublicationNoTables:
		if !pub.Exists && mode == config.PublicationDisabled {
			return nil, nil, fmt.Errorf("postgres: publication %q does not exist and pgcdc does not manage it (postgres.publication_mode disabled, or create_publication: false): as an administrator, CREATE PUBLICATION %s FOR TABLE ... WITH (publish_via_partition_root = %t); or set publication_mode: filtered",
				pg.Publication, ident, c.cfg.Tables.PublishViaPartitionRoot)
		}
		if !pub.Exists {
			if err := pgsource.CreatePublication(ctx, conn, pg.Publication, nil, c.cfg.Tables.PublishViaPartitionRoot, nil); err != nil {
				return nil, nil, err
			}
			c.createdPublication = startup
			c.log.Info().Str("publication", pg.Publication).Msg("created publication without tables (publication_mode no_tables): an administrator adds them")
		}
		var in []pgsource.Table
		for _, t := range tables {
			if pub.AllTables || pub.Tables[t.String()] {
				in = append(in, t)
			} else if c.firstNotice("unpublished " + t.String()) {
				c.log.Warn().Str("table", t.String()).Str("publication", pg.Publication).Str("publication_mode", mode).
					Msg("table matches tables.include but is not in the publication, which pgcdc does not manage: its changes are not captured; add it with ALTER PUBLICATION ... ADD TABLE")
			}
		}
		return in, nil, nil
	}

	// filtered: the publication lists the captured tables.
	var publishable, missing []pgsource.Table
	skipped := 0
	for _, t := range tables {
		if pub.Tables[t.String()] || pub.AllTables {
			publishable = append(publishable, t)
			continue
		}
		if problem := t.IdentityProblem(); problem != "" {
			skipped++
			if c.firstNotice("identity " + t.String()) {
				c.log.Warn().Str("table", t.String()).Msg("not captured: " + problem)
			}
			continue
		}
		missing = append(missing, t)
	}
	c.metrics.TablesSkipped(skipped)
	filters, err := c.publicationFilters(ctx, conn, pub, publishable, startup) // pubfilter.go
	if err != nil {
		return nil, nil, err
	}
	if !pub.Exists {
		if err := pgsource.CreatePublication(ctx, conn, pg.Publication, missing, c.cfg.Tables.PublishViaPartitionRoot, filters); err != nil {
			return nil, nil, err
		}
		c.createdPublication = startup
		c.log.Info().Str("publication", pg.Publication).Int("tables", len(missing)).Msg("created publication")
		return missing, missing, nil
	}
	if len(missing) > 0 {
		if err := c.forgetJoining(ctx, conn, missing); err != nil { // incremental.go
			return nil, nil, err
		}
		if err := pgsource.AddTables(ctx, conn, pg.Publication, missing, filters); err != nil {
			return nil, nil, err
		}
		for _, t := range missing {
			c.log.Info().Str("table", t.String()).Str("publication", pg.Publication).Msg("added table to publication")
		}
	}
	return append(publishable, missing...), missing, nil
}

// warnUnpublishable lists, before a FOR ALL TABLES publication is created, the tables whose UPDATE
// and DELETE will fail once published (no primary key, no replica identity): every table of the
// database, captured or not.
func (c *Connector) warnUnpublishable(ctx context.Context, conn *pgx.Conn) error {
	all, err := pgsource.ListTables(ctx, conn, func(string, string) bool { return true })
	if err != nil {
		return err
	}
	var bad []string
	for _, t := range all {
		if t.IdentityProblem() != "" {
			bad = append(bad, t.String())
		}
	}
	if len(bad) > 0 {
		c.log.Warn().Strs("tables", bad).Msg("publication_mode all_tables: once the publication FOR ALL TABLES exists, UPDATE and DELETE on these tables fail in the application (no primary key or replica identity): give each a primary key or REPLICA IDENTITY FULL, or use publication_mode filtered")
	}
	return nil
}

// firstNotice reports whether what is noticed for the first time in this process (a warning said
// once, not at every refresh).
func (c *Connector) firstNotice(what string) bool {
	c.tablesMu.Lock()
	defer c.tablesMu.Unlock()
	if c.noticed == nil {
		c.noticed = map[string]bool{}
	}
	if c.noticed[what] {
		return false
	}
	c.noticed[what] = true
	return true
}

// refreshPublication is the periodic job that re-syncs the publication, so that tables created
// later that match tables.include are captured (and their rows snapshotted when they join, see
// joinTables). A dropped publication stops pgcdc.
//
// A table joins when its name is new to the capture, when the table under that name is not the
// one captured before (its OID changed), or when this refresh added it to the publication: a table
// dropped and created again under a captured name (in one transaction, or between two refreshes, by
// anyone) is a new table, and so is one taken out of the publication and added back; their rows
// written before the addition were not published.
func (c *Connector) refreshPublication(ctx context.Context, conn *pgx.Conn) error {
	tables, added, err := c.syncPublication(ctx, conn, false)
	if err != nil {
		return err
	}
	c.tablesMu.Lock()
	before := c.tables
	c.tables = tables
	c.tablesMu.Unlock()
	var joined []pgsource.Table
	var attached []attachedLeaf
	for _, t := range tables {
		if !sameTable(before, t) || containsTable(added, t) {
			joined = append(joined, t)
			continue
		}
		attached = append(attached, attachedLeaves(before, t)...)
	}
	if len(joined) == 0 && len(attached) == 0 {
		return nil
	}
	err = c.joinTables(ctx, joined)
	if err == nil && len(attached) > 0 {
		err = c.joinPartitions(ctx, attached)
	}
	if err != nil {
		// The next refresh finds them new again (by name: the publication holds them now), and
		// tries again.
		c.tablesMu.Lock()
		c.tables = slices.DeleteFunc(slices.Clone(before), func(b pgsource.Table) bool { return containsTable(joined, b) })
		c.tablesMu.Unlock()
		return err
	}
	return nil
}

// attachedLeaf is a leaf partition attached to a captured partitioned table since the last refresh.
type attachedLeaf struct {
	root pgsource.Table // the captured partitioned table
	leaf pgsource.Table // the partition, keyed as its root
}

// attachedLeaves returns the leaf partitions of t (a captured partitioned table) that its version in
// before did not have: partitions attached since (ATTACH PARTITION, or created as a partition).
func attachedLeaves(before []pgsource.Table, t pgsource.Table) []attachedLeaf {
	i := slices.IndexFunc(before, func(b pgsource.Table) bool { return b.String() == t.String() })
	if i < 0 || len(t.Leaves) == 0 {
		return nil
	}
	var out []attachedLeaf
	for _, leaf := range t.Leaves {
		if slices.Contains(before[i].Leaves, leaf) {
			continue
		}
		schema, name, ok := strings.Cut(leaf, ".")
		if !ok {
			continue
		}
		out = append(out, attachedLeaf{root: t, leaf: pgsource.Table{Schema: schema, Name: name, Identity: t.Identity, HasKey: t.HasKey, HasIdentIdx: t.HasIdentIdx}})
	}
	return out
}

// joinPartitions is called with the partitions attached to captured partitioned tables since the
// last refresh. A table attached with rows (ATTACH PARTITION) is a join like any other: PostgreSQL
// never published the rows it held under the root, so they are snapshotted incrementally
// (snapshot.backfill_new_tables), and every change after the attachment is streamed. With each
// partition under its own topic (tables.publish_via_partition_root false) the partition is
// snapshotted, its topic created first; under the root's topic, the root is snapshotted, restricted
// to the attached partitions' rows (tableoid), so that its rows are described as the root's.
func (c *Connector) joinPartitions(ctx context.Context, attached []attachedLeaf) error {
	names := make([]string, len(attached))
	leaves := make([]pgsource.Table, len(attached))
	for i, a := range attached {
		names[i], leaves[i] = a.leaf.String(), a.leaf
	}
	c.log.Info().Strs("partitions", names).Msg("partitions attached to captured tables")
	if !c.cfg.Tables.PublishViaPartitionRoot {
		for _, l := range leaves {
			if err := c.sink.EnsureTopic(ctx, c.topicOf(l)); err != nil {
				return err
			}
		}
		return c.backfill(ctx, leaves, nil) // incremental.go
	}
	var roots []pgsource.Table
	of := map[string][]string{}
	for _, a := range attached {
		r := a.root.String()
		if _, ok := of[r]; !ok {
			roots = append(roots, a.root)
		}
		of[r] = append(of[r], "'"+strings.ReplaceAll(a.leaf.Ident(), "'", "''")+"'::regclass")
	}
	filters := map[string]string{}
	for r, oids := range of {
		filters[r] = "tableoid IN (" + strings.Join(oids, ", ") + ")"
	}
	return c.backfill(ctx, roots, filters)
}

// containsTable reports whether tables holds a table named as t.
func containsTable(tables []pgsource.Table, t pgsource.Table) bool {
	return slices.ContainsFunc(tables, func(b pgsource.Table) bool { return b.String() == t.String() })
}

// sameTable reports whether tables holds t itself: named as t, with t's OID (when both are known).
func sameTable(tables []pgsource.Table, t pgsource.Table) bool {
	return slices.ContainsFunc(tables, func(b pgsource.Table) bool {
		return b.String() == t.String() && (b.OID == 0 || t.OID == 0 || b.OID == t.OID)
	})
}

// joinTables is called with the tables a refresh found captured anew (created since, added to the
// publication by pgcdc or by an administrator, given a replica identity): their topics are created,
// and, unless the publication is FOR ALL TABLES (postgres.publication_mode all_tables: a table is
// published from its CREATE, so every row version was streamed), the rows they held before they
// joined the publication, whose changes PostgreSQL did not publish, are snapshotted, consistently
// with the stream (an incremental snapshot, snapshot.backfill_new_tables), and every version after
// the join is streamed.
func (c *Connector) joinTables(ctx context.Context, tables []pgsource.Table) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
		if !c.publishesTableTopic(t) { // outbox.go
			continue
		}
		// Their topics exist from the join on, as the captured tables' do from the start.
		for _, topic := range c.topicsOf(t) {
			if err := c.sink.EnsureTopic(ctx, topic); err != nil {
				return err
			}
		}
	}
	if c.cfg.Postgres.PublicationModeEffective() == config.PublicationAllTables {
		c.log.Info().Str("tables", strings.Join(names, ", ")).Msg("tables joined the capture (publication FOR ALL TABLES: every row version since their creation is streamed)")
		return c.markKnown(ctx, names) // incremental.go
	}
	return c.backfill(ctx, tables, nil) // incremental.go
}

// errPublicationDropped is the publication refresher's finding that the publication pgcdc streams
// from no longer exists.
type errPublicationDropped struct{ name string }

func (e *errPublicationDropped) Error() string {
	return fmt.Sprintf("postgres: publication %q was dropped while pgcdc ran. pgcdc does not recreate it silently: "+
		"PostgreSQL cannot decode, for this slot, the changes made while it did not exist. "+pgsource.PublicationRecovery, e.name, pgx.Identifier{e.name}.Sanitize())
}
