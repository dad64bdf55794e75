package event

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MapperKind is what a column mapper does.
type MapperKind uint8

// The column mappers of Debezium (io.debezium.relational.mapping).
const (
	MaskChars MapperKind = iota + 1 // column.mask.with.N.chars: MaskStrings with N asterisks
	HashV1                          // column.mask.hash.<algorithm>.with.salt.<salt>: MaskStrings hashing (Java-serialized value)
	HashV2                          // column.mask.hash.v2.<algorithm>.with.salt.<salt>: MaskStrings hashing (the value's bytes)
	Truncate                        // column.truncate.to.N.chars: TruncateColumn
)

// Mapper changes a column's values as one of Debezium's column mappers does. The rules followed
// (debezium-connector-common io.debezium.relational.mapping, 3.6.1):
//
//   - The mapper runs on the value Debezium's type converter produced, in the event value only:
//     keys and __debezium.oldkey/newkey headers keep the column's own value.
//   - MaskChars and the hashes change the values of character columns only (text, varchar, char,
//     name, enums and domains over them: JDBC CHAR/VARCHAR), but mark every matched column's schema
//     with the parameter "masked": "true". MaskChars replaces every value, NULL included, by N
//     asterisks. A hash is the lower-case hex digest of salt + the value (HashV1: the value as Java
//     serializes a String; HashV2: its UTF-8 bytes), cut to the column's length when it has one
//     (varchar(n), char(n)); NULL stays NULL.
//   - Truncate applies when the column's length is unknown or greater than N (schema parameter
//     "truncateLength": N): string values are cut to N UTF-16 code units, byte values (bytea in
//     binary.handling.mode bytes) to N bytes; other values are unchanged.
//
// The unchanged-TOAST placeholder is a value like any other: masked, hashed or truncated.
type Mapper struct {
	Kind    MapperKind
	N       int              // MaskChars: the number of asterisks; Truncate: the maximum length
	NewHash func() hash.Hash // HashV1, HashV2
	Salt    []byte           // HashV1, HashV2
}

// colMapper is a Mapper prepared for one column.
type colMapper struct {
	m       *Mapper
	applies bool   // the value is changed (else only the schema parameter)
	mask    []byte // MaskChars: the JSON string
	length  int    // the column's length (pgjdbc precision): hashes are cut to it
	h       hash.Hash
}

// unknownLength is pgjdbc's default unknownLength: the length of text, bytea and other unbounded types.
const unknownLength = math.MaxInt32

// prepareMapper returns the mapper of column c and its value schema sc with the mapper's
// parameter; the mapper is nil when the values stay as they are.
func prepareMapper(c Column, sc *connectSchema) (*colMapper, *connectSchema) {
	m := c.Mapper
	if m == nil {
		return nil, sc
	}
	cm := &colMapper{m: m, length: columnLength(c)}
	param := [2]string{}
	switch m.Kind {
	case MaskChars, HashV1, HashV2:
		param = [2]string{"masked", "true"}
		cm.applies = isCharColumn(c)
		if m.Kind == MaskChars {
			cm.mask = appendJSONString(nil, strings.Repeat("*", m.N))
		} else {
			cm.h = m.NewHash()
		}
	case Truncate:
		if cm.length < 0 || cm.length > m.N {
			param = [2]string{"truncateLength", strconv.Itoa(m.N)}
			cm.applies = true
		}
	}
	if param[0] != "" {
		c := *sc
		c.params = append(append([][2]string(nil), sc.params...), param)
		sc = &c
	}
	if !cm.applies {
		return nil, sc
	}
	return cm, sc
}

// isCharColumn: MaskStrings changes values of JDBC CHAR/VARCHAR columns: pgjdbc maps text,
// varchar, bpchar, name and "char" to them, and Debezium's TypeRegistry maps enums to VARCHAR; a
// domain has its base type's.
func isCharColumn(c Column) bool {
	if len(c.EnumValues) > 0 {
		return !strings.HasPrefix(c.TypeName, "_")
	}
	switch c.TypeName {
	case "text", "varchar", "bpchar", "name", "char":
		return true
	}
	return false
}

