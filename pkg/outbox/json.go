package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/pgcdc/pgcdc/pkg/event"
)

// JSON documents as Debezium's JsonSchemaData sees them (debezium-connect-plugins,
// io.debezium.transforms.outbox.JsonSchemaData, 3.6.1): a Jackson tree (ObjectMapper.readTree with
// default features) whose Kafka Connect schema is inferred from the values, then written by
// Kafka Connect's JsonConverter. The rules reproduced here:
//
//   - strings → optional string; booleans → optional boolean; integers that fit in 32 bits →
//     optional int32, in 64 bits → optional int64, larger ones and every number with a fraction
//     or exponent → optional float64 ("double"; written as Java's Double.toString, 100.0 for 1e2);
//   - objects → optional struct named after the path of the field ("payload", "payload.items"),
//     fields in document order; a null field is left out of the schema (and so of the value), or,
//     with nulls kept (table.json.payload.null.behavior=optional_bytes, fields.null.include=true),
//     is an optional bytes field holding null; an empty array is left out too;
//   - arrays → optional array of the first non-null element's schema; all elements must be of one
//     JSON type (and numbers of one Connect type); objects' schemas are merged, field by field,
//     into a required struct when they differ.
//
// Integers beyond 64 bits, mixed arrays and values that do not fit the merged schema make Debezium
// fail with a DataException; here they are errors.

type jkind uint8

const (
	jNull jkind = iota
	jString
	jBool
	jInt32
	jInt64
	jBigInt
	jDouble
	jArray
	jObject
)

// jnode is one node of a parsed JSON document.
type jnode struct {
	kind  jkind
	str   string // jString; the literal of numbers
	b     bool
	f     float64
	keys  []string // jObject, document order (a repeated key keeps its first place, its last value)
	vals  []*jnode // jObject values, jArray elements
	index map[string]int
}

func (n *jnode) get(key string) (*jnode, bool) {
	if n.kind != jObject {
		return nil, false
	}
	i, ok := n.index[key]
	if !ok {
		return nil, false
	}
	return n.vals[i], true
}

var errNotJSON = errors.New("not a JSON object or array")

// parseJSON parses a document that starts with '{' or '[' (what Debezium accepts: "Unable to
// parse payload starting with ..." otherwise).
func parseJSON(s []byte) (*jnode, error) {
	if len(s) == 0 || (s[0] != '{' && s[0] != '[') {
		return nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(s))
	dec.UseNumber()
	n, err := parseNode(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON document")
	}
	return n, nil
}

const maxDepth = 1000 // Jackson's default nesting limit (StreamReadConstraints)

