package event

import (
	"fmt"
)

// AppendKeyHeader appends the key of row as Debezium's __debezium.oldkey and
// __debezium.newkey headers carry it. Kafka Connect writes headers with its
// SimpleHeaderConverter (Values.convertToString), not with the JsonConverter:
// the key struct's fields without the schema part, strings with only '\' and
// '"' escaped, decimals as BigDecimal.toString() rather than base64, floats as
// Java's toString (NaN unquoted), bytes as base64. For a key of ints this is
// the key's payload, e.g. {"id":3}. ok=false when the table has no key.
func (e *Encoder) AppendKeyHeader(dst []byte, row []Datum) (out []byte, ok bool, err error) {
	if len(e.key) == 0 {
		return dst, false, nil
	}
	if len(row) != len(e.cols) {
		return dst, false, fmt.Errorf("%s.%s: row has %d columns, table has %d", e.table.Schema, e.table.Name, len(row), len(e.cols))
	}
	start := len(dst)
	dst = append(dst, '{')
	for i, k := range e.key {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendValuesString(dst, []byte(e.fieldNames[k]))
		dst = append(dst, ':')
		if dst, err = e.appendHeaderDatum(dst, k, row[k]); err != nil {
			return dst[:start], false, err
		}
	}
	return append(dst, '}'), true, nil
}

func (e *Encoder) appendHeaderDatum(dst []byte, i int, d Datum) ([]byte, error) {
	cd := e.cols[i]
	if d.Kind != DatumText {
		// null, default or placeholder: as in the payload
		return e.appendDatum(dst, i, d)
	}
	switch cd.kind {
	case kString, kUnknownText:
		return appendValuesString(dst, d.Text), nil
	case kFloat32, kFloat64:
		f, err := parseFloat(d.Text, 64)
		if err != nil {
			return dst, e.valueError(i, d.Text, err)
		}
		bits := 64
		if cd.kind == kFloat32 {
			bits = 32
		}
		v := appendJavaFloat(nil, f, bits)
		if len(v) > 0 && v[0] == '"' {
			v = v[1 : len(v)-1] // NaN, Infinity: unquoted
		}
		return append(dst, v...), nil
	case kDecimal:
		if numericSpecial(d.Text) != "" {
			return append(dst, "null"...), nil
		}
		dec, err := parseNumeric(d.Text, nil)
		if err != nil {
			return dst, e.valueError(i, d.Text, err)
		}
		dec, ok := rescale(dec, cd.scale, nil)
		if !ok {
			return dst, e.valueError(i, d.Text, fmt.Errorf("more fraction digits than the column scale"))
		}
		return appendJavaBigDecimalString(dst, dec), nil
	}
	// everything else (ints, booleans, bytes as base64, logical numbers) is
	// written as in the payload
	out, err := cd.appendValue(dst, d.Text, &e.s)
	if err != nil {
		return dst, e.valueError(i, d.Text, err)
	}
	return out, nil
}

// appendValuesString writes a string as Kafka's Values.append does for an
// embedded string: in double quotes, with '\' and '"' backslash-escaped and
// nothing else.
func appendValuesString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		if c == '\\' || c == '"' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// AppendStringList appends a list of strings as Kafka Connect's SimpleHeaderConverter writes a
// List<String> header (Values.convertToString): ["a","b"], with '\' and '"' escaped.
func AppendStringList(dst []byte, list []string) []byte {
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendValuesString(dst, []byte(s))
	}
	return append(dst, ']')
}
