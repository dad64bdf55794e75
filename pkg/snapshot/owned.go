package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OwnedTable is a progress table that every role running pgcdc shares: each row carries the role
// that wrote it (role_name, default current_user) and row-level security shows and lets change a
// role only its own rows, so the table is granted to PUBLIC. The first pgcdc that needs the table
// creates it (CREATE on the schema); later roles need only USAGE on the schema. The initial
// snapshot's Store and the incremental snapshot's store (package incremental) are both built on it.
type OwnedTable struct {
	Conn    *pgx.Conn
	Schema  string
	Name    string // unquoted table name
	Table   string // quoted schema.table
	User    string // current_user
	Owner   string // the table's owner
	PerRole bool   // role_name column and row-level security (created by a version that has them)
	ddl     string
}

// OwnedDDL completes the statements that create an owned table: create is its CREATE TABLE (with a
// role_name column), to which OwnedDDL adds the row-level security and the grant.
func OwnedDDL(table, create string) string {
	return create + `;
ALTER TABLE ` + table + ` ENABLE ROW LEVEL SECURITY;
CREATE POLICY pgcdc_own_rows ON ` + table + ` USING (role_name = current_user) WITH CHECK (role_name = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON ` + table + ` TO PUBLIC`
}

// OpenOwnedTable returns schema.name on conn, creating it with ddl (OwnedDDL's statements) when it
// does not exist. A role that may not create it gets an error with the DDL for an administrator.
func OpenOwnedTable(ctx context.Context, conn *pgx.Conn, schema, name, ddl string) (*OwnedTable, error) {
	o := &OwnedTable{Conn: conn, Schema: schema, Name: name, Table: pgx.Identifier{schema, name}.Sanitize(), ddl: ddl}
	if err := conn.QueryRow(ctx, `SELECT current_user::text`).Scan(&o.User); err != nil {
		return nil, fmt.Errorf("read the current role: %w", err)
	}
	exists, err := o.readInfo(ctx)
	if err != nil || exists {
		return o, err
	}
	if _, err := conn.Exec(ctx, ddl); err != nil {
		if exists, again := o.readInfo(ctx); again == nil && exists {
			return o, nil // another pgcdc created it meanwhile
		}
		return nil, fmt.Errorf("role %s cannot create the progress table %s: %w. Grant it CREATE on schema %s (GRANT CREATE ON SCHEMA %s TO %s), "+
			"set snapshot.progress_schema to a schema where it may create tables, or have an administrator create the table once:\n%s;\n"+
			"Every role that runs pgcdc can then keep its progress there (each sees only its own rows)",
			o.User, o.Table, err, o.Schema, pgx.Identifier{o.Schema}.Sanitize(), pgx.Identifier{o.User}.Sanitize(), ddl)
	}
	if _, err := o.readInfo(ctx); err != nil {
		return nil, err
	}
	return o, nil
}

// ownedInfoSQL reads whether the table exists, its owner and whether it has per-role rows.
const ownedInfoSQL = `
SELECT c.oid IS NOT NULL, coalesce(pg_get_userbyid(c.relowner)::text, ''),
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'role_name' AND NOT a.attisdropped)
FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid`

func (o *OwnedTable) readInfo(ctx context.Context) (exists bool, err error) {
	err = o.Conn.QueryRow(ctx, ownedInfoSQL, o.Table).Scan(&exists, &o.Owner, &o.PerRole)
	if err != nil {
		return false, o.Explain(err, "look for the progress table")
	}
	return exists, nil
}

// Explain wraps an error of doing what with the table; a privilege error says exactly what to
// grant, and to whom.
func (o *OwnedTable) Explain(err error, what string) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "42501" { // insufficient_privilege
		return fmt.Errorf("%s %s: %w", what, o.Table, err)
	}
	user := pgx.Identifier{o.User}.Sanitize()
	switch {
	case strings.Contains(pg.Message, "schema"):
		return fmt.Errorf("%s %s: %w. pgcdc's role needs USAGE on schema %s (snapshot.progress_schema): as an administrator, GRANT USAGE ON SCHEMA %s TO %s",
			what, o.Table, err, o.Schema, pgx.Identifier{o.Schema}.Sanitize(), user)
	case !o.PerRole:
		return fmt.Errorf("%s %s: %w. The table was created by an older pgcdc (as role %s), without per-role rows: as %s or an administrator, run "+
			"GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s; (or set snapshot.progress_schema to another schema, where pgcdc creates a table that every role can share)",
			what, o.Table, err, o.Owner, o.Owner, o.Table, user)
	default:
		return fmt.Errorf("%s %s: %w. As the table's owner (%s) or an administrator, run GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s",
			what, o.Table, err, o.Owner, o.Table, user)
	}
}

// ExplainConflict explains a unique violation of slot's rows: with per-role rows, the rows exist
// but belong to another role, which this one cannot see. forget says what deleting them does.
func (o *OwnedTable) ExplainConflict(err error, slot, forget string) error {
	var pg *pgconn.PgError
	if !o.PerRole || !errors.As(err, &pg) || pg.Code != "23505" {
		return err
	}
	return fmt.Errorf("%w: the rows of slot %s belong to another role (each role sees only its own rows; this is %s). "+
		"If %s now runs that slot, hand them over as the table's owner (%s) or an administrator: UPDATE %s SET role_name = %s WHERE slot_name = %s; "+
		"or forget them (%s): DELETE FROM %s WHERE slot_name = %s",
		err, slot, o.User, o.User, o.Owner, o.Table, QuoteLiteral(o.User), QuoteLiteral(slot), forget, o.Table, QuoteLiteral(slot))
}

// MissingRow is the error of a row the caller wrote that is gone (deleted, or handed to another
// role).
func (o *OwnedTable) MissingRow(slot, which string) error {
	return fmt.Errorf("the progress row of slot %s (%s) is gone: deleted meanwhile, or (per-role rows) now owned by a role other than %s", slot, which, o.User)
}
