package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// serverFacts are the settings and role attributes the checks need, read in one query.
type serverFacts struct {
	versionNum       int
	version          string
	walLevel         string
	maxSlots         int
	usedSlots        int
	maxSenders       int
	usedSenders      int
	keepSize         string
	database, user   string
	super, repl      bool
	createOnDatabase bool
	inRecovery       bool
}

const factsSQL = `
SELECT current_setting('server_version_num')::int, current_setting('server_version'), current_setting('wal_level'),
       current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
       current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication)::int,
       current_setting('max_slot_wal_keep_size'), current_database(), current_user::text,
       r.rolsuper, r.rolreplication, has_database_privilege(current_database(), 'CREATE'), pg_is_in_recovery()
FROM pg_roles r WHERE r.rolname = current_user`

// tableAccess is what the role may do with a captured table.
type tableAccess struct {
	owner     bool // member of the owning role: may add the table to a publication
	canSelect bool
}

const accessSQL = `
SELECT n.nspname, c.relname, pg_has_role(current_user, c.relowner, 'USAGE'), has_table_privilege(c.oid, 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`

// source is what the PostgreSQL checks learned for the topic checks.
type source struct {
	tables []pgsource.Table
	rows   map[string]rowSize // by schema.table; missing when not measured
}

// checkPostgres runs the PostgreSQL checks and returns the captured tables and their largest rows
// (for the topic checks).
func checkPostgres(ctx context.Context, cfg config.Config, o Options, r *Report) source {
	connStr, err := cfg.Postgres.ConnString()
	if err != nil {
		r.add(Fail, "config", "fix the setting named above (postgres.dsn, postgres.password, postgres.password_file, postgres.ssl*)", "%v", err)
		return source{}
	}
	conn, err := pgsource.ConnectSQL(ctx, connStr)
	if err != nil {
		r.add(Fail, "postgres", "check postgres.dsn (host, port, database, user), the password, postgres.sslmode/sslrootcert/sslcert/sslkey, that the server runs and is reachable from here, and that pg_hba.conf admits this client",
			"cannot connect to %s: %v", cfg.Postgres.RedactedDSN(), err)
		return source{}
	}
	defer conn.Close(context.Background())

	var f serverFacts
	if err := conn.QueryRow(ctx, factsSQL).Scan(&f.versionNum, &f.version, &f.walLevel, &f.maxSlots, &f.usedSlots,
		&f.maxSenders, &f.usedSenders, &f.keepSize, &f.database, &f.user, &f.super, &f.repl, &f.createOnDatabase, &f.inRecovery); err != nil {
		r.add(Fail, "postgres", "make sure the role can read pg_settings and pg_roles", "cannot read the server settings: %v", err)
		return source{}
	}
	r.add(OK, "postgres", "", "connected to %s as %s (PostgreSQL %s, database %s)", cfg.Postgres.RedactedDSN(), f.user, f.version, f.database)
	checkPostgresSecurity(ctx, conn, cfg.Postgres, f, r)
	checkServer(f, r)
	checkRole(f, r)

	tables, err := pgsource.ListTables(ctx, conn, cfg.Tables.Matches)
	if err != nil {
		r.add(Fail, "table", "make sure the role can read pg_class and pg_namespace", "cannot list tables: %v", err)
		return source{}
	}
	src := source{tables: tables}
	access, err := readAccess(ctx, conn)
	if err != nil {
		r.add(Fail, "role", "", "cannot read table privileges: %v", err)
		return src
	}
	pub, err := pgsource.ReadPublication(ctx, conn, cfg.Postgres.Publication)
	if err != nil {
		r.add(Fail, "publication", "", "%v", err)
		return src
	}
	checkTables(cfg, f, tables, access, pub, r)
	checkPublication(ctx, conn, cfg, f, tables, pub, r)
	checkSlot(ctx, conn, cfg, f, o.MaxSlotLag, r)
	checkVersionFeatures(ctx, conn, cfg, f, r) // failover.go
	if cfg.Postgres.ManagesPublicationTables() {
		// The tables pgcdc leaves out of its publication (no replica identity) get no topic.
		src.tables = src.tables[:0:0]
		for _, t := range tables {
			if t.IdentityProblem() == "" {
				src.tables = append(src.tables, t)
			}
		}
	}
	if !o.SkipRowSizes {
		src.rows = measureRows(ctx, conn, src.tables, access, f.super, r)
	}
	return src
}

