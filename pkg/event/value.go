package event

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"strconv"

	"github.com/pgcdc/pgcdc/internal/civil"
)

// Value conversion: PostgreSQL text output => JsonConverter payload JSON.
// Behaviour follows debezium-connector-postgres PostgresValueConverter and
// debezium-core JdbcValueConverters (see comments per kind).

// scratch buffers reused by one Encoder (an Encoder is not safe for
// concurrent use).
type scratch struct {
	a, b   []byte
	elems  []arrayElem
	hpairs []hstorePair
}

// Sentinels for ±infinity timestamps (PostgresValueConverter: pgjdbc's
// PGStatement.DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY interpreted as
// microseconds, POSITIVE_INFINITY_LOCAL_DATE_TIME), expressed in the
// precision of the target type.
const (
	pgPosInfMicros = 9223372036825200000
	pgNegInfMicros = -9223372036832400000
)

// appendValue appends the JSON payload value of text.
func (c *codec) appendValue(dst, text []byte, s *scratch) ([]byte, error) {
	switch c.kind {
	case kString, kUnknownText:
		return appendJSONString(dst, text), nil
	case kBool:
		v, err := parseBool(text)
		if err != nil {
			return dst, err
		}
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case kBitBool:
		// "0"/"1" bit string; Integer.valueOf(str, 2) != 0
		v := false
		for _, ch := range text {
			if ch != '0' && ch != '1' {
				return dst, errSyntax
			}
			if ch == '1' {
				v = true
			}
		}
		if len(text) == 0 {
			return dst, errSyntax
		}
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case kInt16, kInt32, kInt64:
		bits := 64
		if c.kind == kInt16 {
			bits = 16
		} else if c.kind == kInt32 {
			bits = 32
		}
		v, err := parseInt(text, bits)
		if err != nil {
			return dst, err
		}
		return strconv.AppendInt(dst, v, 10), nil
	case kFloat32:
		f, err := parseFloat(text, 32)
		if err != nil {
			return dst, err
		}
		return appendJavaFloat(dst, f, 32), nil
	case kFloat64:
		f, err := parseFloat(text, 64)
		if err != nil {
			return dst, err
		}
		return appendJavaFloat(dst, f, 64), nil
	case kDecimal, kVarDecimal, kDecDouble, kDecString:
		return c.appendDecimal(dst, text, s)
	case kBytes:
		raw, err := decodeBytea(s.a[:0], text)
		s.a = raw
		if err != nil {
			return dst, err
		}
		switch c.binMode {
		case "base64":
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, raw)
			return append(dst, '"'), nil
		case "base64-url-safe":
			dst = append(dst, '"')
			dst = base64.URLEncoding.AppendEncode(dst, raw)
			return append(dst, '"'), nil
		case "hex":
			dst = append(dst, '"')
			dst = hex.AppendEncode(dst, raw)
			return append(dst, '"'), nil
		}
		return appendBase64(dst, raw), nil
	case kDate:
		days, err := c.dateDays(text)
		if err != nil {
			return dst, err
		}
		return strconv.AppendInt(dst, days, 10), nil
	case kIsoDate:
		y, m, d, err := c.localDate(text)
		if err != nil {
			return dst, err
		}
		dst = append(dst, '"')
		dst = appendISODate(dst, y, m, d)
		return append(dst, 'Z', '"'), nil
	case kTime, kIsoTime:
		us, err := parseTime(text)
		if err != nil {
			return dst, err
		}
		if c.inArray {
			// pgjdbc's java.sql.Time: milliseconds, and 24:00:00 is midnight
			us = us / 1000 * 1000 % 86_400_000_000
		}
		if c.kind == kIsoTime {
			// IsoTime: LocalTime.of(0, 0).plus(duration) (24:00:00 wraps), ISO_OFFSET_TIME
			dst = append(dst, '"')
			dst = appendClock(dst, us%86_400_000_000*1000, -1)
			return append(dst, 'Z', '"'), nil
		}
		switch c.unit {
		case unitMillis:
			return strconv.AppendInt(dst, us/1000, 10), nil
		case unitNanos:
			return strconv.AppendInt(dst, us*1000, 10), nil
		}
		return strconv.AppendInt(dst, us, 10), nil
	case kTimestamp:
		return c.appendTimestamp(dst, text)
	case kIsoTs:
		var secs, frac int64
		switch string(text) {
		case "infinity":
			secs, frac = civil.FloorDiv(pgPosInfMicros, 1_000_000), pgPosInfMicros-civil.FloorDiv(pgPosInfMicros, 1_000_000)*1_000_000
		case "-infinity":
			secs, frac = civil.FloorDiv(pgNegInfMicros, 1_000_000), pgNegInfMicros-civil.FloorDiv(pgNegInfMicros, 1_000_000)*1_000_000
		default:
			var err error
			if secs, frac, err = parseTimestampSecs(text, false); err != nil {
				return dst, err
			}
			if c.inArray {
				secs += julianShift(text) * 86_400
			}
		}
		dst = append(dst, '"')
		dst = appendZonedTimestampSecs(dst, secs, frac, -1)
		return append(dst, '"'), nil
	case kTsTZ:
		switch string(text) {
		case "-infinity":
			if c.inArray {
				// pgjdbc's -infinity java.sql.Timestamp through toLocalDateTime() comes out as this
				// instant (observed with Debezium 3.6.1), formatted like any other
				dst = append(dst, '"')
				dst = appendZonedTimestampSecs(dst, arrayTsTZNegInfSecs, 0, c.fracWidth)
				return append(dst, '"'), nil
			}
			return appendJSONString(dst, text), nil
		case "infinity":
			// PostgresValueConverter.convertTimestampWithZone returns the PG string as is
			return appendJSONString(dst, text), nil
		}
		secs, frac, err := parseTimestampSecs(text, true)
		if err != nil {
			return dst, err
		}
		if c.inArray {
			secs += jdbcFieldsShift(text) * 86_400
		}
		dst = append(dst, '"')
		dst = appendZonedTimestampSecs(dst, secs, frac, c.fracWidth)
		return append(dst, '"'), nil
	case kTimeTZ:
		us, off, err := parseTimeTZ(text)
		if err != nil {
			return dst, err
		}
		// OffsetTime.withOffsetSameInstant(UTC), formatted ISO_OFFSET_TIME
		const day = 86_400_000_000
		utc := ((us-off*1_000_000)%day + day) % day
		if c.inArray {
			utc = utc / 1_000_000 * 1_000_000 // java.sql.Time.toLocalTime() keeps whole seconds
		}
		dst = append(dst, '"')
		dst = appendClock(dst, utc*1000, -1)
		dst = append(dst, 'Z', '"')
		return dst, nil
	case kIntervalNum, kIntervalStr:
		iv, err := parseInterval(text)
		if err != nil {
			return dst, err
		}
		if c.kind == kIntervalStr {
			return appendIntervalISO(dst, iv), nil
		}
		return strconv.AppendInt(dst, intervalMicros(iv), 10), nil
	case kBits:
		return appendBits(dst, text, s)
	case kHstoreJSON:
		return appendHstore(dst, text, s, true)
	case kHstoreMap:
		return appendHstore(dst, text, s, false)
	case kPoint:
		return appendPoint(dst, text)
	case kGeometry:
		return appendGeometry(dst, text, s)
	case kVector, kHalfVector:
		return appendVector(dst, text, c.kind == kHalfVector)
	case kSparseVec:
		return appendSparseVector(dst, text)
	case kArray:
		return c.appendArray(dst, text, s)
	}
	return dst, errors.New("internal: unhandled kind")
}

