package event

import (
	"errors"
	"math"
	"strconv"

	"github.com/pgcdc/pgcdc/internal/civil"
)

// Parsers for PostgreSQL text output (DateStyle ISO, IntervalStyle postgres).
// They work on []byte without allocating on the common paths.

var errSyntax = errors.New("invalid syntax")

func parseBool(b []byte) (bool, error) {
	switch string(b) {
	case "t", "true", "TRUE", "y", "yes", "on", "1":
		return true, nil
	case "f", "false", "FALSE", "n", "no", "off", "0":
		return false, nil
	}
	return false, errSyntax
}

// parseInt parses a base-10 signed integer that must fit in bits.
func parseInt(b []byte, bits int) (int64, error) {
	if len(b) == 0 {
		return 0, errSyntax
	}
	neg := false
	i := 0
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i = 1
		if len(b) == 1 {
			return 0, errSyntax
		}
	}
	var u uint64
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			return 0, errSyntax
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, strconv.ErrRange
		}
		u = u*10 + uint64(c)
	}
	lim := uint64(1) << (bits - 1)
	if neg {
		if u > lim {
			return 0, strconv.ErrRange
		}
		return -int64(u), nil
	}
	if u >= lim {
		return 0, strconv.ErrRange
	}
	return int64(u), nil
}

func parseUintN(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		c -= '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + int64(c)
	}
	return v, true
}

// --- dates, times, timestamps ---

type dtParser struct {
	b []byte
	i int
}

func (p *dtParser) num(minDigits, maxDigits int) (int64, bool) {
	start := p.i
	var v int64
	for p.i < len(p.b) && p.i-start < maxDigits && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	return v, p.i-start >= minDigits
}

func (p *dtParser) lit(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// date parses "YYYY-MM-DD" (year may have more digits); returns astronomical
// year handling is left to the caller via bcSuffix.
func (p *dtParser) date() (y, m, d int64, ok bool) {
	if y, ok = p.num(1, 10); !ok || !p.lit('-') {
		return 0, 0, 0, false
	}
	if m, ok = p.num(2, 2); !ok || !p.lit('-') {
		return 0, 0, 0, false
	}
	if d, ok = p.num(2, 2); !ok {
		return 0, 0, 0, false
	}
	if m < 1 || m > 12 || d < 1 || d > 31 {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

// clock parses "HH:MM:SS[.ffffff]" into micros of day and nanos fraction digits.
func (p *dtParser) clock() (micros int64, ok bool) {
	h, ok1 := p.num(2, 2)
	if !ok1 || !p.lit(':') {
		return 0, false
	}
	mi, ok2 := p.num(2, 2)
	if !ok2 || !p.lit(':') {
		return 0, false
	}
	s, ok3 := p.num(2, 2)
	if !ok3 {
		return 0, false
	}
	var frac int64
	if p.lit('.') {
		start := p.i
		f, okf := p.num(1, 9)
		if !okf {
			return 0, false
		}
		n := p.i - start
		for ; n < 6; n++ {
			f *= 10
		}
		for ; n > 6; n-- {
			f /= 10
		}
		frac = f
	}
	if h > 24 || mi > 59 || s > 60 {
		return 0, false
	}
	return ((h*60+mi)*60+s)*1_000_000 + frac, true
}

// offset parses "+HH[:MM[:SS]]" or "-..." into seconds east of UTC.
func (p *dtParser) offset() (int64, bool) {
	if p.i >= len(p.b) || (p.b[p.i] != '+' && p.b[p.i] != '-') {
		return 0, false
	}
	neg := p.b[p.i] == '-'
	p.i++
	h, ok := p.num(2, 2)
	if !ok {
		return 0, false
	}
	sec := h * 3600
	if p.lit(':') {
		m, ok := p.num(2, 2)
		if !ok {
			return 0, false
		}
		sec += m * 60
		if p.lit(':') {
			s, ok := p.num(2, 2)
			if !ok {
				return 0, false
			}
			sec += s
		}
	}
	if neg {
		sec = -sec
	}
	return sec, true
}

func (p *dtParser) bc() bool {
	if p.i+3 == len(p.b) && string(p.b[p.i:]) == " BC" {
		p.i += 3
		return true
	}
	return false
}

func (p *dtParser) end() bool { return p.i == len(p.b) }

func astroYear(y int64, bc bool) int64 {
	if bc {
		return 1 - y
	}
	return y
}

// parseDate returns days since epoch.
func parseDate(b []byte) (int64, error) {
	p := dtParser{b: b}
	y, m, d, ok := p.date()
	if !ok {
		return 0, errSyntax
	}
	bc := p.bc()
	if !p.end() {
		return 0, errSyntax
	}
	return civil.DaysFromCivil(astroYear(y, bc), m, d), nil
}

// parseTime returns micros of day ("24:00:00" => 86400000000).
func parseTime(b []byte) (int64, error) {
	p := dtParser{b: b}
	us, ok := p.clock()
	if !ok || !p.end() {
		return 0, errSyntax
	}
	return us, nil
}

// parseTimeTZ returns micros of day (local) and the offset in seconds.
func parseTimeTZ(b []byte) (int64, int64, error) {
	p := dtParser{b: b}
	us, ok := p.clock()
	if !ok {
		return 0, 0, errSyntax
	}
	off, ok := p.offset()
	if !ok || !p.end() {
		return 0, 0, errSyntax
	}
	return us, off, nil
}

// parseTimestamp returns micros since epoch of a timestamp (with tz when
// withTZ: the offset is honoured). It does not handle infinity.
func parseTimestamp(b []byte, withTZ bool) (int64, error) {
	p := dtParser{b: b}
	y, m, d, ok := p.date()
	if !ok || !p.lit(' ') {
		return 0, errSyntax
	}
	us, ok := p.clock()
	if !ok {
		return 0, errSyntax
	}
	var off int64
	if withTZ {
		if off, ok = p.offset(); !ok {
			return 0, errSyntax
		}
	}
	bc := p.bc()
	if !p.end() {
		return 0, errSyntax
	}
	days := civil.DaysFromCivil(astroYear(y, bc), m, d)
	return days*86_400_000_000 + us - off*1_000_000, nil
}

// parseTimestampSecs is parseTimestamp returning whole seconds since the epoch
// and the microseconds within the second (0..999999), which does not overflow
// at PostgreSQL's extremes (294276 AD is beyond int64 microseconds since 1970).
func parseTimestampSecs(b []byte, withTZ bool) (secs, micros int64, err error) {
	p := dtParser{b: b}
	y, m, d, ok := p.date()
	if !ok || !p.lit(' ') {
		return 0, 0, errSyntax
	}
	us, ok := p.clock()
	if !ok {
		return 0, 0, errSyntax
	}
	var off int64
	if withTZ {
		if off, ok = p.offset(); !ok {
			return 0, 0, errSyntax
		}
	}
	bc := p.bc()
	if !p.end() {
		return 0, 0, errSyntax
	}
	days := civil.DaysFromCivil(astroYear(y, bc), m, d)
	return days*86_400 + us/1_000_000 - off, us % 1_000_000, nil
}

// --- numeric ---

// decimalText is a parsed numeric: unscaled digits (no sign, no dot) and scale.
type decimalText struct {
	neg    bool
	digits []byte // may have leading zeros
	scale  int
}

func parseNumeric(b []byte, buf []byte) (decimalText, error) {
	var d decimalText
	i := 0
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		d.neg = b[0] == '-'
		i = 1
	}
	digits := buf[:0]
	seenDot := false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			if seenDot {
				d.scale++
			}
		case c == '.' && !seenDot:
			seenDot = true
		default:
			return d, errSyntax
		}
	}
	if len(digits) == 0 {
		return d, errSyntax
	}
	d.digits = digits
	return d, nil
}