func checkServer(f serverFacts, r *Report) {
	if f.versionNum < 140000 {
		r.add(Fail, "postgres", "upgrade PostgreSQL to 14 or newer", "server version %s is too old: pgcdc needs PostgreSQL 14 or newer", f.version)
	}
	if f.walLevel != "logical" {
		r.add(Fail, "postgres", "ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf), then restart PostgreSQL",
			"wal_level is %q: logical decoding needs wal_level = logical", f.walLevel)
	} else {
		r.add(OK, "postgres", "", "wal_level = logical")
	}
	if f.inRecovery && f.versionNum < 160000 {
		r.add(Fail, "postgres", "point postgres.dsn at the primary (logical decoding on a standby needs PostgreSQL 16+)", "the server is a standby (in recovery)")
	}
	switch {
	case f.maxSlots == 0:
		r.add(Fail, "postgres", "set max_replication_slots to at least 1 (plus one per other consumer) and restart PostgreSQL", "max_replication_slots = 0: no replication slot can be created")
	case f.usedSlots >= f.maxSlots:
		r.add(Warn, "postgres", "raise max_replication_slots (restart needed) or drop unused slots (SELECT slot_name, active FROM pg_replication_slots)",
			"all %d replication slots are in use: a new slot cannot be created", f.maxSlots)
	default:
		r.add(OK, "postgres", "", "max_replication_slots = %d (%d in use)", f.maxSlots, f.usedSlots)
	}
	switch {
	case f.maxSenders == 0:
		r.add(Fail, "postgres", "set max_wal_senders to at least 2 (one for pgcdc plus a spare for reconnects) and restart PostgreSQL", "max_wal_senders = 0: no replication connection is possible")
	case f.usedSenders >= f.maxSenders:
		r.add(Warn, "postgres", "raise max_wal_senders (restart needed)", "all %d WAL senders are in use: pgcdc's replication connection would be refused", f.maxSenders)
	default:
		r.add(OK, "postgres", "", "max_wal_senders = %d (%d in use)", f.maxSenders, f.usedSenders)
	}
	if f.keepSize == "-1" {
		r.add(Info, "postgres", "", "max_slot_wal_keep_size = -1: a stopped or stalled pgcdc makes PostgreSQL keep WAL until its disk fills; alert on pgcdc_slot_lag_bytes (docs/operations.md)")
	} else {
		r.add(Info, "postgres", "", "max_slot_wal_keep_size = %s: if pgcdc falls further behind, PostgreSQL invalidates the slot and changes are lost to it; alert on pgcdc_slot_wal_status", f.keepSize)
	}
}

func checkRole(f serverFacts, r *Report) {
	switch {
	case f.super:
		r.add(Info, "role", "", "role %s is a superuser: everything works, but a least-privilege role is safer (docs/operations.md, \"Privileges\")", f.user)
	case !f.repl:
		r.add(Fail, "role", fmt.Sprintf("ALTER ROLE %s WITH REPLICATION", pgx.Identifier{f.user}.Sanitize()),
			"role %s lacks the REPLICATION attribute: it cannot create the slot nor stream changes", f.user)
	default:
		r.add(OK, "role", "", "role %s has REPLICATION", f.user)
	}
}

