package replay

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/pgcdc/pgcdc/internal/civil"
)

// kind is how a JSON field value turns back into PostgreSQL input text.
type kind uint8

const (
	kText       kind = iota // JSON string, written as is (text, uuid, json, timestamptz as ISO-8601, ISO intervals...)
	kBool                   // true/false
	kBitBool                // true/false into a bit(1) column
	kInt                    // JSON integer
	kFloat                  // JSON number, or "NaN"/"Infinity"/"-Infinity"
	kDecimal                // base64 two's-complement unscaled value with a fixed scale (Connect Decimal)
	kVarDecimal             // {"scale":s,"value":base64} (io.debezium.data.VariableScaleDecimal)
	kNumeric                // no schema, numeric column: number, string or object, see numericMode
	kBytes                  // bytea in the configured binary mode
	kDate                   // days since the epoch
	kTimeMillis             // ms of the day
	kTimeMicros             // µs of the day
	kTimeNanos              // ns of the day
	kTsMillis               // ms since the epoch
	kTsMicros               // µs since the epoch
	kTsNanos                // ns since the epoch
	kInterval               // µs (MicroDuration) or an ISO-8601 string
	kArray
	kBits      // io.debezium.data.Bits: base64 of a little-endian BitSet, into bit(n)/varbit(n)
	kHstore    // hstore: a JSON object (map mode) or a string holding one (json mode)
	kJSONValue // any JSON value written as its JSON text (a map into a json/jsonb column)
)

var kindNames = [...]string{"text", "boolean", "bit", "integer", "float", "Decimal", "VariableScaleDecimal",
	"numeric", "bytes", "date", "time (ms)", "time (µs)", "time (ns)", "timestamp (ms)", "timestamp (µs)",
	"timestamp (ns)", "interval", "array", "Bits", "hstore", "JSON"}

func (k kind) String() string { return kindNames[k] }

// codec converts one column's JSON values.
type codec struct {
	kind    kind
	scale   int    // kDecimal; kNumeric in precise mode: the target column's scale (-1 unconstrained)
	binMode string // kBytes: bytes (base64), base64, base64-url-safe, hex
	decMode string // kNumeric: precise, double, string
	elem    *codec // kArray
	bits    int    // kBits: the bit string's length (0: varbit without a known length)
}

// Debezium's ±infinity sentinels (see pkg/event/value.go).
const (
	posInfMicros = 9223372036825200000
	negInfMicros = -9223372036832400000
)

var (
	posInfDays = civil.DaysFromCivil(-5877611, 6, 21)
	negInfDays = civil.DaysFromCivil(-5877611, 6, 22)
)

