package event

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"strconv"
)

// placeholder returns the JSON Debezium 3.6.1 writes for an unchanged TOAST value (pgoutput 'u'
// without an old value to take it from) of a column of type typeName with codec c, or nil for
// null.
//
// Debezium picks a marker by the column's type name (UnchangedToastedReplicationMessageColumn):
// text-like arrays, bytea arrays, int4/date arrays, int8 arrays, hstore and uuid arrays have
// their own, everything else the plain one. UnchangedToastedPlaceholder turns the marker into a
// value: the placeholder string, a list of it, the list of its bytes as numbers, a map of it to
// itself, or the name-based UUID of its bytes. Kafka Connect then validates the value against the
// column's schema; where it does not fit (a string for a number, an array or a struct; numbers
// for a date array in isostring or connect mode) Debezium logs "Failed to properly convert data
// value" and writes null. A few converters handle the marker themselves: bytea in bytes mode
// (the placeholder's bytes) and in hex mode (the placeholder string); bytea in base64 modes
// writes null.
func placeholder(typeName string, c *codec, ph, binMode string) []byte {
	switch typeName {
	case "_text", "_varchar", "_bpchar", "_json", "_jsonb":
		if c.kind == kArray && c.elem.schema.typ == "string" {
			return append(appendJSONString([]byte{'['}, ph), ']')
		}
		return nil
	case "_bytea":
		if c.kind == kArray && c.elem.schema.typ == "bytes" {
			return append(appendBase64([]byte{'['}, []byte(ph)), ']')
		}
		return nil
	case "_int4", "_date", "_int8":
		if c.kind != kArray || (c.elem.schema.typ != "int32" && c.elem.schema.typ != "int64") ||
			c.elem.schema.name == "org.apache.kafka.connect.data.Date" { // Connect's Date wants java.util.Date
			return nil
		}
		b := []byte{'['}
		for i := 0; i < len(ph); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(int8(ph[i])), 10)
		}
		return append(b, ']')
	case "_uuid":
		if c.kind == kArray && c.elem.schema.typ == "string" {
			return append(appendJSONString([]byte{'['}, nameUUID([]byte(ph))), ']')
		}
		return nil
	case "hstore":
		obj := appendJSONString([]byte{'{'}, ph)
		obj = append(obj, ':')
		obj = append(appendJSONString(obj, ph), '}')
		switch c.kind {
		case kHstoreJSON:
			return appendJSONString(nil, obj)
		case kHstoreMap:
			return obj
		}
		return nil
	}
	if c.kind == kBytes {
		switch binMode {
		case "", "bytes":
			return appendBase64(nil, []byte(ph))
		case "hex":
			return appendJSONString(nil, ph)
		}
		return nil // base64 and base64-url-safe: null
	}
	if c.schema.typ == "string" {
		return appendJSONString(nil, ph)
	}
	return nil
}

// nameUUID is java.util.UUID.nameUUIDFromBytes(b).toString(): a version 3 (MD5) UUID.
func nameUUID(b []byte) string {
	h := md5.Sum(b)
	h[6] = h[6]&0x0f | 0x30
	h[8] = h[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], h[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], h[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], h[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], h[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], h[10:16])
	return string(out[:])
}

// appendPlaceholderBytes is the placeholder as the base64 JSON string of its bytes.
func appendPlaceholderBytes(dst []byte, ph string) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, []byte(ph))
	return append(dst, '"')
}
