package event

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"
)

// JSON output helpers that reproduce what Kafka Connect's JsonConverter writes
// through Jackson's ObjectMapper (UTF8JsonGenerator, default features):
//
//   - Strings: only '"', '\\' and control characters below 0x20 are escaped;
//     \b \t \n \f \r use their short forms, the others \u00XX with upper-case
//     hex (Jackson CharTypes.sOutputEscapes128 + HEX_CHARS). '/' and non-ASCII
//     (including U+2028/U+2029 and DEL) are written raw as UTF-8.
//   - Invalid UTF-8 is replaced by U+FFFD, as Java's new String(bytes, UTF_8)
//     would do before Jackson ever sees it.
//   - float64/float32: Java Double.toString / Float.toString; NaN and
//     ±Infinity are written as the strings "NaN", "Infinity", "-Infinity"
//     (JsonWriteFeature.WRITE_NAN_AS_STRINGS, enabled by default).
//   - bytes: standard base64 with padding (Jackson's default Base64Variant).

const hexUpper = "0123456789ABCDEF"

// jsonSafe[b] is true for ASCII bytes that need no escaping.
var jsonSafe = func() (t [256]bool) {
	for i := 0x20; i < 0x80; i++ {
		t[i] = true
	}
	t['"'] = false
	t['\\'] = false
	return
}()

// appendJSONString appends s as a JSON string, escaped as Jackson escapes it.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	dst = appendJSONStringBody(dst, s)
	return append(dst, '"')
}

func appendJSONStringBody[T string | []byte](dst []byte, s T) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, b)
			i++
			start = i
			continue
		}
		// At most utf8.UTFMax bytes: the conversion uses a stack buffer, not the heap.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

func appendEscape(dst []byte, b byte) []byte {
	switch b {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\b':
		return append(dst, '\\', 'b')
	case '\t':
		return append(dst, '\\', 't')
	case '\n':
		return append(dst, '\\', 'n')
	case '\f':
		return append(dst, '\\', 'f')
	case '\r':
		return append(dst, '\\', 'r')
	}
	return append(dst, '\\', 'u', '0', '0', hexUpper[b>>4], hexUpper[b&0xF])
}

// appendBase64 appends the JSON string holding the standard base64 of b.
func appendBase64(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendJavaDouble appends f as Jackson writes a Java double.
func appendJavaDouble(dst []byte, f float64) []byte {
	return appendJavaFloat(dst, f, 64)
}

// appendJavaFloat formats like Java's Double.toString (bits=64) or
// Float.toString (bits=32) of JDK 19+ (shortest repr that round-trips):
// plain notation with at least one fractional digit for 1e-3 <= |f| < 1e7,
// otherwise computerized scientific notation d.dddE±n.
func appendJavaFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, bits) // [-]d[.ddd]e±XX
	if abs := math.Abs(f); (abs < 1e-3 || abs >= 1e7) && ((e[0] == '-' && e[2] == 'e') || e[1] == 'e') {
		// Java (JDK 19+ Double/Float.toString) renders at least two digits: when
		// the shortest decimal has one, it takes the two-digit decimal closest to
		// the value (Double.MIN_VALUE is 4.9E-324, not 5.0E-324). In the plain
		// range this changes nothing (0.1 stays 0.1).
		e = strconv.AppendFloat(buf[:0], f, 'e', 1, bits)
	}
	neg := false
	if e[0] == '-' {
		neg = true
		e = e[1:]
	}
	// split mantissa digits and exponent
	var digits [24]byte
	nd := 0
	i := 0
	for ; i < len(e) && e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[nd] = e[i]
			nd++
		}
	}
	exp, _ := strconv.Atoi(string(e[i+1:]))
	if neg {
		dst = append(dst, '-')
	}
	abs := math.Abs(f)
	if abs >= 1e-3 && abs < 1e7 {
		if exp >= 0 {
			// integer part: digits[0..exp]
			for k := 0; k <= exp; k++ {
				if k < nd {
					dst = append(dst, digits[k])
				} else {
					dst = append(dst, '0')
				}
			}
			dst = append(dst, '.')
			if exp+1 < nd {
				dst = append(dst, digits[exp+1:nd]...)
			} else {
				dst = append(dst, '0')
			}
		} else {
			dst = append(dst, '0', '.')
			for k := 0; k < -exp-1; k++ {
				dst = append(dst, '0')
			}
			dst = append(dst, digits[:nd]...)
		}
		return dst
	}
	dst = append(dst, digits[0], '.')
	if nd > 1 {
		dst = append(dst, digits[1:nd]...)
	} else {
		dst = append(dst, '0')
	}
	dst = append(dst, 'E')
	return strconv.AppendInt(dst, int64(exp), 10)
}
