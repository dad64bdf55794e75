package route_test

import (
	"fmt"
	"testing"

	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
	"github.com/pgcdc/pgcdc/pkg/route"
)

// messageStep records the messages it sees and replaces those of prefix "ob" by a record of its
// own, as the outbox step does.
type messageStep struct{ seen []string }

func (s *messageStep) Apply(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	if ch.Kind != decode.KindMessage {
		return recs, nil
	}
	s.seen = append(s.seen, fmt.Sprintf("%s/%d", ch.Message.Prefix, len(recs)))
	if ch.Message.Prefix == "ob" {
		return append(recs[:0], kafkasink.Record{Topic: "routed", Key: []byte(`"k"`), Value: ch.Message.Content}), nil
	}
	return recs, nil
}

// Steps see every logical decoding message but pgcdc's heartbeats, with the <prefix>.message
// record when events.messages publishes it and without it otherwise.
func TestStepsSeeMessages(t *testing.T) {
	for _, messages := range []bool{true, false} {
		t.Run(fmt.Sprintf("events.messages=%v", messages), func(t *testing.T) {
			st := &messageStep{}
			o := options()
			o.Messages, o.HeartbeatTopic = messages, true
			o.Steps = []route.Step{st}
			r, err := route.New(o)
			if err != nil {
				t.Fatal(err)
			}
			got := runRouter(t, r, []step{
				{lsn: 100, kind: decode.KindBegin},
				{lsn: 110, kind: decode.KindMessage, msg: decode.Message{Prefix: "ob", Content: []byte(`{"a":1}`), Transactional: true}, txn: true},
				{lsn: 120, kind: decode.KindMessage, msg: decode.Message{Prefix: "other", Content: []byte(`x`), Transactional: true}, txn: true},
				{lsn: 130, kind: decode.KindMessage, msg: decode.Message{Prefix: route.HeartbeatPrefix, Transactional: true}, txn: true},
				{lsn: 200, kind: decode.KindCommit},
			})
			n := 0
			if messages {
				n = 1
			}
			if want := fmt.Sprintf("[ob/%d other/%d]", n, n); fmt.Sprint(st.seen) != want {
				t.Errorf("the step saw %v, want %s", st.seen, want)
			}
			if len(got) == 0 || got[0] != `routed key="k" value pgcdc.position=0` {
				t.Fatalf("records %q: want the step's record first", got)
			}
			if want := 2 + n; len(got) != want { // routed, other's message (if published), heartbeat
				t.Errorf("records %q: want %d", got, want)
			}
		})
	}
}