// columnLength is Debezium's Column.length() for a PostgreSQL column: pgjdbc's
// TypeInfoCache.getPrecision for the type and typmod (arrays: their element's), its display size
// when that is 0.
func columnLength(c Column) int {
	tn, typmod := strings.TrimPrefix(c.TypeName, "_"), int(c.TypeMod)
	if len(c.EnumValues) > 0 {
		return unknownLength
	}
	frac := func() int { // fraction digits of time types
		switch typmod {
		case -1:
			return 7
		case 0:
			return 0
		case 1:
			return 3
		}
		return typmod + 1
	}
	switch tn {
	case "bool", "char":
		return 1
	case "int2":
		return 5
	case "int4", "oid":
		return 10
	case "int8":
		return 19
	case "float4":
		return 8
	case "float8":
		return 17
	case "numeric":
		if typmod == -1 {
			return 131089 // precision 0: the display size
		}
		return (typmod - 4) >> 16 & 0xFFFF
	case "bpchar", "varchar":
		if typmod == -1 {
			return unknownLength
		}
		return typmod - 4
	case "bit":
		return typmod
	case "varbit":
		if typmod == -1 {
			return unknownLength
		}
		return typmod
	case "date":
		return 13
	case "time":
		return 8 + frac()
	case "timetz":
		return 8 + frac() + 6
	case "timestamp":
		return 22 + frac()
	case "timestamptz":
		return 22 + frac() + 6
	case "interval":
		return 49
	}
	return unknownLength
}

// stringValued reports whether the codec's values are Java Strings in Debezium (what
// TruncateColumn cuts); bytea in bytes mode is a ByteBuffer (cut too, in bytes).
func (c *codec) stringValued() bool {
	switch c.kind {
	case kString, kUnknownText, kDecString, kTsTZ, kTimeTZ, kIntervalStr, kHstoreJSON:
		return true
	case kBytes:
		return c.binMode != "bytes"
	}
	return false
}

// appendMapped appends the mapped value of column i for datum d: the value Debezium's converter
// gives (as appendDatum writes it), changed by the mapper.
func (e *Encoder) appendMapped(dst []byte, i int, d Datum) ([]byte, error) {
	cm, cd, col := e.mappers[i], e.cols[i], &e.table.Columns[i]
	if cm.m.Kind == MaskChars {
		return append(dst, cm.mask...), nil // every value, NULL included
	}
	if (d.Kind == DatumNull || d.Kind == DatumAbsent) && col.Optional {
		// The converter gives null, which stays null (JsonConverter may write the default).
		return e.appendDatum(dst, i, d)
	}
	if cm.m.Kind == HashV1 || cm.m.Kind == HashV2 {
		s := e.javaString(i, d)
		return appendJSONString(dst, e.hash(cm, s)), nil
	}
	// Truncate: the value as written, cut.
	start := len(dst)
	out, err := e.appendDatum(dst, i, d)
	if err != nil {
		return out, err
	}
	v := out[start:]
	if len(v) < 2 || v[0] != '"' {
		return out, nil // null, numbers, arrays, structs: not strings
	}
	if cd.kind == kBytes && cd.binMode == "bytes" {
		raw, err := base64.StdEncoding.AppendDecode(e.s.b[:0], v[1:len(v)-1])
		if err != nil {
			return out, nil
		}
		e.s.b = raw
		if len(raw) > cm.m.N {
			raw = raw[:cm.m.N]
		}
		dst = append(out[:start], '"')
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		return append(dst, '"'), nil
	}
	if !cd.stringValued() {
		return out, nil
	}
	str, ok := unquoteJSON(v)
	if !ok {
		return out, nil
	}
	return appendJSONString(out[:start], truncateUTF16(str, cm.m.N)), nil
}

