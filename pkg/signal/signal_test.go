package signal

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Signals as Debezium's documentation writes them parse into what pgcdc acts on; malformed ones
// are errors that name the field.
func TestParse(t *testing.T) {
	cases := []struct {
		typ, data string
		want      Signal
		err       string
	}{
		{TypeExecuteSnapshot, `{"data-collections": ["public.orders", " public.items "], "type": "incremental"}`,
			Signal{Type: TypeExecuteSnapshot, Snapshot: Snapshot{Kind: KindIncremental, Collections: []string{"public.orders", "public.items"}}}, ""},
		{TypeExecuteSnapshot, `{"data-collections": ["public.orders"]}`, // type defaults to incremental
			Signal{Type: TypeExecuteSnapshot, Snapshot: Snapshot{Kind: KindIncremental, Collections: []string{"public.orders"}}}, ""},
		{TypeExecuteSnapshot, `{"data-collections": ["public.orders"], "type": "BLOCKING", "additional-conditions": [{"data-collection": "public.orders", "filter": "region = 'eu'"}], "surrogate-key": "code"}`,
			Signal{Type: TypeExecuteSnapshot, Snapshot: Snapshot{Kind: KindBlocking, Collections: []string{"public.orders"},
				Conditions: []Condition{{Collection: "public.orders", Filter: "region = 'eu'"}}, SurrogateKey: "code"}}, ""},
		{TypeStopSnapshot, `{"type": "incremental"}`, Signal{Type: TypeStopSnapshot, Snapshot: Snapshot{Kind: KindIncremental}}, ""},
		{TypePauseSnapshot, `{}`, Signal{Type: TypePauseSnapshot}, ""},
		{TypeResumeSnapshot, `{}`, Signal{Type: TypeResumeSnapshot}, ""},
		{TypeLog, `{"message": "hello"}`, Signal{Type: TypeLog, Message: "hello"}, ""},
		{TypeExecuteSnapshot, `{"data-collections": []}`, Signal{}, "data-collections is missing or empty"},
		{TypeExecuteSnapshot, `{"data-collections": ["a.b"], "type": "full"}`, Signal{}, "data.type must be incremental or blocking"},
		{TypeExecuteSnapshot, `{"data-collections": ["a.b"], "additional-conditions": [{"data-collection": "a.b"}]}`, Signal{}, "additional-conditions[0] needs data-collection and filter"},
		{TypeExecuteSnapshot, `not json`, Signal{}, "not a JSON object"},
		{TypeLog, `{}`, Signal{}, "data.message is missing"},
		{"reboot", `{}`, Signal{}, `unknown type "reboot"`},
	}
	for _, c := range cases {
		got, err := Parse("id1", c.typ, []byte(c.data))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: error %v, want %q", c.typ, c.data, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", c.typ, c.data, err)
			continue
		}
		c.want.ID, c.want.Offset = "id1", -1
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", c.typ, c.data, got, c.want)
		}
	}
}

// What pgcdc snapshot sends parses back into the same request; a Kafka record carries the data as
// a JSON object, as Debezium's channel reads it.
func TestRoundTrip(t *testing.T) {
	data := ExecuteData([]string{"public.a", "public.b"}, map[string]string{"public.b": "x > 1"}, true, "code")
	s, err := Parse("i", TypeExecuteSnapshot, data)
	if err != nil {
		t.Fatal(err)
	}
	want := Snapshot{Kind: KindBlocking, Collections: []string{"public.a", "public.b"}, Conditions: []Condition{{"public.b", "x > 1"}}, SurrogateKey: "code"}
	if !reflect.DeepEqual(s.Snapshot, want) {
		t.Errorf("got %+v", s.Snapshot)
	}
	if s, err := Parse("i", TypeStopSnapshot, StopData(nil)); err != nil || len(s.Snapshot.Collections) != 0 {
		t.Errorf("stop all: %+v %v", s, err)
	}
	rec, _ := json.Marshal(Record{ID: "k1", Type: TypeExecuteSnapshot, Data: data})
	if !strings.Contains(string(rec), `"data":{"data-collections"`) {
		t.Errorf("record data is not an object: %s", rec)
	}
	s, err = ParseRecord(rec)
	if err != nil || s.ID != "k1" || !reflect.DeepEqual(s.Snapshot, want) {
		t.Errorf("record: %+v %v", s, err)
	}
	if s, err := ParseRecord([]byte(`{"id":"p","type":"pause-snapshot"}`)); err != nil || s.Type != TypePauseSnapshot {
		t.Errorf("record without data: %+v %v", s, err)
	}
	for _, bad := range []string{`[]`, `{"id":"x"}`} {
		if _, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if !Ignored(TypeWindowOpen) || !Ignored(TypeWindowClose) || Ignored(TypeLog) {
		t.Error("Ignored")
	}
	if r, err := FromRow("r1", TypeLog, []byte(`{"message":"m"}`)); err != nil || r.Channel != ChannelSource || r.Message != "m" {
		t.Errorf("FromRow: %+v %v", r, err)
	}
}
