package event

import (
	"fmt"
	"strconv"
	"strings"
)

// kind is the conversion a column (or array element) needs.
type kind uint8

const (
	kUnknownText kind = iota // unmapped type passed through as string (UnknownTypesAsText)
	kBool
	kInt16
	kInt32
	kInt64
	kFloat32
	kFloat64
	kString      // text-like: value is the text itself
	kDecimal     // numeric(p,s) / money precise: Decimal bytes
	kVarDecimal  // unconstrained numeric precise: VariableScaleDecimal struct
	kDecDouble   // numeric/money in double mode
	kDecString   // numeric/money in string mode
	kBytes       // bytea
	kDate        // int32 days
	kIsoDate     // IsoDate string
	kTime        // time of day as a number of unit (ms: int32; µs, ns: int64)
	kIsoTime     // IsoTime string
	kTimestamp   // since the epoch in unit (ms, µs, ns)
	kIsoTs       // IsoTimestamp string
	kTsTZ        // ZonedTimestamp string
	kTimeTZ      // ZonedTime string
	kIntervalNum // MicroDuration int64
	kIntervalStr // Interval ISO string
	kBitBool     // bit(1)/varbit(1) => boolean
	kBits        // bit(n>1)/varbit(n>1)/varbit => io.debezium.data.Bits bytes
	kHstoreJSON  // hstore => JSON object text (io.debezium.data.Json)
	kHstoreMap   // hstore => map of strings
	kPoint       // point => io.debezium.data.geometry.Point struct
	kGeometry    // PostGIS geometry/geography => io.debezium.data.geometry.Geometry/Geography struct
	kVector      // pgvector vector => io.debezium.data.DoubleVector (array of float64)
	kHalfVector  // pgvector halfvec => io.debezium.data.FloatVector (array of float32)
	kSparseVec   // pgvector sparsevec => io.debezium.data.SparseDoubleVector struct
	kArray
)

// Time units of kTime and kTimestamp.
const (
	unitMillis = 1
	unitMicros = 2
	unitNanos  = 3
)

// codec converts values of one column (or array element) and knows its schema.
type codec struct {
	kind      kind
	schema    *connectSchema // optional flag as for the column
	scale     int            // kDecimal/kDecDouble/kDecString: target scale (-1 => keep)
	money     bool           // value is PostgreSQL money text
	fracWidth int            // kTsTZ: fraction digits (0 => ISO_OFFSET_DATE_TIME variable form)
	unit      int            // kTime, kTimestamp: unitMillis, unitMicros, unitNanos
	binMode   string         // kBytes: "bytes", "base64", "base64-url-safe", "hex"
	elem      *codec         // kArray
	delim     byte           // kArray: the element type's delimiter (typdelim): ',' or ':' for PostGIS
	inArray   bool           // an array element (Debezium converts those through pgjdbc's array objects)
	jdbcDate  bool           // kDate/kIsoDate: the value went through java.sql.Date (array elements, snapshots)
	ph        []byte         // JSON of an unchanged TOAST value (nil: null), see placeholder
}

// Schema constructors (Debezium logical types; versions from
// debezium-core io.debezium.time.* / io.debezium.data.* builders, and
// Kafka's org.apache.kafka.connect.data.Decimal/Date/Time/Timestamp).
func sch(typ string) *connectSchema { return &connectSchema{typ: typ} }
func named(typ, name string) *connectSchema {
	return &connectSchema{typ: typ, name: name, version: 1}
}

// timePrecision: pgjdbc TypeInfoCache.getScale returns 6 for time/timestamp
// types without a typmod, else the typmod (Debezium ColumnMetaData uses it).
func timePrecision(typmod int32) int {
	if typmod < 0 {
		return 6
	}
	return int(typmod)
}

func (e *Encoder) codecFor(c Column) (*codec, error) {
	cd, err := e.codecForType(c)
	if err != nil || cd == nil {
		if err == nil {
			cd, err = e.unknown(c)
		}
		if err != nil {
			return nil, err
		}
	}
	cd.ph = placeholder(c.TypeName, cd, e.ph, e.opts.BinaryHandling)
	return cd, nil
}