func parseFloat(text []byte, bits int) (float64, error) {
	switch string(text) {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(string(text), bits)
	if err != nil {
		return 0, errSyntax
	}
	return f, nil
}

func (c *codec) appendDecimal(dst, text []byte, s *scratch) ([]byte, error) {
	if c.money {
		f, err := parseMoney(text, s.a[:0])
		if err != nil {
			return dst, err
		}
		switch c.kind {
		case kDecDouble:
			return appendJavaDouble(dst, f), nil
		}
		// precise and string: the exact amount with money's 2 fraction digits
		// (checked against Debezium 3.6.1: -92233720368547758.08 stays exact)
		d, err := parseMoneyDecimal(text, s.b[:0])
		if err != nil {
			return dst, err
		}
		s.b = d.digits
		d = roundHalfUp(d, c.scale)
		if c.kind == kDecString {
			dst = append(dst, '"')
			dst = appendBigDecimalPlain(dst, d)
			return append(dst, '"'), nil
		}
		return appendBase64Decimal(dst, d, s), nil
	}
	if sp := numericSpecial(text); sp != "" {
		switch c.kind {
		case kDecDouble:
			f, _ := parseFloat(text, 64)
			return appendJavaDouble(dst, f), nil
		case kDecString:
			return appendJSONString(dst, sp), nil
		}
		// precise mode cannot represent NaN/Infinity: Debezium emits null
		return append(dst, "null"...), nil
	}
	d, err := parseNumeric(text, s.a[:0])
	if err != nil {
		return dst, err
	}
	s.a = d.digits
	switch c.kind {
	case kDecDouble:
		// BigDecimal.doubleValue: out of range => ±Infinity (Go returns ±Inf with ErrRange)
		f, err := strconv.ParseFloat(string(text), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return dst, errSyntax
		}
		return appendJavaDouble(dst, f), nil
	case kDecString:
		if c.scale >= 0 {
			var ok bool
			if d, ok = rescale(d, c.scale, s.b[:0]); !ok {
				return dst, errors.New("value has more fraction digits than the column scale")
			}
		}
		// decimal.handling.mode=string writes BigDecimal.toPlainString()
		dst = append(dst, '"')
		dst = appendBigDecimalPlain(dst, d)
		return append(dst, '"'), nil
	case kVarDecimal:
		d = stripTrailingZeros(d)
		dst = append(dst, `{"scale":`...)
		dst = strconv.AppendInt(dst, int64(d.scale), 10)
		dst = append(dst, `,"value":`...)
		dst = appendBase64Decimal(dst, d, s)
		return append(dst, '}'), nil
	}
	var ok bool
	if d, ok = rescale(d, c.scale, s.b[:0]); !ok {
		return dst, errors.New("value has more fraction digits than the column scale")
	}
	return appendBase64Decimal(dst, d, s), nil
}

func appendBase64Decimal(dst []byte, d decimalText, s *scratch) []byte {
	var small [64]byte
	raw := appendTwosComplement(small[:0], d.neg, d.digits)
	return appendBase64(dst, raw)
}

// appendZonedTimestamp formats micros since epoch in UTC like Debezium's
// ZonedTimestamp.toIsoString(ZonedDateTime, ..., fractionalWidth): exactly
// fracWidth fraction digits when 1..9, else ISO_OFFSET_DATE_TIME (fraction
// with trailing zeros removed, omitted when zero); offset "Z".
func appendZonedTimestamp(dst []byte, us int64, fracWidth int) []byte {
	secs := civil.FloorDiv(us, 1_000_000)
	return appendZonedTimestampSecs(dst, secs, us-secs*1_000_000, fracWidth)
}

// appendZonedTimestampSecs is appendZonedTimestamp for seconds since the epoch
// and micros within the second.
func appendZonedTimestampSecs(dst []byte, secs, frac int64, fracWidth int) []byte {
	days := civil.FloorDiv(secs, 86_400)
	tod := (secs-days*86_400)*1_000_000 + frac
	y, m, d := civil.FromDays(days)
	dst = appendISOYear(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	dst = append2(dst, d)
	dst = append(dst, 'T')
	w := fracWidth
	if w <= 0 || w > 9 {
		w = -1
	}
	dst = appendClock(dst, tod*1000, w)
	return append(dst, 'Z')
}

// appendISOYear: java.time ISO_LOCAL_DATE year (4+ digits, '+' above 9999,
// '-' and 4-digit padding for negative years).
func appendISOYear(dst []byte, y int64) []byte {
	switch {
	case y > 9999:
		dst = append(dst, '+')
		return strconv.AppendInt(dst, y, 10)
	case y < 0:
		dst = append(dst, '-')
		y = -y
	}
	if y < 1000 {
		dst = append(dst, '0')
	}
	if y < 100 {
		dst = append(dst, '0')
	}
	if y < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, y, 10)
}

func append2(dst []byte, v int64) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// appendClock writes HH:mm:ss plus the fraction of nanos-of-day: with width
// -1 as java.time ISO_LOCAL_TIME (appendFraction(NANO, 0, 9, true): trailing
// zeros stripped, nothing when zero), otherwise exactly width digits.
func appendClock(dst []byte, nanosOfDay int64, width int) []byte {
	secs := nanosOfDay / 1_000_000_000
	nanos := nanosOfDay % 1_000_000_000
	dst = append2(dst, secs/3600)
	dst = append(dst, ':')
	dst = append2(dst, secs/60%60)
	dst = append(dst, ':')
	dst = append2(dst, secs%60)
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + nanos%10)
		nanos /= 10
	}
	if width < 0 {
		n := 9
		for n > 0 && digits[n-1] == '0' {
			n--
		}
		if n == 0 {
			return dst
		}
		dst = append(dst, '.')
		return append(dst, digits[:n]...)
	}
	dst = append(dst, '.')
	return append(dst, digits[:width]...)
}

