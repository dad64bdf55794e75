package event

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"time"
)

// MetaEncoder encodes the events that belong to no table: logical decoding messages
// (<prefix>.message) and transaction metadata (<prefix>.transaction), as Debezium's PostgreSQL
// connector writes them.
type MetaEncoder struct {
	opts      Options
	src       *Encoder // a table-less encoder, for the source block (schema and table "")
	msgKeyPre []byte
	msgKeySuf []byte
	msgValPre []byte
	msgValSuf []byte
	txKeyPre  []byte
	txKeySuf  []byte
	txValPre  []byte
	txValSuf  []byte
}

var (
	bytesOpt         = &connectSchema{typ: "bytes", optional: true}
	messageKeySchema = &connectSchema{typ: "struct", name: "io.debezium.connector.postgresql.MessageKey", version: 1, fields: []connectField{{"prefix", strOpt}}}
	txKeySchema      = &connectSchema{typ: "struct", name: "io.debezium.connector.common.TransactionMetadataKey", version: 1, fields: []connectField{{"id", strReq}}}
	txCollection     = &connectSchema{typ: "struct", optional: true, name: "event.collection", version: 1, fields: []connectField{{"data_collection", strReq}, {"event_count", int64Req}}}
	txValueSchema    = &connectSchema{typ: "struct", name: "io.debezium.connector.common.TransactionMetadataValue", version: 1, fields: []connectField{
		{"status", strReq}, {"id", strReq}, {"event_count", int64Opt},
		{"data_collections", &connectSchema{typ: "array", optional: true, items: txCollection}},
		{"ts_ms", int64Req},
	}}
)

// NewMetaEncoder prepares the message and transaction encodings for opts.
func NewMetaEncoder(opts Options) (*MetaEncoder, error) {
	src, err := NewEncoder(opts, Table{})
	if err != nil {
		return nil, err
	}
	m := &MetaEncoder{opts: opts, src: src}
	wrap := func(enabled bool, s *connectSchema) (pre, suf []byte) {
		if !enabled {
			return []byte("{"), []byte("}")
		}
		pre = append([]byte(`{"schema":`), appendSchemaJSON(nil, s, "")...)
		return append(pre, `,"payload":{`...), []byte("}}")
	}
	m.msgKeyPre, m.msgKeySuf = wrap(opts.KeySchemas, messageKeySchema)
	// The content follows binary.handling.mode (LogicalDecodingMessageMonitor.convertContent).
	content := bytesOpt
	if opts.BinaryHandling != "" && opts.BinaryHandling != "bytes" {
		content = strOpt
	}
	messageBodySchema := &connectSchema{typ: "struct", name: "io.debezium.connector.postgresql.Message", version: 1, fields: []connectField{{"prefix", strOpt}, {"content", content}}}
	// As Debezium 3.6.1 writes it (live comparison): op, ts_ms, source, transaction, message;
	// no ts_us/ts_ns.
	msgValue := &connectSchema{typ: "struct", name: "io.debezium.connector.postgresql.MessageValue", version: 1, fields: []connectField{
		{"op", strReq}, {"ts_ms", int64Opt}, {"source", sourceSchema}, {"transaction", transactionSchema}, {"message", messageBodySchema},
	}}
	m.msgValPre, m.msgValSuf = wrap(opts.ValueSchemas, msgValue)
	m.txKeyPre, m.txKeySuf = wrap(opts.KeySchemas, txKeySchema)
	m.txValPre, m.txValSuf = wrap(opts.ValueSchemas, txValueSchema)
	return m, nil
}

// MessageTopic is <prefix>.message.
func (m *MetaEncoder) MessageTopic() string { return SanitizeTopic(m.opts.TopicPrefix + ".message") }

// TransactionTopic is <prefix>.transaction.
func (m *MetaEncoder) TransactionTopic() string {
	return SanitizeTopic(m.opts.TopicPrefix + ".transaction")
}

// AppendMessageKey appends the key of a logical decoding message: {"prefix": ...}.
func (m *MetaEncoder) AppendMessageKey(dst []byte, prefix string) []byte {
	dst = append(dst, m.msgKeyPre...)
	dst = append(dst, `"prefix":`...)
	dst = appendJSONString(dst, prefix)
	return append(dst, m.msgKeySuf...)
}

// AppendMessageValue appends the value of a logical decoding message event (op "m") without a
// transaction block; see AppendMessageValueTx.
func (m *MetaEncoder) AppendMessageValue(dst []byte, prefix string, content []byte, src Source, now time.Time) []byte {
	return m.AppendMessageValueTx(dst, prefix, content, src, nil, now)
}

// AppendMessageValueTx appends the value of a logical decoding message event (op "m") with the
// envelope's transaction block (nil => null; Debezium fills it for a transactional message when
// transaction metadata is on).
func (m *MetaEncoder) AppendMessageValueTx(dst []byte, prefix string, content []byte, src Source, tx *Transaction, now time.Time) []byte {
	dst = append(dst, m.msgValPre...)
	dst = append(dst, `"op":"m","ts_ms":`...)
	dst = strconv.AppendInt(dst, now.UnixMilli(), 10)
	dst = append(dst, `,"source":`...)
	dst = m.src.appendSource(dst, src, now)
	dst = append(dst, `,"transaction":`...)
	if tx == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"id":`...)
		dst = appendJSONString(dst, tx.ID)
		dst = append(dst, `,"total_order":`...)
		dst = strconv.AppendInt(dst, tx.TotalOrder, 10)
		dst = append(dst, `,"data_collection_order":`...)
		dst = strconv.AppendInt(dst, tx.DataCollectionOrder, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"message":{"prefix":`...)
	dst = appendJSONString(dst, prefix)
	dst = append(dst, `,"content":`...)
	switch m.opts.BinaryHandling {
	case "base64":
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, content)
		dst = append(dst, '"')
	case "base64-url-safe":
		dst = append(dst, '"')
		dst = base64.URLEncoding.AppendEncode(dst, content)
		dst = append(dst, '"')
	case "hex":
		dst = append(dst, '"')
		dst = hex.AppendEncode(dst, content)
		dst = append(dst, '"')
	default:
		dst = appendBase64(dst, content)
	}
	dst = append(dst, '}')
	return append(dst, m.msgValSuf...)
}