// codecForType returns nil (no error) for a type Debezium has no mapping for.
func (e *Encoder) codecForType(c Column) (*codec, error) {
	tn := c.TypeName
	if len(c.EnumValues) > 0 {
		enum := &connectSchema{typ: "string", name: "io.debezium.data.Enum", version: 1,
			params: [][2]string{{"allowed", strings.Join(c.EnumValues, ",")}}}
		if strings.HasPrefix(tn, "_") {
			// Debezium's enum array element schema is required (not optional), unlike other arrays'
			el := &codec{kind: kString, schema: enum, inArray: true}
			return &codec{kind: kArray, elem: el, delim: ',', schema: &connectSchema{typ: "array", items: el.schema}}, nil
		}
		return &codec{kind: kString, schema: enum}, nil
	}
	if !strings.HasPrefix(tn, "_") {
		return e.scalarCodec(tn, c.TypeMod)
	}
	et := tn[1:]
	required, ok := arrayElements[et]
	if !ok {
		return nil, nil
	}
	el, err := e.scalarCodec(et, c.TypeMod)
	if err != nil || el == nil {
		return el, err
	}
	el.schema = el.schema.withOptional(!required)
	el.inArray = true
	if el.kind == kDate || el.kind == kIsoDate {
		el.jdbcDate = true
	}
	delim := byte(',')
	if et == "geometry" || et == "geography" {
		delim = ':' // PostGIS types' typdelim
	}
	return &codec{kind: kArray, elem: el, delim: delim, schema: &connectSchema{typ: "array", items: el.schema}}, nil
}

func (e *Encoder) unknown(c Column) (*codec, error) {
	if e.opts.UnknownTypesAsText {
		return &codec{kind: kUnknownText, schema: sch("string")}, nil
	}
	return nil, fmt.Errorf("%s.%s column %q: type %q (oid %d) has no Debezium mapping: set events.unknown_types: text (PGCDC_EVENTS_UNKNOWN_TYPES=text) to send its PostgreSQL text as a string",
		e.table.Schema, e.table.Name, c.Name, c.TypeName, c.TypeOID)
}

// arrayElements are the element types of the arrays Debezium maps
// (PostgresValueConverter.schemaBuilder), with whether the element schema is required: the
// explicit array cases and the PostGIS, citext, hstore and ltree arrays have optional elements;
// arrays of other types with a mapping (the default branch, arrayElementSchema) have required
// ones. Arrays of money, name, interval, varbit, xml and point have no schema in Debezium (the
// column is dropped, whatever include.unknown.datatypes says): pgcdc treats them as unknown types.
var arrayElements = map[string]bool{
	"int2": false, "int4": false, "int8": false, "oid": false,
	"char": false, "varchar": false, "text": false, "bpchar": false,
	"inet": false, "cidr": false, "macaddr": false, "macaddr8": false,
	"tsrange": false, "tstzrange": false, "daterange": false, "int4range": false, "numrange": false, "int8range": false,
	"numeric": false, "float4": false, "float8": false, "bool": false, "date": false,
	"uuid": false, "json": false, "jsonb": false, "time": false, "timetz": false,
	"timestamp": false, "timestamptz": false, "bytea": false,
	"geometry": false, "geography": false, "citext": false, "hstore": false, "ltree": false,
	"tsvector": true, "isbn": true,
}