// intervalMicros reproduces MicroDuration.durationMicros(years, months, days,
// hours, minutes, seconds, DAYS_PER_MONTH_AVG = 365.25/12) in double
// arithmetic, truncated to long. Explicit float64 conversions prevent FMA
// fusion so the rounding matches Java.
func intervalMicros(iv interval) int64 {
	const daysPerMonthAvg = 365.25 / 12.0
	seconds := float64(iv.seconds) + float64(iv.micros)/1e6
	numberOfDays := float64(float64(iv.years*12+iv.months)*daysPerMonthAvg) + float64(iv.days)
	numberOfSeconds := float64(float64(float64(float64(float64(numberOfDays*24)+float64(iv.hours))*60)+float64(iv.minutes))*60) + seconds
	return int64(float64(numberOfSeconds * 1e6))
}

// appendIntervalISO: Interval.toIsoString(y, m, d, h, min, BigDecimal.valueOf(seconds))
// => "P<y>Y<m>M<d>DT<h>H<min>M<seconds stripped>S".
func appendIntervalISO(dst []byte, iv interval) []byte {
	dst = append(dst, '"', 'P')
	dst = strconv.AppendInt(dst, iv.years, 10)
	dst = append(dst, 'Y')
	dst = strconv.AppendInt(dst, iv.months, 10)
	dst = append(dst, 'M')
	dst = strconv.AppendInt(dst, iv.days, 10)
	dst = append(dst, 'D', 'T')
	dst = strconv.AppendInt(dst, iv.hours, 10)
	dst = append(dst, 'H')
	dst = strconv.AppendInt(dst, iv.minutes, 10)
	dst = append(dst, 'M')
	// seconds as a plain decimal with trailing zeros stripped
	neg := iv.seconds < 0 || iv.micros < 0
	s, us := iv.seconds, iv.micros
	if neg {
		s, us = -s, -us
		dst = append(dst, '-')
	}
	dst = strconv.AppendInt(dst, s, 10)
	if us != 0 {
		var digits [6]byte
		for i := 5; i >= 0; i-- {
			digits[i] = byte('0' + us%10)
			us /= 10
		}
		n := 6
		for n > 0 && digits[n-1] == '0' {
			n--
		}
		dst = append(dst, '.')
		dst = append(dst, digits[:n]...)
	}
	return append(dst, 'S', '"')
}

