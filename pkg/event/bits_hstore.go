package event

// appendBits writes a bit string as Debezium 3.6 does for io.debezium.data.Bits
// (PostgresValueConverter.convertBits): a java.util.BitSet with bit i set when
// the i-th character from the right is '1', written with BitSet.toByteArray
// (little-endian, as many bytes as the highest set bit needs: none for zero).
func appendBits(dst, text []byte, s *scratch) ([]byte, error) {
	raw := s.b[:0]
	var cur byte
	nbits := 0
	for i := len(text) - 1; i >= 0; i-- {
		switch text[i] {
		case '1':
			cur |= 1 << (nbits % 8)
		case '0':
		default:
			return dst, errSyntax
		}
		nbits++
		if nbits%8 == 0 {
			raw = append(raw, cur)
			cur = 0
		}
	}
	if nbits%8 != 0 {
		raw = append(raw, cur)
	}
	for len(raw) > 0 && raw[len(raw)-1] == 0 {
		raw = raw[:len(raw)-1]
	}
	s.b = raw
	return appendBase64(dst, raw), nil
}

// hstore text output: "k"=>"v", "k2"=>NULL (keys and values double-quoted,
// '"' and '\' backslash-escaped).

type hstorePair struct {
	key, val []byte
	null     bool
	hash     uint32 // Java HashMap spread hash of the key
}

// appendHstore writes an hstore value as Debezium does: json mode writes the
// JSON object text as a string (PostgresValueConverter.convertHstoreToJsonString),
// map mode a JSON object. Both iterate pgjdbc's HStoreConverter.fromString
// result, a java.util.HashMap, so the pairs come in HashMap iteration order
// (bucket order for the final table size, insertion order within a bucket).
func appendHstore(dst, text []byte, s *scratch, asString bool) ([]byte, error) {
	pairs, buf, err := parseHstore(text, s.hpairs[:0], s.b[:0])
	s.hpairs, s.b = pairs[:0], buf[:0]
	if err != nil {
		return dst, err
	}
	capacity := 16
	for size := 0; size < len(pairs); size++ {
		if size+1 > capacity*3/4 {
			capacity *= 2
		}
	}
	// stable sort by bucket index (insertion sort: hstores are small)
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && pairs[j].hash&uint32(capacity-1) < pairs[j-1].hash&uint32(capacity-1); j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	// Build the JSON object, then (json mode) quote it as a string.
	start := len(dst)
	obj := dst
	if asString {
		obj = s.a[:0]
	}
	obj = append(obj, '{')
	for i, p := range pairs {
		if i > 0 {
			obj = append(obj, ',')
		}
		obj = appendJSONString(obj, p.key)
		obj = append(obj, ':')
		if p.null {
			obj = append(obj, "null"...)
		} else {
			obj = appendJSONString(obj, p.val)
		}
	}
	obj = append(obj, '}')
	if !asString {
		return obj, nil
	}
	s.a = obj
	return appendJSONString(dst[:start], obj), nil
}

// parseHstore parses hstore text output. Keys are unique in an hstore, so
// duplicate handling (HashMap.put replacing) does not arise.
func parseHstore(b []byte, pairs []hstorePair, buf []byte) ([]hstorePair, []byte, error) {
	// unescaped strings go into buf; record offsets first, slice after (buf may grow)
	type span struct{ ks, ke, vs, ve int }
	var spans [32]span
	sp := spans[:0]
	nulls := uint64(0)
	var nullMore []bool
	i := 0
	skip := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == ',') {
			i++
		}
	}
	str := func() (int, int, bool) {
		if i >= len(b) || b[i] != '"' {
			return 0, 0, false
		}
		i++
		st := len(buf)
		for i < len(b) {
			c := b[i]
			if c == '\\' && i+1 < len(b) {
				buf = append(buf, b[i+1])
				i += 2
				continue
			}
			if c == '"' {
				i++
				return st, len(buf), true
			}
			buf = append(buf, c)
			i++
		}
		return 0, 0, false
	}
	for {
		skip()
		if i >= len(b) {
			break
		}
		ks, ke, ok := str()
		if !ok || i+2 > len(b) || b[i] != '=' || b[i+1] != '>' {
			return pairs, buf, errSyntax
		}
		i += 2
		var s span
		s.ks, s.ke = ks, ke
		isNull := false
		if i+4 <= len(b) && string(b[i:i+4]) == "NULL" {
			i += 4
			isNull = true
		} else if s.vs, s.ve, ok = str(); !ok {
			return pairs, buf, errSyntax
		}
		if n := len(sp); n < 64 {
			if isNull {
				nulls |= 1 << n
			}
		} else {
			for len(nullMore) < n-64 {
				nullMore = append(nullMore, false)
			}
			nullMore = append(nullMore, isNull)
		}
		sp = append(sp, s)
	}
	for n, s := range sp {
		p := hstorePair{key: buf[s.ks:s.ke:s.ke], val: buf[s.vs:s.ve:s.ve]}
		if n < 64 {
			p.null = nulls&(1<<n) != 0
		} else {
			p.null = nullMore[n-64]
		}
		p.hash = javaSpreadHash(p.key)
		pairs = append(pairs, p)
	}
	return pairs, buf, nil
}

// javaSpreadHash is HashMap.hash(key) for a java.lang.String made of the
// UTF-8 bytes s: String.hashCode over UTF-16 code units, then h ^ (h >>> 16).
func javaSpreadHash(s []byte) uint32 {
	var h uint32
	str := string(s)
	for _, r := range str {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + uint32(0xD800+(r>>10))
			h = 31*h + uint32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + uint32(r)
	}
	return h ^ (h >> 16)
}