// scalarCodec returns nil (no error) for a type it does not know.
func (e *Encoder) scalarCodec(tn string, typmod int32) (*codec, error) {
	o := &e.opts
	switch tn {
	case "bool":
		return &codec{kind: kBool, schema: sch("boolean")}, nil
	case "int2":
		return &codec{kind: kInt16, schema: sch("int16")}, nil
	case "int4":
		return &codec{kind: kInt32, schema: sch("int32")}, nil
	case "int8", "oid":
		return &codec{kind: kInt64, schema: sch("int64")}, nil
	case "float4":
		return &codec{kind: kFloat32, schema: sch("float")}, nil // JsonConverter's name for FLOAT32
	case "float8":
		return &codec{kind: kFloat64, schema: sch("double")}, nil // JsonConverter's name for FLOAT64
	case "text", "varchar", "bpchar", "name", "char", "citext", "inet", "cidr", "macaddr", "macaddr8",
		"int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "isbn":
		return &codec{kind: kString, schema: sch("string")}, nil
	case "uuid":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Uuid")}, nil
	case "json", "jsonb":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Json")}, nil
	case "xml":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Xml")}, nil
	case "ltree":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Ltree")}, nil
	case "tsvector":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Tsvector")}, nil
	case "bytea":
		switch o.BinaryHandling {
		case "", "bytes":
			return &codec{kind: kBytes, binMode: "bytes", schema: sch("bytes")}, nil
		case "base64", "base64-url-safe", "hex":
			return &codec{kind: kBytes, binMode: o.BinaryHandling, schema: sch("string")}, nil
		}
		return nil, fmt.Errorf("unknown binary handling mode %q", o.BinaryHandling)
	case "numeric":
		p, s := -1, -1
		if typmod >= 4 {
			p = int((typmod - 4) >> 16 & 0xFFFF)
			s = int((typmod - 4) & 0xFFFF)
			if s > 0x7FFF { // PG15+ negative scale
				s -= 0x10000
			}
		}
		return decimalCodec(o.DecimalHandling, p, s, false)
	case "money":
		return decimalCodec(o.DecimalHandling, 0, 2, true)
	case "date":
		switch o.TimePrecision {
		case "connect":
			return &codec{kind: kDate, jdbcDate: o.Snapshot, schema: named("int32", "org.apache.kafka.connect.data.Date")}, nil
		case "isostring":
			return &codec{kind: kIsoDate, jdbcDate: o.Snapshot, schema: named("string", "io.debezium.time.IsoDate")}, nil
		}
		return &codec{kind: kDate, jdbcDate: o.Snapshot, schema: named("int32", "io.debezium.time.Date")}, nil
	case "time":
		return timeCodec(o.TimePrecision, timePrecision(typmod)), nil
	case "timestamp":
		return timestampCodec(o.TimePrecision, timePrecision(typmod)), nil
	case "timestamptz":
		return &codec{kind: kTsTZ, fracWidth: timePrecision(typmod), schema: named("string", "io.debezium.time.ZonedTimestamp")}, nil
	case "timetz":
		return &codec{kind: kTimeTZ, schema: named("string", "io.debezium.time.ZonedTime")}, nil
	case "interval":
		if o.IntervalHandling == "string" {
			return &codec{kind: kIntervalStr, schema: named("string", "io.debezium.time.Interval")}, nil
		}
		return &codec{kind: kIntervalNum, schema: named("int64", "io.debezium.time.MicroDuration")}, nil
	case "bit", "varbit":
		// PostgresValueConverter: column.length() > 1 ? Bits.builder(length) : SchemaBuilder.bool();
		// an unbounded varbit has pgjdbc's length Integer.MAX_VALUE.
		n := int64(typmod)
		switch {
		case typmod == 1 || (tn == "bit" && typmod < 0):
			return &codec{kind: kBitBool, schema: sch("boolean")}, nil
		case typmod < 0:
			n = 2147483647
		}
		return &codec{kind: kBits, schema: &connectSchema{
			typ: "bytes", name: "io.debezium.data.Bits", version: 1,
			params: [][2]string{{"length", strconv.FormatInt(n, 10)}}}}, nil
	case "hstore":
		switch o.HstoreHandling {
		case "", "json":
			return &codec{kind: kHstoreJSON, schema: named("string", "io.debezium.data.Json")}, nil
		case "map":
			return &codec{kind: kHstoreMap, schema: &connectSchema{typ: "map", keys: sch("string"), values: strOpt}}, nil
		}
		return nil, fmt.Errorf("unknown hstore handling mode %q", o.HstoreHandling)
	case "point":
		return &codec{kind: kPoint, schema: pointSchema}, nil
	case "geometry":
		return &codec{kind: kGeometry, schema: geometrySchema}, nil
	case "geography":
		return &codec{kind: kGeometry, schema: geographySchema}, nil
	case "vector":
		return &codec{kind: kVector, schema: &connectSchema{typ: "array", items: sch("double"), name: "io.debezium.data.DoubleVector", version: 1}}, nil
	case "halfvec":
		return &codec{kind: kHalfVector, schema: &connectSchema{typ: "array", items: sch("float"), name: "io.debezium.data.FloatVector", version: 1}}, nil
	case "sparsevec":
		return &codec{kind: kSparseVec, schema: sparseVectorSchema}, nil
	}
	return nil, nil
}

// Struct schemas of the geometric types: io.debezium.data.geometry.Point/Geometry/Geography
// builders. Geometry's builder is optional() itself, so its fields are optional even on a NOT
// NULL column; Point and Geography are not.
var (
	pointSchema = &connectSchema{typ: "struct", name: "io.debezium.data.geometry.Point", version: 1, doc: "Geometry (POINT)",
		fields: []connectField{{"x", sch("double")}, {"y", sch("double")}, {"wkb", bytesOpt}, {"srid", int32Opt}}}
	geometrySchema = &connectSchema{typ: "struct", optional: true, name: "io.debezium.data.geometry.Geometry", version: 1, doc: "Geometry",
		fields: []connectField{{"wkb", sch("bytes")}, {"srid", int32Opt}}}
	geographySchema = &connectSchema{typ: "struct", name: "io.debezium.data.geometry.Geography", version: 1, doc: "Geography",
		fields: []connectField{{"wkb", sch("bytes")}, {"srid", int32Opt}}}
	sparseVectorSchema = &connectSchema{typ: "struct", name: "io.debezium.data.SparseDoubleVector", version: 1, doc: "Sparse double vector",
		fields: []connectField{{"dimensions", sch("int16")}, {"vector", &connectSchema{typ: "map", keys: sch("int16"), values: sch("double")}}}}
	int32Opt = &connectSchema{typ: "int32", optional: true}
)