// appendArray writes an array's elements. A multi-dimensional array is written flat, its
// elements in row-major order: the schema is an array of the element type, and Debezium itself
// cannot convert the inner arrays (see README, "Differences from Debezium").
func (c *codec) appendArray(dst, text []byte, s *scratch) ([]byte, error) {
	// elements may be converted with the same scratch buffers, so parse into
	// private storage
	elems, _, err := parseArray(text, c.delim, s.elems[:0], nil)
	s.elems = elems[:0]
	if err != nil {
		return dst, err
	}
	dst = append(dst, '[')
	for i, el := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		if el.null {
			dst = append(dst, "null"...)
			continue
		}
		if dst, err = c.elem.appendValue(dst, el.text, s); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// appendFallback appends the value Debezium uses for a NULL in a NOT NULL
// column (JdbcValueConverters.convertValue fallback): 0, false, "", empty
// bytes, epoch, empty array...
func (c *codec) appendFallback(dst []byte) []byte {
	switch c.kind {
	case kString, kUnknownText:
		return append(dst, `""`...)
	case kBool, kBitBool:
		return append(dst, "false"...)
	case kInt16, kInt32, kInt64, kDate, kTime, kTimestamp, kIntervalNum:
		return append(dst, '0')
	case kIsoDate:
		return append(dst, `"1970-01-01Z"`...)
	case kIsoTime:
		return append(dst, `"00:00:00Z"`...)
	case kIsoTs:
		return append(dst, `"1970-01-01T00:00:00Z"`...)
	case kFloat32, kFloat64, kDecDouble:
		return append(dst, "0.0"...)
	case kDecimal:
		return append(dst, `"AA=="`...)
	case kVarDecimal:
		return append(dst, `{"scale":0,"value":"AA=="}`...)
	case kDecString:
		if c.money {
			return append(dst, `"0.00"`...)
		}
		return append(dst, `"0"`...)
	case kBytes, kBits:
		return append(dst, `""`...)
	case kHstoreJSON:
		return append(dst, `"{}"`...)
	case kHstoreMap:
		return append(dst, "{}"...)
	case kTsTZ:
		return append(dst, `"1970-01-01T00:00:00Z"`...)
	case kTimeTZ:
		return append(dst, `"00:00:00Z"`...)
	case kIntervalStr:
		return append(dst, `"P0Y0M0DT0H0M0S"`...)
	case kArray, kVector, kHalfVector:
		return append(dst, "[]"...)
	case kPoint:
		return append(dst, `{"x":0.0,"y":0.0,"wkb":"AQEAAAAAAAAAAAAAAAAAAAAAAAAA","srid":null}`...)
	case kGeometry:
		return append(dst, `{"wkb":"AQcAAAAAAAAA","srid":null}`...) // GEOMETRYCOLLECTION EMPTY
	}
	return append(dst, "null"...)
}

// appendPlaceholder appends what an unchanged TOAST value of the column becomes (placeholder in
// toast.go).
func (c *codec) appendPlaceholder(dst []byte) []byte {
	if c.ph == nil {
		return append(dst, "null"...)
	}
	return append(dst, c.ph...)
}

// saturatingMul is a*b clamped to the int64 range (Java TimeUnit.toMicros).
func saturatingMul(a, b int64) int64 {
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	if a < math.MinInt64/b {
		return math.MinInt64
	}
	return a * b
}

// Dates that reach Debezium as java.sql.Date objects from pgjdbc (array elements, and every date
// of a snapshot, which Debezium reads through JDBC) are converted with Date.toLocalDate(): the
// era of a BC date is lost (4713-01-01 BC becomes 4713-01-01), and pgjdbc's infinity dates (Long
// MAX/MIN based millisecond sentinels) become these local dates (observed with Debezium 3.6.1);
// as epoch days they overflow Java's int.
var (
	jdbcDatePosInf = [3]int64{292278994, 8, 16}
	jdbcDateNegInf = [3]int64{292269055, 12, 2}
)

// Dates Debezium streams (LocalDate from the text) have POSITIVE_INFINITY_LOCAL_DATE =
// -5877611-06-21 and NEGATIVE_INFINITY_LOCAL_DATE = -5877611-06-22 (sic) for ±infinity.
var (
	streamDatePosInf = [3]int64{-5877611, 6, 21}
	streamDateNegInf = [3]int64{-5877611, 6, 22}
)

// localDate returns the LocalDate Debezium converts a date's text into.
func (c *codec) localDate(text []byte) (y, m, d int64, err error) {
	inf := func(v [3]int64) (int64, int64, int64, error) { return v[0], v[1], v[2], nil }
	switch string(text) {
	case "infinity":
		if c.jdbcDate {
			return inf(jdbcDatePosInf)
		}
		return inf(streamDatePosInf)
	case "-infinity":
		if c.jdbcDate {
			return inf(jdbcDateNegInf)
		}
		return inf(streamDateNegInf)
	}
	p := dtParser{b: text}
	y, m, d, ok := p.date()
	if !ok {
		return 0, 0, 0, errSyntax
	}
	bc := p.bc()
	if !p.end() {
		return 0, 0, 0, errSyntax
	}
	if !c.jdbcDate {
		return astroYear(y, bc), m, d, nil
	}
	// java.sql.Date.toLocalDate() takes the calendar fields: the era is dropped, and a date in
	// the Julian-Gregorian gap (1582-10-05..14) is normalized ten days on
	return y, m, d + gapDays(y, m, d), nil
}

// dateDays is a date as Debezium's epoch days: (int) LocalDate.toEpochDay(), which wraps.
func (c *codec) dateDays(text []byte) (int64, error) {
	y, m, d, err := c.localDate(text)
	if err != nil {
		return 0, err
	}
	days := civil.DaysFromCivil(y, m, d)
	if !c.jdbcDate && (days < math.MinInt32 || days > math.MaxInt32) && string(text) != "infinity" && string(text) != "-infinity" {
		return 0, strconv.ErrRange
	}
	return int64(int32(days)), nil
}

// appendISODate writes ISO_LOCAL_DATE (years beyond 4 digits signed).
func appendISODate(dst []byte, y, m, d int64) []byte {
	dst = appendISOYear(dst, y)
	dst = append(dst, '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	return append2(dst, d)
}

// arrayTsTZNegInfSecs: a timestamptz array's -infinity element comes out of pgjdbc and
// Debezium's resolveArrayValue as +292269055-12-02T23:00:00Z (observed with Debezium 3.6.1).
var arrayTsTZNegInfSecs = civil.DaysFromCivil(292269055, 12, 2)*86_400 + 23*3_600

// appendTimestamp writes a timestamp without time zone in c.unit since the epoch.
func (c *codec) appendTimestamp(dst, text []byte) ([]byte, error) {
	var us int64
	switch string(text) {
	case "infinity":
		if c.unit == unitNanos {
			return strconv.AppendInt(dst, math.MaxInt64, 10), nil
		}
		us = pgPosInfMicros
	case "-infinity":
		if c.unit == unitNanos {
			return strconv.AppendInt(dst, math.MinInt64, 10), nil
		}
		us = pgNegInfMicros
	default:
		secs, frac, err := parseTimestampSecs(text, false)
		if err != nil {
			return dst, err
		}
		if c.inArray {
			secs += julianShift(text) * 86_400
		}
		switch c.unit {
		case unitMillis:
			return strconv.AppendInt(dst, secs*1000+frac/1000, 10), nil
		case unitNanos:
			// NanoTimestamp.toEpochNanos: exact arithmetic; out of range it throws and Debezium
			// writes null
			day := civil.FloorDiv(secs, 86_400)
			nod := (secs-day*86_400)*1_000_000_000 + frac*1000
			const nanosPerDay = 86_400_000_000_000
			if day > math.MaxInt64/nanosPerDay || day < math.MinInt64/nanosPerDay {
				return append(dst, "null"...), nil
			}
			n := day * nanosPerDay
			if (nod > 0 && n > math.MaxInt64-nod) || (nod < 0 && n < math.MinInt64-nod) {
				return append(dst, "null"...), nil
			}
			return strconv.AppendInt(dst, n+nod, 10), nil
		}
		// MicroTimestamp: TimeUnit.SECONDS.toMicros(epochSecond) (saturating)
		// + micros of the second (wrapping), as Java computes it.
		us = saturatingMul(secs, 1_000_000) + frac
	}
	if c.unit == unitMillis {
		return strconv.AppendInt(dst, civil.FloorDiv(us, 1000), 10), nil
	}
	return strconv.AppendInt(dst, us, 10), nil
}

// julianShift is what happens to the date of a timestamp array element before 1582-10-15 on its
// way through pgjdbc's java.sql.Timestamp: pgjdbc reads the fields with a GregorianCalendar, which
// takes dates before its cutover as Julian ones, and Debezium turns the instant into a proleptic
// Gregorian date (observed with Debezium 3.6.1: 0044-03-15 BC becomes -0043-03-13, 1582-10-10
// becomes 1582-10-20). It returns the days to add to the proleptic Gregorian reading of text.
func julianShift(text []byte) int64 {
	p := dtParser{b: text}
	y, m, d, ok := p.date()
	if !ok {
		return 0
	}
	// the era comes at the end: "... BC"
	bc := len(text) > 3 && string(text[len(text)-3:]) == " BC"
	y = astroYear(y, bc)
	if y > 1582 || (y == 1582 && (m > 10 || (m == 10 && d >= 15))) {
		return 0
	}
	return julianDays(y, m, d) - civil.DaysFromCivil(y, m, d)
}

// julianDays returns days since 1970-01-01 of a (proleptic) Julian calendar date, astronomical
// year numbering.
func julianDays(y, m, d int64) int64 {
	a := (14 - m) / 12
	yy := y + 4800 - a
	mm := m + 12*a - 3
	jdn := d + (153*mm+2)/5 + 365*yy + civil.FloorDiv(yy, 4) - 32083
	return jdn - 2440588
}

// gapDays: java.util.GregorianCalendar (lenient) normalizes the dates that do not exist at its
// cutover, 1582-10-05 to 1582-10-14, ten days on.
func gapDays(y, m, d int64) int64 {
	if y == 1582 && m == 10 && d >= 5 && d <= 14 {
		return 10
	}
	return 0
}

// jdbcFieldsShift is what happens to the date of a timestamptz array element through pgjdbc's
// java.sql.Timestamp and Timestamp.toLocalDateTime() (Debezium's resolveArrayValue), which takes
// the calendar fields: a BC date loses its era, a date in the cutover gap moves ten days on
// (observed with Debezium 3.6.1). It returns the days to add to the proleptic Gregorian reading.
func jdbcFieldsShift(text []byte) int64 {
	p := dtParser{b: text}
	y, m, d, ok := p.date()
	if !ok {
		return 0
	}
	bc := len(text) > 3 && string(text[len(text)-3:]) == " BC"
	return civil.DaysFromCivil(y, m, d+gapDays(y, m, d)) - civil.DaysFromCivil(astroYear(y, bc), m, d)
}