func parseNode(dec *json.Decoder, depth int) (*jnode, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &jnode{kind: jObject, index: map[string]int{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := parseNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if i, dup := n.index[k]; dup {
					n.vals[i] = v
					continue
				}
				n.index[k] = len(n.keys)
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		case '[':
			n := &jnode{kind: jArray}
			for dec.More() {
				v, err := parseNode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &jnode{kind: jString, str: t}, nil
	case bool:
		return &jnode{kind: jBool, b: t}, nil
	case nil:
		return &jnode{kind: jNull}, nil
	case json.Number:
		return numberNode(string(t)), nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

// numberNode classifies a number literal as Jackson's parser does: an integer literal is an
// IntNode, LongNode or BigIntegerNode by size; anything with a fraction or exponent a DoubleNode.
func numberNode(lit string) *jnode {
	if !strings.ContainsAny(lit, ".eE") {
		if v, err := strconv.ParseInt(lit, 10, 64); err == nil {
			if v >= math.MinInt32 && v <= math.MaxInt32 {
				return &jnode{kind: jInt32, str: strconv.FormatInt(v, 10)}
			}
			return &jnode{kind: jInt64, str: strconv.FormatInt(v, 10)}
		}
		return &jnode{kind: jBigInt, str: lit}
	}
	f, _ := strconv.ParseFloat(lit, 64) // out of range: ±Inf, as Double.parseDouble
	return &jnode{kind: jDouble, str: lit, f: f}
}

// inferrer builds Connect schemas from JSON as JsonSchemaData does.
type inferrer struct {
	keepNulls bool // null fields as optional bytes (optional_bytes / fields.null.include)
}

// schema returns the schema of n (nil: the field is left out), key naming structs.
func (in inferrer) schema(key string, named bool, n *jnode) (*event.Schema, error) {
	switch n.kind {
	case jString:
		return &event.Schema{Type: "string", Optional: true}, nil
	case jBool:
		return &event.Schema{Type: "boolean", Optional: true}, nil
	case jInt32:
		return &event.Schema{Type: "int32", Optional: true}, nil
	case jInt64:
		return &event.Schema{Type: "int64", Optional: true}, nil
	case jBigInt, jDouble:
		return &event.Schema{Type: "double", Optional: true}, nil
	case jArray:
		if len(n.vals) == 0 {
			return nil, nil
		}
		items, err := in.arrayItems(key, named, n)
		if err != nil {
			return nil, err
		}
		return &event.Schema{Type: "array", Optional: true, Items: items}, nil
	case jObject:
		s := &event.Schema{Type: "struct", Optional: true}
		if named {
			s.Name = key
		}
		for i, k := range n.keys {
			fk := k
			if named && key != "" {
				fk = key + "." + k
			}
			fs, err := in.schema(fk, true, n.vals[i])
			if err != nil {
				return nil, err
			}
			if fs != nil {
				s.Fields = append(s.Fields, event.SchemaField{Name: k, Schema: fs})
			}
		}
		return s, nil
	case jNull:
		if in.keepNulls {
			return &event.Schema{Type: "bytes", Optional: true}, nil
		}
		return nil, nil
	}
	return nil, nil
}

// arrayItems is JsonSchemaData.toConnectSchemaWithCycles.
func (in inferrer) arrayItems(key string, named bool, n *jnode) (*event.Schema, error) {
	var sample *jnode
	var sampleSchema *event.Schema
	for _, el := range n.vals {
		if el.kind == jNull {
			continue
		}
		if sample == nil {
			sample = el
		}
		if jsonType(el) != jsonType(sample) {
			return nil, fmt.Errorf("array is not homogeneous (%s and %s elements)", jsonType(sample), jsonType(el))
		}
		if jsonType(el) == "number" {
			if sampleSchema == nil {
				sampleSchema, _ = in.schema("", false, sample)
			}
			es, _ := in.schema("", false, el)
			if es.Type != sampleSchema.Type {
				return nil, fmt.Errorf("array is not homogeneous (%s and %s numbers)", sampleSchema.Type, es.Type)
			}
		}
	}
	if sample != nil && sample.kind == jObject {
		// Each distinct element schema, merged. Debezium collects them in a HashSet, whose order
		// follows hash codes of Java enum identities (it differs from run to run); here it is
		// the order of first appearance.
		var distinct []*event.Schema
		for _, el := range n.vals {
			if el.kind != jObject {
				continue
			}
			s, err := in.schema(key, named, el)
			if err != nil {
				return nil, err
			}
			dup := false
			for _, d := range distinct {
				if schemaEqual(d, s) {
					dup = true
					break
				}
			}
			if !dup {
				distinct = append(distinct, s)
			}
		}
		merged := distinct[0]
		for _, s := range distinct[1:] {
			merged = mergeSchema(merged, s)
		}
		return merged, nil
	}
	if sample == nil {
		return nil, errors.New("array has unrecognized member schema (only nulls)")
	}
	s, err := in.schema("", false, sample)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("array has unrecognized member schema")
	}
	return s, nil
}

func jsonType(n *jnode) string {
	switch n.kind {
	case jString:
		return "string"
	case jBool:
		return "boolean"
	case jInt32, jInt64, jBigInt, jDouble:
		return "number"
	case jArray:
		return "array"
	case jObject:
		return "object"
	}
	return "null"
}

// mergeSchema is JsonSchemaData.mergeSchema: left's fields, then right's new ones; a bytes field
// (a null) gives way to a typed one. SchemaUtil.copySchemaBasics does not copy optional: the
// merged struct is required.
func mergeSchema(left, right *event.Schema) *event.Schema {
	out := &event.Schema{Type: left.Type, Name: left.Name, Version: left.Version}
	out.Fields = append(out.Fields, left.Fields...)
	for _, f := range right.Fields {
		found := false
		for i, g := range out.Fields {
			if g.Name != f.Name {
				continue
			}
			found = true
			if !schemaEqual(g.Schema, f.Schema) && g.Schema.Type == "bytes" && f.Schema.Type != "bytes" {
				out.Fields[i] = f
			}
			break
		}
		if !found {
			out.Fields = append(out.Fields, f)
		}
	}
	return out
}

func schemaEqual(a, b *event.Schema) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Type != b.Type || a.Optional != b.Optional || a.Name != b.Name || a.Version != b.Version || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if a.Fields[i].Name != b.Fields[i].Name || !schemaEqual(a.Fields[i].Schema, b.Fields[i].Schema) {
			return false
		}
	}
	return schemaEqual(a.Items, b.Items)
}

// appendValue writes n as the Connect value of schema s (JsonSchemaData.toConnectData, then
// JsonConverter), failing where Kafka Connect's validation would.
func appendValue(dst []byte, n *jnode, s *event.Schema, path string) ([]byte, error) {
	if n == nil || n.kind == jNull {
		if !s.Optional {
			return dst, fmt.Errorf("%s: null for a required %s", path, s.Type)
		}
		return append(dst, "null"...), nil
	}
	mismatch := func() error {
		return fmt.Errorf("%s: a JSON %s does not fit the inferred schema (%s)", path, jsonType(n), s.Type)
	}
	switch s.Type {
	case "struct":
		if n.kind != jObject {
			return dst, mismatch()
		}
		dst = append(dst, '{')
		for i, f := range s.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = event.AppendJSONString(dst, f.Name)
			dst = append(dst, ':')
			v, _ := n.get(f.Name)
			var err error
			if dst, err = appendValue(dst, v, f.Schema, path+"."+f.Name); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case "array":
		if n.kind != jArray {
			return dst, mismatch()
		}
		dst = append(dst, '[')
		for i, el := range n.vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, el, s.Items, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case "string":
		if n.kind != jString {
			return dst, mismatch()
		}
		return event.AppendJSONString(dst, n.str), nil
	case "boolean":
		if n.kind != jBool {
			return dst, mismatch()
		}
		return strconv.AppendBool(dst, n.b), nil
	case "int32", "int64":
		if (s.Type == "int32") != (n.kind == jInt32) || (n.kind != jInt32 && n.kind != jInt64) {
			return dst, mismatch()
		}
		return append(dst, n.str...), nil
	case "double":
		if n.kind == jBigInt {
			return dst, fmt.Errorf("%s: integer %s does not fit in 64 bits", path, n.str)
		}
		if n.kind != jDouble {
			return dst, mismatch()
		}
		return event.AppendJavaDouble(dst, n.f), nil
	}
	return dst, mismatch() // bytes: only ever null
}

// appendHeader writes n as SimpleHeaderConverter writes a header of its inferred schema
// (Values.convertToString): a string without quotes, numbers and booleans as text; inside
// structs and arrays strings are quoted with '\' and '"' escaped. null=true for a null header.
func appendHeader(dst []byte, n *jnode, s *event.Schema, embedded bool) (out []byte, null bool) {
	if n == nil || n.kind == jNull || s == nil {
		if embedded {
			return append(dst, "null"...), false
		}
		return dst, true
	}
	switch n.kind {
	case jString:
		if !embedded {
			return append(dst, n.str...), false
		}
		dst = append(dst, '"')
		for i := 0; i < len(n.str); i++ {
			if c := n.str[i]; c == '\\' || c == '"' {
				dst = append(dst, '\\')
			}
			dst = append(dst, n.str[i])
		}
		return append(dst, '"'), false
	case jBool:
		return strconv.AppendBool(dst, n.b), false
	case jInt32, jInt64, jBigInt:
		return append(dst, n.str...), false
	case jDouble:
		v := event.AppendJavaDouble(nil, n.f)
		if v[0] == '"' {
			v = v[1 : len(v)-1] // NaN, Infinity: Double.toString, unquoted
		}
		return append(dst, v...), false
	case jArray:
		dst = append(dst, '[')
		for i, el := range n.vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst, _ = appendHeader(dst, el, s.Items, true)
		}
		return append(dst, ']'), false
	case jObject:
		dst = append(dst, '{')
		for i, f := range s.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst, _ = appendHeader(dst, &jnode{kind: jString, str: f.Name}, &event.Schema{Type: "string"}, true)
			dst = append(dst, ':')
			v, _ := n.get(f.Name)
			dst, _ = appendHeader(dst, v, f.Schema, true)
		}
		return append(dst, '}'), false
	}
	return dst, true
}

// javaTrimEmpty reports whether Java's String.trim() of s is empty (every char <= ' ').
func javaTrimEmpty(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > ' ' {
			return false
		}
	}
	return true
}