// timeCodec: TemporalPrecisionMode.getTimeBuilder(precision) and JdbcValueConverters.convertTime.
func timeCodec(mode string, p int) *codec {
	switch mode {
	case "connect":
		return &codec{kind: kTime, unit: unitMillis, schema: named("int32", "org.apache.kafka.connect.data.Time")}
	case "isostring":
		return &codec{kind: kIsoTime, schema: named("string", "io.debezium.time.IsoTime")}
	case "adaptive_time_microseconds", "microseconds":
		return &codec{kind: kTime, unit: unitMicros, schema: named("int64", "io.debezium.time.MicroTime")}
	case "nanoseconds":
		return &codec{kind: kTime, unit: unitNanos, schema: named("int64", "io.debezium.time.NanoTime")}
	}
	switch {
	case p <= 3:
		return &codec{kind: kTime, unit: unitMillis, schema: named("int32", "io.debezium.time.Time")}
	case p <= 6:
		return &codec{kind: kTime, unit: unitMicros, schema: named("int64", "io.debezium.time.MicroTime")}
	}
	return &codec{kind: kTime, unit: unitNanos, schema: named("int64", "io.debezium.time.NanoTime")}
}

// timestampCodec: TemporalPrecisionMode.getTimestampBuilder(precision) and
// JdbcValueConverters.convertTimestamp.
func timestampCodec(mode string, p int) *codec {
	switch mode {
	case "connect":
		return &codec{kind: kTimestamp, unit: unitMillis, schema: named("int64", "org.apache.kafka.connect.data.Timestamp")}
	case "isostring":
		return &codec{kind: kIsoTs, schema: named("string", "io.debezium.time.IsoTimestamp")}
	case "microseconds":
		return &codec{kind: kTimestamp, unit: unitMicros, schema: named("int64", "io.debezium.time.MicroTimestamp")}
	case "nanoseconds":
		return &codec{kind: kTimestamp, unit: unitNanos, schema: named("int64", "io.debezium.time.NanoTimestamp")}
	}
	switch {
	case p <= 3:
		return &codec{kind: kTimestamp, unit: unitMillis, schema: named("int64", "io.debezium.time.Timestamp")}
	case p <= 6:
		return &codec{kind: kTimestamp, unit: unitMicros, schema: named("int64", "io.debezium.time.MicroTimestamp")}
	}
	return &codec{kind: kTimestamp, unit: unitNanos, schema: named("int64", "io.debezium.time.NanoTimestamp")}
}

// decimalCodec: numeric(p,s) => Decimal(scale s, precision p) with
// SpecialValueDecimal.builder; unconstrained numeric (p<=0, s<=0) =>
// VariableScaleDecimal in precise mode (PostgresValueConverter.numericSchema,
// isVariableScaleDecimal); money => Decimal.builder(2) (no precision param).
func decimalCodec(mode string, p, s int, money bool) (*codec, error) {
	variable := !money && p <= 0 && s <= 0
	switch mode {
	case "", "precise":
		if variable {
			return &codec{kind: kVarDecimal, scale: -1, schema: &connectSchema{
				typ: "struct", name: "io.debezium.data.VariableScaleDecimal", version: 1, doc: "Variable scaled decimal",
				fields: []connectField{{"scale", sch("int32")}, {"value", sch("bytes")}},
			}}, nil
		}
		if s < 0 {
			s = 0
		}
		params := [][2]string{{"scale", strconv.Itoa(s)}}
		if p > 0 {
			params = append(params, [2]string{"connect.decimal.precision", strconv.Itoa(p)})
		}
		return &codec{kind: kDecimal, scale: s, money: money, schema: &connectSchema{
			typ: "bytes", name: "org.apache.kafka.connect.data.Decimal", version: 1, params: params}}, nil
	case "double":
		return &codec{kind: kDecDouble, scale: -1, money: money, schema: sch("double")}, nil
	case "string":
		sc := -1
		if !variable {
			sc = max(s, 0)
		}
		return &codec{kind: kDecString, scale: sc, money: money, schema: sch("string")}, nil
	}
	return nil, fmt.Errorf("unknown decimal handling mode %q", mode)
}
