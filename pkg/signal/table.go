package signal

import "github.com/jackc/pgx/v5"

// Signal table columns, as Debezium's signal.data.collection has them.
const (
	ColumnID   = "id"
	ColumnType = "type"
	ColumnData = "data"
)

// TableDDL returns the CREATE TABLE of a signal table schema.name, with Debezium's layout (id
// varchar(42) primary key, type varchar(32), data varchar(2048)).
func TableDDL(schema, name string) string {
	return `CREATE TABLE ` + pgx.Identifier{schema, name}.Sanitize() + ` (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048) NULL)`
}

// InsertSQL returns the statement that sends a signal through the signal table schema.name
// ($1 id, $2 type, $3 data).
func InsertSQL(schema, name string) string {
	return `INSERT INTO ` + pgx.Identifier{schema, name}.Sanitize() + ` (id, type, data) VALUES ($1, $2, $3)`
}

// FromRow parses a row inserted into the signal table (its id, type and data columns as text).
func FromRow(id, typ string, data []byte) (Signal, error) {
	if len(data) == 0 {
		data = []byte("{}")
	}
	s, err := Parse(id, typ, data)
	s.Channel = ChannelSource
	return s, err
}
