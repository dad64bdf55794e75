package event

import (
	"math/big"
	"strconv"
)

// Decimal helpers: Kafka Connect's Decimal logical type carries the unscaled
// value as Java BigInteger.toByteArray() (minimal big-endian two's
// complement), which JsonConverter writes as base64.

// numericSpecial reports PostgreSQL numeric's special values.
func numericSpecial(b []byte) string {
	switch string(b) {
	case "NaN":
		return "NAN"
	case "Infinity":
		return "POSITIVE_INFINITY"
	case "-Infinity":
		return "NEGATIVE_INFINITY"
	}
	return ""
}

// rescale returns digits with exactly scale fractional digits (padding with
// zeros); ok=false when digits would be lost (Java setScale would throw).
func rescale(d decimalText, scale int, buf []byte) (decimalText, bool) {
	for d.scale > scale {
		if d.digits[len(d.digits)-1] != '0' {
			return d, false
		}
		d.digits = d.digits[:len(d.digits)-1]
		d.scale--
	}
	if d.scale < scale {
		buf = append(buf[:0], d.digits...)
		for d.scale < scale {
			buf = append(buf, '0')
			d.scale++
		}
		d.digits = buf
	}
	return d, true
}

// stripTrailingZeros as Java BigDecimal.stripTrailingZeros followed by
// "if scale < 0 then setScale(0)" (PostgresValueConverter.convertDecimal).
func stripTrailingZeros(d decimalText) decimalText {
	for d.scale > 0 && d.digits[len(d.digits)-1] == '0' {
		d.digits = d.digits[:len(d.digits)-1]
		d.scale--
	}
	return d
}

func trimLeadingZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == '0' {
		b = b[1:]
	}
	return b
}

// appendTwosComplement appends BigInteger.toByteArray() of the signed integer
// given by neg and decimal digits.
func appendTwosComplement(dst []byte, neg bool, digits []byte) []byte {
	digits = trimLeadingZeros(digits)
	if len(digits) <= 18 {
		v, _ := parseUintN(digits)
		if neg {
			v = -v
		}
		return appendInt64TwosComplement(dst, v)
	}
	var n big.Int
	n.SetString(string(digits), 10)
	if neg {
		n.Neg(&n)
	}
	return appendBigTwosComplement(dst, &n)
}

func appendInt64TwosComplement(dst []byte, v int64) []byte {
	// number of bytes = bitLength/8 + 1 where bitLength excludes the sign bit
	var bl int
	if v >= 0 {
		bl = 64 - leadingZeros64(uint64(v))
	} else {
		bl = 64 - leadingZeros64(uint64(^v))
	}
	n := bl/8 + 1
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*uint(i))))
	}
	return dst
}

func leadingZeros64(x uint64) int {
	n := 0
	for i := 63; i >= 0; i-- {
		if x&(1<<uint(i)) != 0 {
			return n
		}
		n++
	}
	return 64
}

func appendBigTwosComplement(dst []byte, n *big.Int) []byte {
	var bl int
	if n.Sign() >= 0 {
		bl = n.BitLen()
	} else {
		var m big.Int
		m.Neg(n)
		m.Sub(&m, big.NewInt(1))
		bl = m.BitLen()
	}
	size := bl/8 + 1
	if n.Sign() >= 0 {
		b := n.Bytes()
		for i := len(b); i < size; i++ {
			dst = append(dst, 0)
		}
		return append(dst, b...)
	}
	// 2^(8*size) + n
	var m big.Int
	m.Lsh(big.NewInt(1), uint(8*size))
	m.Add(&m, n)
	b := m.Bytes()
	for i := len(b); i < size; i++ {
		dst = append(dst, 0xFF)
	}
	return append(dst, b...)
}

// appendJavaBigDecimalString appends Java BigDecimal.toString() of the value.
func appendJavaBigDecimalString(dst []byte, d decimalText) []byte {
	coeff := trimLeadingZeros(d.digits)
	isZero := len(coeff) == 1 && coeff[0] == '0'
	if d.neg && !isZero {
		dst = append(dst, '-')
	}
	adjusted := -d.scale + (len(coeff) - 1)
	if d.scale >= 0 && adjusted >= -6 {
		if d.scale == 0 {
			return append(dst, coeff...)
		}
		if len(coeff) > d.scale {
			dst = append(dst, coeff[:len(coeff)-d.scale]...)
			dst = append(dst, '.')
			return append(dst, coeff[len(coeff)-d.scale:]...)
		}
		dst = append(dst, '0', '.')
		for i := len(coeff); i < d.scale; i++ {
			dst = append(dst, '0')
		}
		return append(dst, coeff...)
	}
	dst = append(dst, coeff[0])
	if len(coeff) > 1 {
		dst = append(dst, '.')
		dst = append(dst, coeff[1:]...)
	}
	dst = append(dst, 'E')
	if adjusted > 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(adjusted), 10)
}