// AppendTxKey appends the key of a transaction metadata event: {"id": ...}.
func (m *MetaEncoder) AppendTxKey(dst []byte, id string) []byte {
	dst = append(dst, m.txKeyPre...)
	dst = append(dst, `"id":`...)
	dst = appendJSONString(dst, id)
	return append(dst, m.txKeySuf...)
}

// CollectionCount is the number of events one transaction wrote for one table.
type CollectionCount struct {
	Collection string // "<schema>.<table>"
	Events     int64
}

// AppendTxBegin appends a BEGIN transaction metadata value.
func (m *MetaEncoder) AppendTxBegin(dst []byte, id string, ts time.Time) []byte {
	dst = append(dst, m.txValPre...)
	dst = append(dst, `"status":"BEGIN","id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"event_count":null,"data_collections":null,"ts_ms":`...)
	dst = strconv.AppendInt(dst, ts.UnixMilli(), 10)
	return append(dst, m.txValSuf...)
}

// AppendTxEnd appends an END transaction metadata value with the event counts per table, given in
// the order of their first events. Debezium keeps the counts in a java.util.HashMap keyed by the
// collection name (TransactionContext.perTableEventCount) and lists them in its iteration order;
// so does pgcdc (the counts are reordered in place).
func (m *MetaEncoder) AppendTxEnd(dst []byte, id string, ts time.Time, total int64, counts []CollectionCount) []byte {
	hashMapOrder(counts)
	dst = append(dst, m.txValPre...)
	dst = append(dst, `"status":"END","id":`...)
	dst = appendJSONString(dst, id)
	dst = append(dst, `,"event_count":`...)
	dst = strconv.AppendInt(dst, total, 10)
	dst = append(dst, `,"data_collections":[`...)
	for i, c := range counts {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"data_collection":`...)
		dst = appendJSONString(dst, c.Collection)
		dst = append(dst, `,"event_count":`...)
		dst = strconv.AppendInt(dst, c.Events, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"ts_ms":`...)
	dst = strconv.AppendInt(dst, ts.UnixMilli(), 10)
	return append(dst, m.txValSuf...)
}

var (
	heartbeatKeySchema   = &connectSchema{typ: "struct", name: "io.debezium.connector.common.ServerNameKey", fields: []connectField{{"serverName", strReq}}}
	heartbeatValueSchema = &connectSchema{typ: "struct", name: "io.debezium.connector.common.Heartbeat", fields: []connectField{{"ts_ms", int64Req}}}
)

// HeartbeatTopic is Debezium's heartbeat topic, __debezium-heartbeat.<prefix>.
func (m *MetaEncoder) HeartbeatTopic() string {
	return SanitizeTopic("__debezium-heartbeat." + m.opts.TopicPrefix)
}

// AppendHeartbeatKey appends a heartbeat record's key: {"serverName": <prefix>}.
func (m *MetaEncoder) AppendHeartbeatKey(dst []byte) []byte {
	if m.opts.KeySchemas {
		dst = append(dst, `{"schema":`...)
		dst = appendSchemaJSON(dst, heartbeatKeySchema, "")
		dst = append(dst, `,"payload":`...)
	}
	dst = append(dst, `{"serverName":`...)
	dst = appendJSONString(dst, m.opts.TopicPrefix)
	dst = append(dst, '}')
	if m.opts.KeySchemas {
		dst = append(dst, '}')
	}
	return dst
}

// AppendHeartbeatValue appends a heartbeat record's value: {"ts_ms": ...}.
func (m *MetaEncoder) AppendHeartbeatValue(dst []byte, ts time.Time) []byte {
	if m.opts.ValueSchemas {
		dst = append(dst, `{"schema":`...)
		dst = appendSchemaJSON(dst, heartbeatValueSchema, "")
		dst = append(dst, `,"payload":`...)
	}
	dst = append(dst, `{"ts_ms":`...)
	dst = strconv.AppendInt(dst, ts.UnixMilli(), 10)
	dst = append(dst, '}')
	if m.opts.ValueSchemas {
		dst = append(dst, '}')
	}
	return dst
}

// hashMapOrder sorts counts (given in insertion order) into the iteration order of a
// java.util.HashMap<String, Long> built with the default constructor and filled in that order:
// by bucket (the spread String.hashCode masked by the table size, 16 doubled while the size
// exceeds three quarters of it), insertion order within a bucket.
func hashMapOrder(counts []CollectionCount) {
	capacity := 16
	for len(counts) > capacity*3/4 {
		capacity *= 2
	}
	bucket := func(c CollectionCount) uint32 { return javaSpreadHash([]byte(c.Collection)) & uint32(capacity-1) }
	for i := 1; i < len(counts); i++ { // stable insertion sort: transactions touch few tables
		for j := i; j > 0 && bucket(counts[j]) < bucket(counts[j-1]); j-- {
			counts[j], counts[j-1] = counts[j-1], counts[j]
		}
	}
}