// toText converts a non-null raw JSON value into PostgreSQL input text.
func (c *codec) toText(raw []byte) (string, error) {
	switch c.kind {
	case kText:
		if raw[0] != '"' {
			return "", fmt.Errorf("expected a string, got %s", jsonKind(raw))
		}
		return unquote(raw)
	case kBool, kBitBool:
		switch string(raw) {
		case "true":
			if c.kind == kBitBool {
				return "1", nil
			}
			return "t", nil
		case "false":
			if c.kind == kBitBool {
				return "0", nil
			}
			return "f", nil
		}
		return "", fmt.Errorf("expected a boolean, got %s", jsonKind(raw))
	case kInt:
		if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
			return "", fmt.Errorf("expected an integer, got %s (%.40s)", jsonKind(raw), raw)
		}
		return string(raw), nil
	case kFloat:
		if raw[0] == '"' {
			s, err := unquote(raw)
			if err != nil {
				return "", err
			}
			switch s {
			case "NaN", "Infinity", "-Infinity":
				return s, nil
			}
			return "", fmt.Errorf("expected a number, got the string %q", s)
		}
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return "", fmt.Errorf("expected a number, got %s (%.40s)", jsonKind(raw), raw)
		}
		return string(raw), nil
	case kDecimal:
		return decimalText(raw, c.scale)
	case kVarDecimal:
		return varDecimalText(raw)
	case kNumeric:
		switch raw[0] {
		case '{':
			return varDecimalText(raw)
		case '"':
			if c.decMode == "precise" || c.decMode == "" {
				if c.scale < 0 {
					return "", errors.New("a Decimal value needs the column's scale: the target column is an unconstrained numeric, but the topic was written with a fixed scale; declare numeric(p,s) or replay from topics with schemas")
				}
				return decimalText(raw, c.scale)
			}
			return unquote(raw) // string mode, or "NaN"
		}
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return "", fmt.Errorf("expected a number, got %s", jsonKind(raw))
		}
		return string(raw), nil // double mode
	case kBytes:
		s, err := unquote(raw)
		if err != nil {
			return "", err
		}
		var b []byte
		switch c.binMode {
		case "hex":
			b, err = hex.DecodeString(s)
		case "base64-url-safe":
			b, err = base64.URLEncoding.DecodeString(s)
		default:
			b, err = base64.StdEncoding.DecodeString(s)
		}
		if err != nil {
			return "", fmt.Errorf("bytes in %s mode: %w", c.binModeName(), err)
		}
		return `\x` + hex.EncodeToString(b), nil
	case kDate:
		d, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", fmt.Errorf("expected days since the epoch, got %s", jsonKind(raw))
		}
		switch d {
		case posInfDays:
			return "infinity", nil
		case negInfDays:
			return "-infinity", nil
		}
		y, m, dd := civil.FromDays(d)
		return dateText(y, m, dd), nil
	case kTimeMillis, kTimeMicros, kTimeNanos:
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", fmt.Errorf("expected a time of day as a number, got %s", jsonKind(raw))
		}
		ns := v * 1_000_000
		if c.kind == kTimeMicros {
			ns = v * 1000
		} else if c.kind == kTimeNanos {
			ns = v
		}
		return clockText(ns), nil
	case kTsMillis, kTsMicros, kTsNanos:
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", fmt.Errorf("expected a timestamp as a number, got %s", jsonKind(raw))
		}
		var us int64
		switch c.kind {
		case kTsMillis:
			if v == civil.FloorDiv(posInfMicros, 1000) {
				return "infinity", nil
			} else if v == civil.FloorDiv(negInfMicros, 1000) {
				return "-infinity", nil
			}
			us = v * 1000
		case kTsMicros:
			if v == posInfMicros {
				return "infinity", nil
			} else if v == negInfMicros {
				return "-infinity", nil
			}
			us = v
		default:
			us = civil.FloorDiv(v, 1000)
		}
		days := civil.FloorDiv(us, 86_400_000_000)
		y, m, d := civil.FromDays(days)
		tod := (us - days*86_400_000_000) * 1000
		if c.kind == kTsNanos {
			tod += v - us*1000
		}
		s := dateText(y, m, d)
		if bc := strings.HasSuffix(s, " BC"); bc {
			return s[:len(s)-3] + " " + clockText(tod) + " BC", nil
		}
		return s + " " + clockText(tod), nil
	case kInterval:
		if raw[0] == '"' {
			return unquote(raw) // ISO-8601 (interval.handling.mode=string)
		}
		if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
			return "", fmt.Errorf("expected microseconds or an ISO-8601 string, got %s", jsonKind(raw))
		}
		return string(raw) + " microseconds", nil
	case kArray:
		return c.arrayText(raw)
	case kBits:
		return c.bitsText(raw)
	case kHstore:
		return hstoreText(raw)
	case kJSONValue:
		return string(raw), nil
	}
	return "", fmt.Errorf("internal: unhandled kind %d", c.kind)
}

func (c *codec) binModeName() string {
	if c.binMode == "" {
		return "bytes"
	}
	return c.binMode
}

// arrayText builds a PostgreSQL array literal from a JSON array.
func (c *codec) arrayText(raw []byte) (string, error) {
	if raw[0] != '[' {
		return "", fmt.Errorf("expected an array, got %s", jsonKind(raw))
	}
	var sb strings.Builder
	sb.WriteByte('{')
	n := 0
	err := eachElem(raw, func(el []byte) error {
		if n > 0 {
			sb.WriteByte(',')
		}
		n++
		if isNull(el) {
			sb.WriteString("NULL")
			return nil
		}
		var s string
		var err error
		if el[0] == '[' {
			s, err = c.arrayText(el) // nested dimension
			if err == nil {
				sb.WriteString(s)
			}
			return err
		}
		if s, err = c.elem.toText(el); err != nil {
			return err
		}
		writeQuoted(&sb, s)
		return nil
	})
	if err != nil {
		return "", err
	}
	sb.WriteByte('}')
	return sb.String(), nil
}