// javaString is the String Debezium's converter gives a character column for d: the text, the
// TOAST placeholder, or for a NULL in a NOT NULL column its default or "".
func (e *Encoder) javaString(i int, d Datum) string {
	switch d.Kind {
	case DatumText:
		return string(d.Text)
	case DatumUnchanged:
		return e.ph
	}
	if c := e.table.Columns[i]; c.HasDefault && c.Default != nil {
		return string(c.Default)
	}
	return ""
}

// hash is MaskStrings.HashValueConverter: hex(digest(salt, bytes of s)), cut to the column length.
func (e *Encoder) hash(cm *colMapper, s string) string {
	h := cm.h
	h.Reset()
	h.Write(cm.m.Salt)
	if cm.m.Kind == HashV1 {
		e.s.b = appendJavaSerializedString(e.s.b[:0], s)
		h.Write(e.s.b)
	} else {
		h.Write([]byte(s))
	}
	e.s.a = h.Sum(e.s.a[:0])
	out := hex.EncodeToString(e.s.a)
	if cm.length > 0 && len(out) > cm.length {
		out = out[:cm.length]
	}
	return out
}

// appendJavaSerializedString appends what java.io.ObjectOutputStream writes for a String: the
// stream header, TC_STRING with a 2-byte length (TC_LONGSTRING with 8 bytes past 65535) and the
// modified UTF-8 bytes (U+0000 as C0 80, characters beyond U+FFFF as two 3-byte surrogates).
func appendJavaSerializedString(dst []byte, s string) []byte {
	n := 0
	for _, r := range s {
		n += modifiedUTF8Len(r)
	}
	dst = append(dst, 0xAC, 0xED, 0x00, 0x05)
	if n <= 0xFFFF {
		dst = append(dst, 0x74)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	} else {
		dst = append(dst, 0x7C)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	for _, r := range s {
		switch {
		case r == 0:
			dst = append(dst, 0xC0, 0x80)
		case r < 0x80:
			dst = append(dst, byte(r))
		case r < 0x800:
			dst = append(dst, byte(0xC0|r>>6), byte(0x80|r&0x3F))
		case r <= 0xFFFF:
			dst = append(dst, byte(0xE0|r>>12), byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
		default:
			hi, lo := utf16.EncodeRune(r)
			for _, u := range []rune{hi, lo} {
				dst = append(dst, byte(0xE0|u>>12), byte(0x80|(u>>6)&0x3F), byte(0x80|u&0x3F))
			}
		}
	}
	return dst
}

func modifiedUTF8Len(r rune) int {
	switch {
	case r == 0:
		return 2
	case r < 0x80:
		return 1
	case r < 0x800:
		return 2
	case r <= 0xFFFF:
		return 3
	}
	return 6
}

// truncateUTF16 cuts s to at most n UTF-16 code units, as Java's String.substring(0, n) does,
// except that a character outside the Basic Multilingual Plane is never split (Java would leave
// half of it, which no JSON encoder writes faithfully).
func truncateUTF16(s string, n int) string {
	units := 0
	for i, r := range s {
		w := 1
		if r > 0xFFFF {
			w = 2
		}
		if units+w > n {
			return s[:i]
		}
		units += w
	}
	return s
}

// unquoteJSON decodes a JSON string literal as pgcdc writes them.
func unquoteJSON(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(v) {
			return "", false
		}
		switch v[i] {
		case '"', '\\', '/':
			b.WriteByte(v[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+4 >= len(v) {
				return "", false
			}
			u, err := strconv.ParseUint(string(v[i+1:i+5]), 16, 16)
			if err != nil {
				return "", false
			}
			i += 4
			r := rune(u)
			if utf16.IsSurrogate(r) && i+6 < len(v) && v[i+1] == '\\' && v[i+2] == 'u' {
				if u2, err := strconv.ParseUint(string(v[i+3:i+7]), 16, 16); err == nil {
					if dec := utf16.DecodeRune(r, rune(u2)); dec != utf8.RuneError {
						r = dec
						i += 6
					}
				}
			}
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), true
}
