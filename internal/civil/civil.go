// Package civil is calendar arithmetic on the proleptic Gregorian calendar with astronomical year
// numbering (year 0 is 1 BC), as PostgreSQL's dates and Debezium's day counts use it: days since
// 1970-01-01 to and from year, month, day (H. Hinnant's algorithms), for any int64 range the
// event encoder and replay meet.
package civil

// FloorDiv is a / b rounded towards negative infinity.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// DaysFromCivil returns the days since 1970-01-01 of year y, month m (1-12), day d.
func DaysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := FloorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// FromDays returns the year, month and day of z days since 1970-01-01.
func FromDays(z int64) (y, m, d int64) {
	z += 719468
	era := FloorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return
}