// --- bytea ---

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeBytea appends the bytes of a bytea text value (hex or escape format).
func decodeBytea(dst, b []byte) ([]byte, error) {
	if len(b) >= 2 && b[0] == '\\' && b[1] == 'x' {
		h := b[2:]
		if len(h)%2 != 0 {
			return dst, errSyntax
		}
		for i := 0; i < len(h); i += 2 {
			hi, ok1 := unhex(h[i])
			lo, ok2 := unhex(h[i+1])
			if !ok1 || !ok2 {
				return dst, errSyntax
			}
			dst = append(dst, hi<<4|lo)
		}
		return dst, nil
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i+1 < len(b) && b[i+1] == '\\' {
			dst = append(dst, '\\')
			i++
			continue
		}
		if i+3 < len(b) {
			o1, o2, o3 := b[i+1]-'0', b[i+2]-'0', b[i+3]-'0'
			if o1 <= 3 && o2 <= 7 && o3 <= 7 {
				dst = append(dst, o1<<6|o2<<3|o3)
				i += 3
				continue
			}
		}
		return dst, errSyntax
	}
	return dst, nil
}

// --- interval (IntervalStyle postgres) ---

type interval struct {
	years, months, days, hours, minutes int64
	seconds                             int64 // whole seconds
	micros                              int64 // fractional micros, same sign as seconds
}

