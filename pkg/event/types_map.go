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
	kTimeMillis  // int32 ms of day
	kTimeMicros  // int64 µs of day
	kTsMillis    // int64 ms since epoch
	kTsMicros    // int64 µs since epoch
	kTsTZ        // ZonedTimestamp string
	kTimeTZ      // ZonedTime string
	kIntervalNum // MicroDuration int64
	kIntervalStr // Interval ISO string
	kBitBool     // bit(1)/varbit(1) => boolean
	kBits        // bit(n>1)/varbit(n>1) => io.debezium.data.Bits bytes
	kHstoreJSON  // hstore => JSON object text (io.debezium.data.Json)
	kHstoreMap   // hstore => map of strings
	kArray
)

// codec converts values of one column (or array element) and knows its schema.
type codec struct {
	kind      kind
	schema    *connectSchema // optional flag as for the column
	scale     int            // kDecimal/kDecDouble/kDecString: target scale (-1 => keep)
	money     bool           // value is PostgreSQL money text
	fracWidth int            // kTsTZ: fraction digits (0 => ISO_OFFSET_DATE_TIME variable form)
	binMode   string         // kBytes: "bytes", "base64", "base64-url-safe", "hex"
	elem      *codec         // kArray
	inArray   bool           // an array element (Debezium converts those through pgjdbc's array objects)
	toast     toastKind      // what an unchanged TOAST value becomes
}

type toastKind uint8

const (
	toastNone        toastKind = iota // TOAST impossible: error
	toastString                       // the placeholder string
	toastBytes                        // base64 of the placeholder bytes
	toastStringArray                  // ["placeholder"]
	toastIntArray                     // [bytes of the placeholder as numbers]
)

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
	tn := c.TypeName
	if len(c.EnumValues) > 0 {
		if strings.HasPrefix(tn, "_") {
			// Debezium's enum array element schema is required (not optional), unlike other arrays'
			el := &codec{kind: kString, toast: toastString,
				schema: &connectSchema{typ: "string", name: "io.debezium.data.Enum", version: 1,
					params: [][2]string{{"allowed", strings.Join(c.EnumValues, ",")}}}}
			return &codec{kind: kArray, elem: el, schema: &connectSchema{typ: "array", items: el.schema}, toast: toastStringArray}, nil
		}
		return &codec{kind: kString, toast: toastString,
			schema: &connectSchema{typ: "string", name: "io.debezium.data.Enum", version: 1,
				params: [][2]string{{"allowed", strings.Join(c.EnumValues, ",")}}}}, nil
	}
	if strings.HasPrefix(tn, "_") {
		et := tn[1:]
		if !arrayElemSupported[et] {
			return e.unknown(c)
		}
		el, err := e.scalarCodec(et, c.TypeMod)
		if err != nil || el == nil {
			return e.unknown(c)
		}
		el.schema = el.schema.withOptional(true)
		el.inArray = true
		ar := &codec{kind: kArray, elem: el, schema: &connectSchema{typ: "array", items: el.schema}}
		switch {
		case el.toast == toastString:
			ar.toast = toastStringArray
		case et == "int2" || et == "int4" || et == "int8":
			ar.toast = toastIntArray
		}
		return ar, nil
	}
	cd, err := e.scalarCodec(tn, c.TypeMod)
	if err != nil {
		return nil, err
	}
	if cd == nil {
		return e.unknown(c)
	}
	return cd, nil
}

func (e *Encoder) unknown(c Column) (*codec, error) {
	if e.opts.UnknownTypesAsText {
		return &codec{kind: kUnknownText, schema: sch("string"), toast: toastString}, nil
	}
	return nil, fmt.Errorf("%s.%s column %q: unsupported type %q (oid %d): set unknown types as text to emit it as a string",
		e.table.Schema, e.table.Name, c.Name, c.TypeName, c.TypeOID)
}

