package signal

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Signal types (Debezium's names).
const (
	TypeExecuteSnapshot = "execute-snapshot"
	TypeStopSnapshot    = "stop-snapshot"
	TypePauseSnapshot   = "pause-snapshot"
	TypeResumeSnapshot  = "resume-snapshot"
	TypeLog             = "log"
	// Debezium's own watermarks, written to its signal table during its incremental snapshots: a
	// signal table shared with a Debezium connector holds them; pgcdc ignores them.
	TypeWindowOpen  = "snapshot-window-open"
	TypeWindowClose = "snapshot-window-close"
)

// Snapshot kinds of execute-snapshot and stop-snapshot.
const (
	KindIncremental = "incremental"
	KindBlocking    = "blocking"
)

// Channels a signal comes from.
const (
	ChannelSource = "source" // the signal table, through the replication stream
	ChannelKafka  = "kafka"  // the Kafka signal topic
	ChannelAPI    = "api"    // a call of the program embedding pgcdc (incremental.Snapshotter.Request)
)

// Signal is one signal, parsed.
type Signal struct {
	ID      string
	Type    string
	Channel string
	Offset  int64 // the Kafka channel's record offset; -1 for the other channels

	Snapshot Snapshot // execute-snapshot, stop-snapshot
	Message  string   // log
}

// Snapshot is the data of execute-snapshot and stop-snapshot.
type Snapshot struct {
	Kind string // KindIncremental or KindBlocking
	// Collections are regular expressions matched against whole "schema.table" names (Debezium's
	// data-collections). Empty in a stop-snapshot: every table.
	Collections []string
	Conditions  []Condition // additional-conditions
	// SurrogateKey is a column that chunks a table instead of its primary key (surrogate-key).
	SurrogateKey string
}

// Condition is one of additional-conditions: the rows of the tables whose "schema.table" matches
// Collection (a regular expression, case-insensitive, whole name) are read only where Filter (an
// SQL condition) holds.
type Condition struct {
	Collection string `json:"data-collection"`
	Filter     string `json:"filter"`
}

// snapshotData is execute-snapshot's data as Debezium reads it.
type snapshotData struct {
	Collections  []string    `json:"data-collections"`
	Type         string      `json:"type,omitempty"`
	Conditions   []Condition `json:"additional-conditions,omitempty"`
	Condition    string      `json:"additional-condition,omitempty"` // deprecated by Debezium; ignored with a warning there too
	SurrogateKey string      `json:"surrogate-key,omitempty"`
}

// Ignored reports whether a signal type is one pgcdc knowingly does nothing with (Debezium's own
// watermarks in a shared signal table).
func Ignored(typ string) bool { return typ == TypeWindowOpen || typ == TypeWindowClose }

// Parse reads a signal of type typ whose data is the JSON document data (the signal table's data
// column, or the Kafka record's data member). Errors name the field at fault.
func Parse(id, typ string, data []byte) (Signal, error) {
	s := Signal{ID: id, Type: typ, Offset: -1}
	switch typ {
	case TypeExecuteSnapshot, TypeStopSnapshot:
		var d snapshotData
		if err := decode(data, &d); err != nil {
			return s, fmt.Errorf("signal %s (%s): data: %w", id, typ, err)
		}
		kind := strings.ToLower(d.Type)
		if kind == "" {
			kind = KindIncremental
		}
		if kind != KindIncremental && kind != KindBlocking {
			return s, fmt.Errorf("signal %s (%s): data.type must be incremental or blocking, got %q", id, typ, d.Type)
		}
		for _, c := range d.Collections {
			if c = strings.TrimSpace(c); c != "" {
				s.Snapshot.Collections = append(s.Snapshot.Collections, c)
			}
		}
		if typ == TypeExecuteSnapshot && len(s.Snapshot.Collections) == 0 {
			return s, fmt.Errorf("signal %s (%s): data.data-collections is missing or empty", id, typ)
		}
		for i, c := range d.Conditions {
			if c.Collection == "" || strings.TrimSpace(c.Filter) == "" {
				return s, fmt.Errorf("signal %s (%s): data.additional-conditions[%d] needs data-collection and filter", id, typ, i)
			}
		}
		s.Snapshot.Kind, s.Snapshot.Conditions, s.Snapshot.SurrogateKey = kind, d.Conditions, strings.TrimSpace(d.SurrogateKey)
	case TypeLog:
		var d struct {
			Message string `json:"message"`
		}
		if err := decode(data, &d); err != nil {
			return s, fmt.Errorf("signal %s (log): data: %w", id, err)
		}
		if d.Message == "" {
			return s, fmt.Errorf("signal %s (log): data.message is missing or empty", id)
		}
		s.Message = d.Message
	case TypePauseSnapshot, TypeResumeSnapshot:
	default:
		return s, fmt.Errorf("signal %s: unknown type %q (known: execute-snapshot, stop-snapshot, pause-snapshot, resume-snapshot, log)", id, typ)
	}
	return s, nil
}

func decode(data []byte, v any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return fmt.Errorf("empty")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}

// ExecuteData returns the data of an execute-snapshot signal for tables ("schema.table"; they are
// matched as regular expressions, so their dots match themselves among others), read where
// filters[table] holds, blocking or incremental, chunked by surrogateKey when not "".
func ExecuteData(tables []string, filters map[string]string, blocking bool, surrogateKey string) []byte {
	d := snapshotData{Collections: tables, Type: KindIncremental, SurrogateKey: surrogateKey}
	if blocking {
		d.Type = KindBlocking
	}
	for _, t := range tables {
		if f := filters[t]; f != "" {
			d.Conditions = append(d.Conditions, Condition{Collection: t, Filter: f})
		}
	}
	b, _ := json.Marshal(d) // strings and slices only: cannot fail
	return b
}

// StopData returns the data of a stop-snapshot signal for tables (every table when none).
func StopData(tables []string) []byte {
	d := struct {
		Collections []string `json:"data-collections,omitempty"`
		Type        string   `json:"type"`
	}{tables, KindIncremental}
	b, _ := json.Marshal(d)
	return b
}