func readAccess(ctx context.Context, conn *pgx.Conn) (map[string]tableAccess, error) {
	rows, err := conn.Query(ctx, accessSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]tableAccess{}
	for rows.Next() {
		var s, t string
		var a tableAccess
		if err := rows.Scan(&s, &t, &a.owner, &a.canSelect); err != nil {
			return nil, err
		}
		out[s+"."+t] = a
	}
	return out, rows.Err()
}

func checkTables(cfg config.Config, f serverFacts, tables []pgsource.Table, access map[string]tableAccess, pub pgsource.Publication, r *Report) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	for _, p := range cfg.Tables.UnmatchedIncludes(names) {
		r.add(Warn, "table", "create the table (it is captured from then on), fix the name in tables.include (schema.table, as stored: unquoted names are lower case), or name the partitioned root rather than a partition",
			"tables.include names %s, which does not exist yet (or is excluded, or is a partition)", p)
	}
	if len(tables) == 0 {
		r.add(Warn, "table", "check tables.include and tables.exclude (schema.table globs, e.g. public.*)",
			"no table matches tables.include %v: nothing would be captured until a matching table is created", cfg.Tables.Include)
		return
	}
	var ok []string
	for _, t := range tables {
		name := t.String()
		if problem := t.IdentityProblem(); problem != "" {
			msg, fix, _ := strings.Cut(problem, " Fix: ")
			r.add(Warn, "table", fix, "%s; pgcdc leaves it out (pgcdc_tables_skipped)", msg)
			continue
		}
		a := access[name]
		inPub := pub.AllTables || pub.Tables[name]
		if !inPub && cfg.Postgres.ManagesPublicationTables() && !f.super && !a.owner {
			r.add(Fail, "role", fmt.Sprintf("add it to the publication as its owner or an admin (ALTER PUBLICATION %s ADD TABLE %s), or make %s its owner",
				pgx.Identifier{cfg.Postgres.Publication}.Sanitize(), t.Ident(), f.user),
				"role %s does not own %s, so pgcdc cannot add it to publication %s", f.user, name, cfg.Postgres.Publication)
			continue
		}
		if !f.super && !a.canSelect {
			r.add(Warn, "role", fmt.Sprintf("GRANT SELECT ON %s TO %s", t.Ident(), pgx.Identifier{f.user}.Sanitize()),
				"role %s cannot SELECT from %s: snapshots of it would fail", f.user, name)
		}
		ok = append(ok, name)
	}
	if len(ok) > 0 {
		r.add(OK, "table", "", "%s with a replica identity: %s", plural(len(ok), "captured table"), strings.Join(ok, ", "))
	}
}