// decimalText turns a Connect Decimal (base64 of the big-endian two's-complement unscaled value)
// into decimal text with the given scale.
func decimalText(raw []byte, scale int) (string, error) {
	s, err := unquote(raw)
	if err != nil {
		return "", fmt.Errorf("Decimal: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("Decimal %q is not base64: %w", s, err)
	}
	return unscaledText(b, scale), nil
}

func unscaledText(b []byte, scale int) string {
	v := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	} else if scale < 0 {
		digits += strings.Repeat("0", -scale)
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// varDecimalText decodes io.debezium.data.VariableScaleDecimal {"scale":s,"value":"base64"}.
func varDecimalText(raw []byte) (string, error) {
	if raw[0] != '{' {
		return "", fmt.Errorf("expected a VariableScaleDecimal object, got %s", jsonKind(raw))
	}
	scale, value := 0, []byte(nil)
	err := eachField(raw, func(name, v []byte) error {
		switch string(name) {
		case `"scale"`:
			n, err := strconv.Atoi(string(v))
			scale = n
			return err
		case `"value"`:
			value = v
		}
		return nil
	})
	if err != nil || value == nil {
		return "", fmt.Errorf("malformed VariableScaleDecimal %.60s", raw)
	}
	return decimalText(value, scale)
}

// dateText writes a date as PostgreSQL reads it (ISO, " BC" for years <= 0).
func dateText(y, m, d int64) string {
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	s := fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	if bc {
		s += " BC"
	}
	return s
}

// clockText writes nanoseconds of the day as HH:MM:SS[.fraction].
func clockText(ns int64) string {
	secs := ns / 1_000_000_000
	frac := ns % 1_000_000_000
	s := fmt.Sprintf("%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if frac != 0 {
		f := strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
		s += "." + f
	}
	return s
}

// bitsText turns io.debezium.data.Bits (base64 of java.util.BitSet.toByteArray: bit i is
// byte[i/8]>>(i%8), bit 0 the rightmost character) into a bit string of c.bits characters. Without
// a known length (varbit) it is as long as the highest set bit needs: leading zeros are lost.
func (c *codec) bitsText(raw []byte) (string, error) {
	s, err := unquote(raw)
	if err != nil {
		return "", fmt.Errorf("Bits: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("Bits %q is not base64: %w", s, err)
	}
	n := c.bits
	high := 0
	for i := 0; i < 8*len(b); i++ {
		if b[i/8]>>(i%8)&1 == 1 {
			high = i + 1
		}
	}
	if n == 0 {
		n = max(high, 1)
	}
	if high > n {
		return "", fmt.Errorf("Bits value has bit %d set, more than the column's %d bits", high-1, n)
	}
	out := make([]byte, n)
	for i := 0; i < n; i++ {
		bit := byte('0')
		if i < 8*len(b) && b[i/8]>>(i%8)&1 == 1 {
			bit = '1'
		}
		out[n-1-i] = bit
	}
	return string(out), nil
}

// hstoreText turns an hstore value as pgcdc writes it (map mode: a JSON object of strings or
// nulls; json mode: a JSON string holding that object) into hstore input text.
func hstoreText(raw []byte) (string, error) {
	obj := raw
	if raw[0] == '"' {
		s, err := unquote(raw)
		if err != nil {
			return "", err
		}
		obj = []byte(s)
	}
	if len(obj) == 0 || obj[0] != '{' {
		return "", fmt.Errorf("expected an hstore as a JSON object, got %s", jsonKind(raw))
	}
	var sb strings.Builder
	quoted := func(v string) { writeQuoted(&sb, v) }
	n := 0
	err := eachField(obj, func(name, v []byte) error {
		k, err := unquote(name)
		if err != nil {
			return err
		}
		if n > 0 {
			sb.WriteString(", ")
		}
		n++
		quoted(k)
		sb.WriteString("=>")
		if isNull(v) {
			sb.WriteString("NULL")
			return nil
		}
		if v[0] != '"' {
			return fmt.Errorf("hstore value of key %q is %s, not a string", k, jsonKind(v))
		}
		val, err := unquote(v)
		if err != nil {
			return err
		}
		quoted(val)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hstore: %w", err)
	}
	return sb.String(), nil
}

// writeQuoted writes s double-quoted with '"' and '\\' backslash-escaped, as array and hstore
// literals read it.
func writeQuoted(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('"')
}