// Array element types Debezium maps (PostgresValueConverter.columnSchemaBuilder
// array cases); _money, _name, _interval, _varbit, _xml, _point get no schema
// there (the column is dropped), so pgcdc treats them as unknown.
var arrayElemSupported = map[string]bool{
	"int2": true, "int4": true, "int8": true, "oid": true,
	"char": true, "varchar": true, "text": true, "bpchar": true,
	"inet": true, "cidr": true, "macaddr": true, "macaddr8": true,
	"tsrange": true, "tstzrange": true, "daterange": true, "int4range": true, "numrange": true, "int8range": true,
	"numeric": true, "float4": true, "float8": true, "bool": true, "date": true,
	"uuid": true, "json": true, "jsonb": true, "time": true, "timetz": true,
	"timestamp": true, "timestamptz": true, "bytea": true, "citext": true,
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
		"int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "ltree", "isbn":
		return &codec{kind: kString, schema: sch("string"), toast: toastString}, nil
	case "uuid":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Uuid"), toast: toastString}, nil
	case "json", "jsonb":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Json"), toast: toastString}, nil
	case "xml":
		return &codec{kind: kString, schema: named("string", "io.debezium.data.Xml"), toast: toastString}, nil
	case "bytea":
		switch o.BinaryHandling {
		case "", "bytes":
			return &codec{kind: kBytes, binMode: "bytes", schema: sch("bytes"), toast: toastBytes}, nil
		case "base64", "base64-url-safe", "hex":
			return &codec{kind: kBytes, binMode: o.BinaryHandling, schema: sch("string"), toast: toastString}, nil
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
		if o.TimePrecision == "connect" {
			return &codec{kind: kDate, schema: named("int32", "org.apache.kafka.connect.data.Date")}, nil
		}
		return &codec{kind: kDate, schema: named("int32", "io.debezium.time.Date")}, nil
	case "time":
		p := timePrecision(typmod)
		switch o.TimePrecision {
		case "connect":
			return &codec{kind: kTimeMillis, schema: named("int32", "org.apache.kafka.connect.data.Time")}, nil
		case "adaptive_time_microseconds":
			return &codec{kind: kTimeMicros, schema: named("int64", "io.debezium.time.MicroTime")}, nil
		}
		if p <= 3 {
			return &codec{kind: kTimeMillis, schema: named("int32", "io.debezium.time.Time")}, nil
		}
		return &codec{kind: kTimeMicros, schema: named("int64", "io.debezium.time.MicroTime")}, nil
	case "timestamp":
		p := timePrecision(typmod)
		if o.TimePrecision == "connect" {
			return &codec{kind: kTsMillis, schema: named("int64", "org.apache.kafka.connect.data.Timestamp")}, nil
		}
		if p <= 3 {
			return &codec{kind: kTsMillis, schema: named("int64", "io.debezium.time.Timestamp")}, nil
		}
		return &codec{kind: kTsMicros, schema: named("int64", "io.debezium.time.MicroTimestamp")}, nil
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
		// PostgresValueConverter: column.length() > 1 ? Bits.builder(length) : SchemaBuilder.bool()
		if typmod == 1 || (tn == "bit" && typmod < 0) {
			return &codec{kind: kBitBool, schema: sch("boolean")}, nil
		}
		if typmod < 0 {
			return nil, nil // unbounded varbit: no length for the schema
		}
		return &codec{kind: kBits, scale: int(typmod), toast: toastBytes, schema: &connectSchema{
			typ: "bytes", name: "io.debezium.data.Bits", version: 1,
			params: [][2]string{{"length", strconv.Itoa(int(typmod))}}}}, nil
	case "hstore":
		switch o.HstoreHandling {
		case "", "json":
			return &codec{kind: kHstoreJSON, toast: toastString, schema: named("string", "io.debezium.data.Json")}, nil
		case "map":
			return &codec{kind: kHstoreMap, schema: &connectSchema{typ: "map", keys: sch("string"), values: strOpt}}, nil
		}
		return nil, fmt.Errorf("unknown hstore handling mode %q", o.HstoreHandling)
	}
	return nil, nil
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
		return &codec{kind: kDecString, scale: sc, money: money, schema: sch("string"), toast: toastNone}, nil
	}
	return nil, fmt.Errorf("unknown decimal handling mode %q", mode)
}