func checkPublication(ctx context.Context, conn *pgx.Conn, cfg config.Config, f serverFacts, tables []pgsource.Table, pub pgsource.Publication, r *Report) {
	name := cfg.Postgres.Publication
	ident := pgx.Identifier{name}.Sanitize()
	var list []string
	for _, t := range tables {
		list = append(list, t.Ident())
	}
	forTables := strings.Join(list, ", ")
	if forTables == "" {
		forTables = "<tables>"
	}
	mode := cfg.Postgres.PublicationModeEffective()
	if !pub.Exists {
		if mode == config.PublicationDisabled {
			r.add(Fail, "publication", fmt.Sprintf("as an admin: CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = %t); or set postgres.publication_mode: filtered", ident, forTables, cfg.Tables.PublishViaPartitionRoot),
				"publication %s does not exist and postgres.publication_mode is disabled", name)
			return
		}
		if mode == config.PublicationAllTables {
			if !f.super {
				r.add(Fail, "role", fmt.Sprintf("as a superuser: CREATE PUBLICATION %s FOR ALL TABLES WITH (publish_via_partition_root = %t); or set postgres.publication_mode: filtered", ident, cfg.Tables.PublishViaPartitionRoot),
					"publication %s does not exist and role %s may not create it FOR ALL TABLES (a superuser's privilege)", name, f.user)
			}
			checkUnpublishable(ctx, conn, name, r)
			if !f.super {
				return
			}
		}
		if !f.super && !f.createOnDatabase {
			r.add(Fail, "role", fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; or create the publication as an admin and set postgres.create_publication: false",
				pgx.Identifier{f.database}.Sanitize(), pgx.Identifier{f.user}.Sanitize()),
				"publication %s does not exist and role %s may not create it (no CREATE privilege on database %s)", name, f.user, f.database)
			return
		}
		r.add(Info, "publication", "", "publication %s does not exist yet: pgcdc creates it at start", name)
		return
	}
	var ins, upd, del bool
	if err := conn.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = $1`, name).Scan(&ins, &upd, &del); err == nil {
		var off []string
		for op, on := range map[string]bool{"insert": ins, "update": upd, "delete": del} {
			if !on {
				off = append(off, op)
			}
		}
		if len(off) > 0 {
			r.add(Warn, "publication", fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate')", ident),
				"publication %s does not publish %s: those changes never reach Kafka", name, strings.Join(off, ", "))
		}
	}
	if pub.AllTables {
		r.add(Info, "publication", "", "publication %s is FOR ALL TABLES: every table's changes are streamed, whatever tables.include says", name)
		return
	}
	captured := map[string]bool{}
	var missing []string
	for _, t := range tables {
		captured[t.String()] = true
		if !pub.Tables[t.String()] && t.IdentityProblem() == "" {
			missing = append(missing, t.String())
		}
	}
	var extra []string
	for t := range pub.Tables {
		if !captured[t] {
			extra = append(extra, t)
		}
	}
	switch {
	case len(missing) > 0 && cfg.Postgres.ManagesPublicationTables():
		r.add(Info, "publication", "", "pgcdc adds to publication %s at start: %s", name, strings.Join(missing, ", "))
	case len(missing) > 0:
		r.add(Warn, "publication", fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE ... (as the tables' owner or an admin), or exclude them in tables.exclude", ident),
			"tables match tables.include but are not in publication %s, which pgcdc does not manage (publication_mode %s): their changes are not captured: %s", name, mode, strings.Join(missing, ", "))
	default:
		r.add(OK, "publication", "", "publication %s holds every captured table", name)
	}
	if len(extra) > 0 {
		r.add(Warn, "publication", fmt.Sprintf("ALTER PUBLICATION %s DROP TABLE ..., or add them to tables.include", ident),
			"publication %s also holds tables that tables.include does not match; their changes are streamed too: %s", name, strings.Join(extra, ", "))
	}
	if pub.ViaRoot != cfg.Tables.PublishViaPartitionRoot {
		r.add(Fail, "publication", fmt.Sprintf("set tables.publish_via_partition_root: %t to keep the current topics, or ALTER PUBLICATION %s SET (publish_via_partition_root = %t) to move partitioned tables to the other topics", pub.ViaRoot, ident, cfg.Tables.PublishViaPartitionRoot),
			"publication %s has publish_via_partition_root = %t but tables.publish_via_partition_root is %t: pgcdc refuses to start rather than change the topics of partitioned tables", name, pub.ViaRoot, cfg.Tables.PublishViaPartitionRoot)
	}
}

// checkUnpublishable warns about the tables whose UPDATE and DELETE fail once a FOR ALL TABLES
// publication exists (no primary key, no replica identity).
func checkUnpublishable(ctx context.Context, conn *pgx.Conn, pubName string, r *Report) {
	all, err := pgsource.ListTables(ctx, conn, func(string, string) bool { return true })
	if err != nil {
		r.add(Warn, "publication", "", "cannot list the tables without a replica identity: %v", err)
		return
	}
	var bad []string
	for _, t := range all {
		if t.IdentityProblem() != "" {
			bad = append(bad, t.String())
		}
	}
	if len(bad) > 0 {
		r.add(Warn, "publication", "give each a primary key or REPLICA IDENTITY FULL before the publication is created, or use postgres.publication_mode: filtered",
			"publication %s FOR ALL TABLES would make UPDATE and DELETE fail on the tables without a replica identity: %s", pubName, strings.Join(bad, ", "))
	}
}

func checkSlot(ctx context.Context, conn *pgx.Conn, cfg config.Config, f serverFacts, maxLag int64, r *Report) {
	name := cfg.Postgres.Slot
	st, err := pgsource.ReadSlotState(ctx, conn, name)
	if err != nil {
		r.add(Fail, "slot", "", "%v", err)
		return
	}
	if !st.Exists {
		if !cfg.Postgres.CreateSlot {
			r.add(Fail, "slot", fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'pgoutput'); or set postgres.create_slot: true", name),
				"replication slot %s does not exist and postgres.create_slot is false", name)
			return
		}
		r.add(Info, "slot", "", "replication slot %s does not exist yet: pgcdc creates it at first start and captures changes from that moment on", name)
		return
	}
	switch {
	case st.Plugin != "pgoutput":
		r.add(Fail, "slot", "choose another postgres.slot", "replication slot %s uses plugin %q; pgcdc needs pgoutput", name, st.Plugin)
		return
	case st.Database != f.database:
		r.add(Fail, "slot", "choose another postgres.slot", "replication slot %s belongs to database %s, not %s", name, st.Database, f.database)
		return
	case st.WALStatus == "lost":
		r.add(Fail, "slot", "pgcdc slot drop --confirm, start pgcdc again (it creates a new slot) and rebuild downstream systems from a fresh snapshot; see docs/operations.md, \"Recovering from a lost slot\"",
			"replication slot %s is invalidated (wal_status = lost): PostgreSQL removed WAL it still needed", name)
		return
	case st.WALStatus == "unreserved":
		r.add(Warn, "slot", "get pgcdc streaming and caught up now, or raise max_slot_wal_keep_size",
			"replication slot %s is about to be invalidated (wal_status = unreserved, %s behind)", name, BytesString(st.LagBytes()))
	}
	judgeSlotLag(r, st, maxLag)
	if st.Active {
		holder := fmt.Sprintf("walsender pid %d", st.ActivePID)
		if h, err := pgsource.ReadSlotHolder(ctx, conn, name); err == nil {
			holder = h.String()
		}
		r.add(Info, "slot", "", "replication slot %s is held by %s; a second pgcdc on it cannot stream until that session ends", name, holder)
	}
}

// judgeSlotLag reports how far the slot is behind against maxLag: an inactive slot beyond it keeps
// WAL that nobody consumes (the disk fills, or max_slot_wal_keep_size invalidates the slot).
func judgeSlotLag(r *Report, st pgsource.SlotInfo, maxLag int64) {
	lag, retained := st.LagBytes(), st.RetainedBytes()
	pos := fmt.Sprintf("confirmed_flush_lsn %s, %s behind the server's WAL end, %s of WAL retained, wal_status %s",
		st.ConfirmedFlush, BytesString(lag), BytesString(retained), st.WALStatus)
	over := lag > maxLag || retained > maxLag
	switch {
	case over && !st.Active:
		r.add(Warn, "slot", fmt.Sprintf("start pgcdc so that it catches up; if this slot is abandoned, drop it (pgcdc slot drop --confirm); and set max_slot_wal_keep_size to bound what a stopped consumer can hold (threshold: --max-slot-lag %s)", BytesString(maxLag)),
			"replication slot %s is inactive and far behind (%s): PostgreSQL keeps that WAL on disk until the slot moves, and it grows with every write", st.Name, pos)
	case over:
		r.add(Info, "slot", "", "replication slot %s is being consumed but is more than %s behind (%s): pgcdc is catching up, or cannot keep up (see pgcdc_replication_lag_seconds)", st.Name, BytesString(maxLag), pos)
	case st.WALStatus != "unreserved":
		r.add(OK, "slot", "", "replication slot %s: %s", st.Name, pos)
	}
}

// BytesString renders a byte count for humans (binary units).
func BytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
