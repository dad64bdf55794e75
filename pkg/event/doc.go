// Package event encodes PostgreSQL row changes as Debezium-compatible change
// events, byte for byte as the Debezium PostgreSQL connector writes them
// through Kafka Connect's JsonConverter (compact JSON, JsonConverter's schema
// field order, Jackson's number and string formatting).
//
// It also owns the PostgreSQL type => Kafka Connect type mapping (Debezium's
// defaults plus the decimal/time/binary/interval handling modes).
//
// Usage: build one Encoder per table version (after every Relation message),
// then append keys and values into reusable buffers:
//
//	enc, err := event.NewEncoder(event.DefaultOptions("pgcdc", "shop", "0.1.0"), tbl)
//	if err != nil { ... }              // names schema.table, column and type
//	key, ok, err := enc.AppendKey(keyBuf[:0], after)   // ok=false => null key
//	val, err := enc.AppendValue(valBuf[:0], event.OpCreate, nil, after,
//	        event.Source{CommitTime: ct, TxID: xid, LSN: lsn, LastCommitLSN: last}, nil, time.Now())
//	topic := enc.Topic()
//
// Row images are []Datum in column order holding PostgreSQL text output
// (DateStyle ISO, IntervalStyle postgres); unchanged TOAST values become the
// configured placeholder, NULLs in NOT NULL columns become the column default
// or the type's zero value (as Debezium does for key-only before images).
//
// A Table can be shaped as Debezium's connector options shape it: columns
// left out of the values (Column.Omit), values masked, hashed or cut
// (Column.Mapper, mapper.go), other key columns (Table.Key), schema names and
// key fields of ByLogicalTableRouter (Table.SchemaName, KeyFields). Flat
// writes the values as ExtractNewRecordState flattens them (flat.go).
//
// An Encoder is not safe for concurrent use. The Debezium sources each rule
// follows are cited next to the code (schema.go, types_map.go, value.go).
package event