// parseMoney parses PostgreSQL money output (lc_monetary C/en_US style:
// "$1,234.56", "-$1,234.56", "($1.00)") into a float64, as pgjdbc's PGmoney
// does (Debezium receives PGmoney.val, a double).
func parseMoney(b []byte, buf []byte) (float64, error) {
	out := buf[:0]
	neg := false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9', c == '.':
			out = append(out, c)
		case c == '-' || c == '(':
			neg = true
		case c == '$' || c == ',' || c == ' ' || c == ')':
		default:
			return 0, errSyntax
		}
	}
	f, err := strconv.ParseFloat(string(out), 64)
	if err != nil {
		return 0, errSyntax
	}
	if neg {
		f = -f
	}
	return f, nil
}

// doubleToDecimal returns Java BigDecimal.valueOf(f) (i.e. new
// BigDecimal(Double.toString(f))) as decimalText.
func doubleToDecimal(f float64, buf []byte) decimalText {
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	var d decimalText
	if s[0] == '-' {
		d.neg = true
		s = s[1:]
	}
	var digits []byte
	i := 0
	for ; i < len(s) && s[i] != 'e'; i++ {
		if s[i] != '.' {
			digits = append(digits, s[i])
		}
	}
	exp, _ := strconv.Atoi(string(s[i+1:]))
	// value = 0.d1d2... * 10^(exp+1) => scale = len(digits)-1-exp
	d.scale = len(digits) - 1 - exp
	// Double.toString always has at least one fractional digit in plain form
	// ("1.0"), so BigDecimal.valueOf(1.0) has scale 1.
	if d.scale < 1 && exp < 7 {
		for d.scale < 1 {
			digits = append(digits, '0')
			d.scale++
		}
	}
	d.digits = digits
	return d
}

// roundHalfUp sets the scale to s rounding half up (BigDecimal.setScale(s, HALF_UP)).
func roundHalfUp(d decimalText, s int) decimalText {
	if d.scale <= s {
		r, _ := rescale(d, s, nil)
		return r
	}
	drop := d.scale - s
	keep := append([]byte(nil), d.digits[:len(d.digits)-drop]...)
	if len(keep) == 0 {
		keep = []byte{'0'}
	}
	if d.digits[len(d.digits)-drop] >= '5' {
		i := len(keep) - 1
		for ; i >= 0; i-- {
			if keep[i] == '9' {
				keep[i] = '0'
				continue
			}
			keep[i]++
			break
		}
		if i < 0 {
			keep = append([]byte{'1'}, keep...)
		}
	}
	return decimalText{neg: d.neg, digits: keep, scale: s}
}

// parseMoneyDecimal parses PostgreSQL money output ("$1,234.56", "-$1.00",
// "($1.00)") exactly.
func parseMoneyDecimal(b []byte, buf []byte) (decimalText, error) {
	var d decimalText
	digits := buf[:0]
	seenDot := false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			if seenDot {
				d.scale++
			}
		case c == '.' && !seenDot:
			seenDot = true
		case c == '-' || c == '(':
			d.neg = true
		case c == '$' || c == ',' || c == ' ' || c == ')':
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

// appendBigDecimalPlain appends Java BigDecimal.toPlainString() of d (scale >= 0).
func appendBigDecimalPlain(dst []byte, d decimalText) []byte {
	coeff := trimLeadingZeros(d.digits)
	if d.neg && !(len(coeff) == 1 && coeff[0] == '0') {
		dst = append(dst, '-')
	}
	if d.scale <= 0 {
		return append(dst, coeff...)
	}
	if len(coeff) > d.scale {
		dst = append(dst, coeff[:len(coeff)-d.scale]...)
		dst = append(dst, '.')
		return append(dst, coeff[len(coeff)-d.scale:]...)
	}
	dst = append(dst, '0', '.')
	for i := len(coeff); i < d.scale; i++ {
		dst = append(dst, '0')
	}
	return append(dst, coeff...)
}
