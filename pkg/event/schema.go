package event

import "strconv"

// connectSchema is the subset of a Kafka Connect Schema needed to write it the
// way JsonConverter.asJsonSchema does (apache/kafka connect/json
// JsonConverter.java): "type", then "fields" (struct) / "items" (array), then
// "optional", "name", "version", "doc", "parameters", "default"; a struct
// field's schema gets "field":"<name>" appended last.
type connectSchema struct {
	typ      string // "int32", "string", "struct", "array", ...
	optional bool
	name     string
	version  int // 0 => absent
	doc      string
	params   [][2]string // insertion order (SchemaBuilder keeps a LinkedHashMap)
	fields   []connectField
	items    *connectSchema
	keys     *connectSchema // map
	values   *connectSchema // map
	dflt     []byte         // JSON of the default value; nil => absent
}

type connectField struct {
	name   string
	schema *connectSchema
}

func (s *connectSchema) withOptional(opt bool) *connectSchema {
	c := *s
	c.optional = opt
	return &c
}

// appendSchemaJSON writes s; when field != "" it appends "field":"<field>" last.
func appendSchemaJSON(dst []byte, s *connectSchema, field string) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, s.typ)
	switch s.typ {
	case "struct":
		dst = append(dst, `,"fields":[`...)
		for i, f := range s.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendSchemaJSON(dst, f.schema, f.name)
		}
		dst = append(dst, ']')
	case "array":
		dst = append(dst, `,"items":`...)
		dst = appendSchemaJSON(dst, s.items, "")
	case "map":
		dst = append(dst, `,"keys":`...)
		dst = appendSchemaJSON(dst, s.keys, "")
		dst = append(dst, `,"values":`...)
		dst = appendSchemaJSON(dst, s.values, "")
	}
	if s.optional {
		dst = append(dst, `,"optional":true`...)
	} else {
		dst = append(dst, `,"optional":false`...)
	}
	if s.name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendJSONString(dst, s.name)
	}
	if s.version != 0 {
		dst = append(dst, `,"version":`...)
		dst = strconv.AppendInt(dst, int64(s.version), 10)
	}
	if s.doc != "" {
		dst = append(dst, `,"doc":`...)
		dst = appendJSONString(dst, s.doc)
	}
	if len(s.params) > 0 {
		dst = append(dst, `,"parameters":{`...)
		for i, p := range s.params {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, p[0])
			dst = append(dst, ':')
			dst = appendJSONString(dst, p[1])
		}
		dst = append(dst, '}')
	}
	if s.dflt != nil {
		dst = append(dst, `,"default":`...)
		dst = append(dst, s.dflt...)
	}
	if field != "" {
		dst = append(dst, `,"field":`...)
		dst = appendJSONString(dst, field)
	}
	return append(dst, '}')
}

// The envelope's fixed parts. Sources (debezium/debezium):
//   - debezium-core/.../schema/SchemaFactory.java: sourceInfoSchemaBuilder()
//     (version 1; version, connector, name, ts_ms, snapshot, db, sequence,
//     ts_us, ts_ns), snapshotRecordSchema() (io.debezium.data.Enum v1, default
//     "false", optional), transactionBlockSchema() (event.block v1),
//     datatypeEnvelopeSchema() (before/after/source via withRecord/withSource,
//     then build() adds op, ts_ms, ts_us, ts_ns and finally transaction).
//   - debezium-connector-postgres/.../PostgresSourceInfoStructMaker.java:
//     name io.debezium.connector.postgresql.Source, then schema, table, txId,
//     lsn, xmin.
//   - SnapshotRecord enum order (TRUE, FIRST, FIRST_IN_DATA_COLLECTION,
//     LAST_IN_DATA_COLLECTION, LAST, FALSE, INCREMENTAL) lower-cased.
var (
	strReq    = &connectSchema{typ: "string"}
	strOpt    = &connectSchema{typ: "string", optional: true}
	int64Req  = &connectSchema{typ: "int64"}
	int64Opt  = &connectSchema{typ: "int64", optional: true}
	snapshotS = &connectSchema{
		typ: "string", optional: true, name: "io.debezium.data.Enum", version: 1,
		params: [][2]string{{"allowed", "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"}},
		dflt:   []byte(`"false"`),
	}
	sourceSchema = &connectSchema{
		typ: "struct", name: "io.debezium.connector.postgresql.Source", version: 1,
		fields: []connectField{
			{"version", strReq}, {"connector", strReq}, {"name", strReq},
			{"ts_ms", int64Req}, {"snapshot", snapshotS}, {"db", strReq},
			{"sequence", strOpt}, {"ts_us", int64Opt}, {"ts_ns", int64Opt},
			{"schema", strReq}, {"table", strReq},
			{"txId", int64Opt}, {"lsn", int64Opt}, {"xmin", int64Opt},
			{"origin", strOpt}, {"origin_lsn", int64Opt},
		},
	}
	transactionSchema = &connectSchema{
		typ: "struct", optional: true, name: "event.block", version: 1,
		fields: []connectField{
			{"id", strReq}, {"total_order", int64Req}, {"data_collection_order", int64Req},
		},
	}
)

// envelopeVersion is the version of the <prefix>.<schema>.<table>.Envelope
// schema (io.debezium.data.Envelope.SCHEMA_VERSION in Debezium 3.x; 1 in 2.x).
const envelopeVersion = 2
