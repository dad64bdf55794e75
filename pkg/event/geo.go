package event

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
)

// Geometric and vector types, as Debezium 3.6.1 converts them (PostgresValueConverter
// convertPoint, convertGeometry, convertGeography, convertPgVector, convertPgHalfVector,
// convertPgSparseVector; io.debezium.data.geometry.Point, PostgisGeometry,
// io.debezium.data.vector.Vectors).

// appendPoint writes a point "(x,y)" as io.debezium.data.geometry.Point: x, y, the OGC WKB of
// the point (byte order 1, type 1, x, y little-endian; Point.buildWKBPoint) and a null srid.
func appendPoint(dst, text []byte) ([]byte, error) {
	t := bytes.TrimSpace(text)
	if len(t) < 2 || t[0] != '(' || t[len(t)-1] != ')' {
		return dst, errSyntax
	}
	xs, ys, ok := bytes.Cut(t[1:len(t)-1], []byte{','})
	if !ok {
		return dst, errSyntax
	}
	x, err := parseJavaDouble(xs)
	if err != nil {
		return dst, err
	}
	y, err := parseJavaDouble(ys)
	if err != nil {
		return dst, err
	}
	var wkb [21]byte
	wkb[0] = 1
	binary.LittleEndian.PutUint32(wkb[1:], 1)
	binary.LittleEndian.PutUint64(wkb[5:], math.Float64bits(x))
	binary.LittleEndian.PutUint64(wkb[13:], math.Float64bits(y))
	dst = append(dst, `{"x":`...)
	dst = appendJavaDouble(dst, x)
	dst = append(dst, `,"y":`...)
	dst = appendJavaDouble(dst, y)
	dst = append(dst, `,"wkb":`...)
	dst = appendBase64(dst, wkb[:])
	return append(dst, `,"srid":null}`...), nil
}

// javaNaN is Java's canonical NaN (Double.NaN, 0x7ff8000000000000); Go's math.NaN() has another
// payload, which shows in the WKB of a point.
var javaNaN = math.Float64frombits(0x7ff8000000000000)

// parseJavaDouble is Double.parseDouble for PostgreSQL's float8 output (NaN, Infinity,
// -Infinity, exponents).
func parseJavaDouble(b []byte) (float64, error) {
	b = bytes.TrimSpace(b)
	switch string(b) {
	case "NaN":
		return javaNaN, nil
	case "Infinity", "+Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errSyntax
	}
	return f, nil
}

// appendGeometry writes a PostGIS geometry or geography, whose text output is hex EWKB, as
// {"wkb": the EWKB bytes, "srid": the SRID when the EWKB carries one, else null}
// (PostgisGeometry.fromHexEwkb).
func appendGeometry(dst, text []byte, s *scratch) ([]byte, error) {
	if len(text)%2 != 0 {
		return dst, errSyntax
	}
	raw := s.b[:0]
	raw = append(raw, make([]byte, len(text)/2)...)
	if _, err := hex.Decode(raw, text); err != nil {
		return dst, errSyntax
	}
	s.b = raw
	if len(raw) < 9 {
		return dst, errors.New("invalid EWKB length")
	}
	var order binary.ByteOrder = binary.BigEndian
	if raw[0] != 0 {
		order = binary.LittleEndian
	}
	dst = append(dst, `{"wkb":`...)
	dst = appendBase64(dst, raw)
	dst = append(dst, `,"srid":`...)
	if order.Uint32(raw[1:5])&0x20000000 != 0 {
		dst = strconv.AppendInt(dst, int64(int32(order.Uint32(raw[5:9]))), 10)
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, '}'), nil
}

// appendVector writes a pgvector vector "[1,2.5]" as a list of doubles (DoubleVector), or a
// halfvec as a list of floats (FloatVector): Vectors.fromVectorString with Double.parseDouble or
// Float.parseFloat.
func appendVector(dst, text []byte, half bool) ([]byte, error) {
	t := bytes.TrimSpace(text)
	if len(t) < 2 || t[0] != '[' || t[len(t)-1] != ']' {
		return dst, errSyntax
	}
	dst = append(dst, '[')
	for i, el := range bytes.Split(t[1:len(t)-1], []byte{','}) {
		if i > 0 {
			dst = append(dst, ',')
		}
		f, err := parseJavaDouble(el)
		if err != nil {
			return dst, err
		}
		if half {
			dst = appendJavaFloat(dst, float64(float32(f)), 32)
		} else {
			dst = appendJavaDouble(dst, f)
		}
	}
	return append(dst, ']'), nil
}

type sparseEntry struct {
	key int16
	val float64
}

// appendSparseVector writes a pgvector sparsevec "{1:1.5,3:-2}/5" as SparseDoubleVector
// {dimensions: int16, vector: map<int16, double>}. Kafka Connect's JsonConverter writes a map
// whose keys are not strings as an array of [key, value] pairs; Debezium builds the map as a
// java.util.HashMap<Short, Double> sized for the entries, so the pairs come in that map's
// iteration order. Dimensions and indexes must fit a Java short (Short.parseShort), as in
// Debezium, whose task fails otherwise.
func appendSparseVector(dst, text []byte) ([]byte, error) {
	t := bytes.TrimSpace(text)
	body, dims, ok := bytes.Cut(t, []byte{'/'})
	if !ok {
		return dst, errSyntax
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(dims)), 10, 16)
	if err != nil {
		return dst, errors.New("sparsevec dimensions do not fit Debezium's int16 field")
	}
	body = bytes.TrimSpace(body)
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return dst, errSyntax
	}
	body = bytes.TrimSpace(body[1 : len(body)-1])
	var entries []sparseEntry
	if len(body) > 0 {
		for _, el := range bytes.Split(body, []byte{','}) {
			k, v, ok := bytes.Cut(el, []byte{':'})
			if !ok {
				return dst, errSyntax
			}
			key, err := strconv.ParseInt(string(bytes.TrimSpace(k)), 10, 16)
			if err != nil {
				return dst, errors.New("sparsevec index does not fit Debezium's int16 map key")
			}
			f, err := parseJavaDouble(v)
			if err != nil {
				return dst, err
			}
			replaced := false
			for i := range entries { // HashMap.put replaces the value of an existing key
				if entries[i].key == int16(key) {
					entries[i].val, replaced = f, true
				}
			}
			if !replaced {
				entries = append(entries, sparseEntry{int16(key), f})
			}
		}
	}
	capacity := hashMapCapacity(len(entries))
	bucket := func(k int16) uint32 {
		h := uint32(int32(k)) // Short.hashCode
		return (h ^ h>>16) & uint32(capacity-1)
	}
	for i := 1; i < len(entries); i++ { // stable: insertion order within a bucket
		for j := i; j > 0 && bucket(entries[j].key) < bucket(entries[j-1].key); j-- {
			entries[j], entries[j-1] = entries[j-1], entries[j]
		}
	}
	dst = append(dst, `{"dimensions":`...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `,"vector":[`...)
	for i, e := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = strconv.AppendInt(dst, int64(e.key), 10)
		dst = append(dst, ',')
		dst = appendJavaDouble(dst, e.val)
		dst = append(dst, ']')
	}
	return append(dst, "]}"...), nil
}

// hashMapCapacity is the table size of new HashMap<>(n) after n insertions: tableSizeFor(n),
// doubled while n exceeds three quarters of it.
func hashMapCapacity(n int) int {
	c := 1
	for c < n {
		c <<= 1
	}
	for n > c*3/4 {
		c <<= 1
	}
	return c
}
