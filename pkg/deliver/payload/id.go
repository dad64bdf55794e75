package payload

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
)

// namespace is the UUID namespace of pgcdc event ids (a version 5 UUID of the URL namespace and
// "https://github.com/pgcdc/pgcdc/deliver": 4057decf-13c4-5f71-92c9-e55b3e3f34dc).
var namespace = [16]byte{0x40, 0x57, 0xde, 0xcf, 0x13, 0xc4, 0x5f, 0x71, 0x92, 0xc9, 0xe5, 0x5b, 0x3e, 0x3f, 0x34, 0xdc}

// uuid5 is the RFC 9562 version 5 UUID of name in namespace ns.
func uuid5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// ID is the event's id, the same on every delivery of the event (webhook-id, Idempotency-Key,
// Hasura's id):
//
//   - a pgcdc change event (source LSN and pgcdc.position known): the version 5 UUID of
//     "pgcdc:<source.name>:<lsn>:<position>", so that a record pgcdc published twice (after a
//     crash) has one id;
//   - else, when idHeader names a header the record has (an outbox event's "id"): its value;
//   - else the version 5 UUID of "kafka:<topic>:<partition>:<offset>" of the original record.
func (e *Event) ID(idHeader string) string {
	if e.Change && e.Source.HasLSN && e.HasPosition {
		return uuid5(namespace, "pgcdc:"+e.Source.Name+":"+strconv.FormatUint(e.Source.LSN, 10)+":"+strconv.FormatInt(e.Position, 10))
	}
	if idHeader != "" {
		if v, ok := e.Header(idHeader); ok && len(v) > 0 {
			return string(v)
		}
	}
	return e.offsetUUID()
}

func (e *Event) offsetUUID() string {
	return uuid5(namespace, "kafka:"+e.OriginTopic+":"+strconv.Itoa(e.OriginPartition)+":"+strconv.FormatInt(e.OriginOffset, 10))
}

// UUID is ID when that is a UUID, otherwise the UUID of the record's coordinates (Hasura's id
// must be a UUID).
func (e *Event) UUID(idHeader string) string {
	id := e.ID(idHeader)
	if isUUID(id) {
		return id
	}
	return e.offsetUUID()
}

func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