// parseInterval parses e.g. "1 year 2 mons -3 days +04:05:06.789", like
// pgjdbc's PGInterval (which Debezium uses): the sign of the clock applies to
// hours, minutes and seconds.
func parseInterval(b []byte) (interval, error) {
	var iv interval
	i := 0
	n := len(b)
	for i < n {
		for i < n && b[i] == ' ' {
			i++
		}
		if i >= n {
			break
		}
		// token up to next space
		start := i
		for i < n && b[i] != ' ' {
			i++
		}
		tok := b[start:i]
		if hasColon(tok) {
			neg := false
			if tok[0] == '-' || tok[0] == '+' {
				neg = tok[0] == '-'
				tok = tok[1:]
			}
			// H+:MM:SS[.f]
			p := dtParser{b: tok}
			h, ok := p.num(1, 10)
			if !ok || !p.lit(':') {
				return iv, errSyntax
			}
			m, ok := p.num(2, 2)
			if !ok {
				return iv, errSyntax
			}
			var s, frac int64
			if p.lit(':') {
				if s, ok = p.num(2, 2); !ok {
					return iv, errSyntax
				}
				if p.lit('.') {
					st := p.i
					f, okf := p.num(1, 9)
					if !okf {
						return iv, errSyntax
					}
					k := p.i - st
					for ; k < 6; k++ {
						f *= 10
					}
					for ; k > 6; k-- {
						f /= 10
					}
					frac = f
				}
			}
			if !p.end() {
				return iv, errSyntax
			}
			if neg {
				h, m, s, frac = -h, -m, -s, -frac
			}
			iv.hours, iv.minutes, iv.seconds, iv.micros = h, m, s, frac
			continue
		}
		v, err := parseInt(tok, 64)
		if err != nil {
			return iv, errSyntax
		}
		for i < n && b[i] == ' ' {
			i++
		}
		us := i
		for i < n && b[i] != ' ' {
			i++
		}
		switch string(b[us:i]) {
		case "year", "years":
			iv.years = v
		case "mon", "mons":
			iv.months = v
		case "day", "days":
			iv.days = v
		default:
			return iv, errSyntax
		}
	}
	return iv, nil
}

func hasColon(b []byte) bool {
	for _, c := range b {
		if c == ':' {
			return true
		}
	}
	return false
}

// --- arrays ---

// arrayElem is one element of a parsed one-dimensional array.
type arrayElem struct {
	null bool
	text []byte
}

// parseArray parses a PostgreSQL array literal such as {1,NULL,"a \"b\""} whose elements are
// separated by delim (the element type's typdelim). A multi-dimensional array ({{1,2},{3,4}})
// yields its elements in row-major order. Elements alias b unless they needed unescaping, in
// which case they are copied into scratch. A "[l:u]=" dimension prefix is skipped.
func parseArray(b []byte, delim byte, elems []arrayElem, scratch []byte) ([]arrayElem, []byte, error) {
	i := 0
	if len(b) > 0 && b[0] == '[' {
		for i < len(b) && b[i] != '=' {
			i++
		}
		i++
	}
	if i >= len(b) || b[i] != '{' {
		return elems, scratch, errSyntax
	}
	i++
	depth := 1
	skip := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	// after an element or a closed sub-array: a delimiter, or the end of the enclosing array
	next := func() error {
		skip()
		if i < len(b) && b[i] == delim {
			i++
			return nil
		}
		if i < len(b) && b[i] == '}' {
			return nil
		}
		return errSyntax
	}
	for depth > 0 {
		skip()
		if i >= len(b) {
			return elems, scratch, errSyntax
		}
		switch c := b[i]; {
		case c == '{':
			depth++
			i++
		case c == '}':
			depth--
			i++
			if depth == 0 {
				skip()
				if i != len(b) {
					return elems, scratch, errSyntax
				}
				return elems, scratch, nil
			}
			if err := next(); err != nil {
				return elems, scratch, err
			}
		case c == '"':
			i++
			start := len(scratch)
			closed := false
			for i < len(b) {
				ch := b[i]
				if ch == '\\' && i+1 < len(b) {
					scratch = append(scratch, b[i+1])
					i += 2
					continue
				}
				i++
				if ch == '"' {
					closed = true
					break
				}
				scratch = append(scratch, ch)
			}
			if !closed {
				return elems, scratch, errSyntax
			}
			elems = append(elems, arrayElem{text: scratch[start:len(scratch):len(scratch)]})
			if err := next(); err != nil {
				return elems, scratch, err
			}
		default:
			start := i
			for i < len(b) && b[i] != delim && b[i] != '}' {
				if b[i] == '\\' && i+1 < len(b) {
					i++ // an escaped character in an unquoted element (not produced by array_out)
				}
				i++
			}
			end := i
			for end > start && (b[end-1] == ' ' || b[end-1] == '\t') {
				end--
			}
			t := b[start:end]
			if len(t) == 4 && (t[0]|0x20) == 'n' && (t[1]|0x20) == 'u' && (t[2]|0x20) == 'l' && (t[3]|0x20) == 'l' {
				elems = append(elems, arrayElem{null: true})
			} else {
				elems = append(elems, arrayElem{text: t})
			}
			if err := next(); err != nil {
				return elems, scratch, err
			}
		}
	}
	return elems, scratch, nil
}
