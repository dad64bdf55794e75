package check

import (
	"strings"
	"testing"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

func kafkaCfg() config.KafkaConfig {
	c := config.Default().Kafka
	c.Brokers = []string{"k1:9092"}
	return c
}

func TestJudgeTopic(t *testing.T) {
	tests := []struct {
		name  string
		s     topicSettings
		acks  string
		wants []string // substrings of WARN messages, in order; none: no warning
	}{
		{"durable, keeps all", topicSettings{Replication: 3, MinISR: 2, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: -1}, "all", nil},
		{"rf 1", topicSettings{Replication: 1, MinISR: 1, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: -1}, "all", []string{"replication factor 1"}},
		{"min isr 1", topicSettings{Replication: 3, MinISR: 1, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: -1}, "all", []string{"min.insync.replicas 1"}},
		{"min isr = rf", topicSettings{Replication: 3, MinISR: 3, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: -1}, "all", []string{"one broker down stops every write"}},
		{"retention ms", topicSettings{Replication: 3, MinISR: 2, CleanupPolicy: "delete", RetentionMs: 604800000, RetentionBytes: -1}, "all", []string{"retention.ms 604800000 (168h0m0s)"}},
		{"retention bytes", topicSettings{Replication: 3, MinISR: 2, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: 1 << 30}, "all", []string{"retention.bytes 1073741824"}},
		{"compact ignores retention", topicSettings{Replication: 3, MinISR: 2, CleanupPolicy: "compact", RetentionMs: 1000, RetentionBytes: -1}, "all", nil},
		{"compact,delete keeps retention", topicSettings{Replication: 3, MinISR: 2, CleanupPolicy: "compact,delete", RetentionMs: 1000, RetentionBytes: -1}, "all", []string{"retention.ms 1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{}
			k := kafkaCfg()
			k.Acks = tt.acks
			judgeTopic(r, "topic x", "x", tt.s, k, false)
			var warns []Finding
			for _, f := range r.Findings {
				if f.Severity == Warn {
					warns = append(warns, f)
				}
			}
			if len(warns) != len(tt.wants) {
				t.Fatalf("warnings %+v, want %q", warns, tt.wants)
			}
			for i, w := range tt.wants {
				if !strings.Contains(warns[i].Message, w) || warns[i].Fix == "" {
					t.Errorf("warning %d: %+v, want %q and a fix", i, warns[i], w)
				}
			}
		})
	}
	// For topics pgcdc creates, the fix names the configuration key.
	r := &Report{}
	judgeTopic(r, "planned", "", topicSettings{Replication: 3, MinISR: 1, CleanupPolicy: "delete", RetentionMs: -1, RetentionBytes: -1}, kafkaCfg(), true)
	if len(r.Findings) != 1 || r.Findings[0].Fix != "kafka.topic_config: min.insync.replicas: 2" {
		t.Errorf("planned: %+v", r.Findings)
	}
}

// A compacted topic rejects null keys: keyless tables and truncate events are refused.
func TestJudgeKeys(t *testing.T) {
	byTopic := map[string]pgsource.Table{
		"p.public.k":  {Schema: "public", Name: "k", Identity: 'd', HasKey: true},
		"p.public.nk": {Schema: "public", Name: "nk", Identity: 'f'},
	}
	cfg := config.Default()
	r := &Report{}
	judgeKeys(r, []string{"p.public.k", "p.public.nk"}, byTopic, topicSettings{CleanupPolicy: "compact"}, cfg)
	if r.Count(Fail) != 1 || !strings.Contains(r.Findings[0].Message, "public.nk has no key") {
		t.Errorf("findings %+v", r.Findings)
	}
	cfg.Events.Truncate = true
	r = &Report{}
	judgeKeys(r, []string{"p.public.k"}, byTopic, topicSettings{CleanupPolicy: "compact"}, cfg)
	if r.Count(Fail) != 1 || !strings.Contains(r.Findings[0].Message, "truncate") {
		t.Errorf("truncate: %+v", r.Findings)
	}
	r = &Report{}
	judgeKeys(r, []string{"p.public.nk"}, byTopic, topicSettings{CleanupPolicy: "delete"}, cfg)
	if len(r.Findings) != 0 {
		t.Errorf("delete policy: %+v", r.Findings)
	}
}

func TestReportWrite(t *testing.T) {
	r := &Report{}
	r.add(OK, "postgres", "", "fine")
	r.add(Warn, "topic", "do this", "risky")
	var b strings.Builder
	_ = r.Write(&b)
	if !strings.Contains(b.String(), "WARN  topic       risky\n                  fix: do this\n") || !strings.Contains(b.String(), "No problem, 1 warning") {
		t.Errorf("report:\n%s", b.String())
	}
	r.add(Fail, "role", "ALTER ROLE", "no replication")
	b.Reset()
	_ = r.Write(&b)
	if !r.Failed() || !strings.Contains(b.String(), "1 problem, 1 warning: pgcdc cannot run correctly") {
		t.Errorf("report:\n%s", b.String())
	}
	if BytesString(1536) != "1.5 KiB" || BytesString(10) != "10 B" || BytesString(3<<30) != "3.0 GiB" {
		t.Errorf("bytesString: %s %s %s", BytesString(1536), BytesString(10), BytesString(3<<30))
	}
}

func TestJudgeSlotLag(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name   string
		st     pgsource.SlotInfo
		sev    Severity
		substr string
	}{
		{"inactive, close", pgsource.SlotInfo{Name: "s", ServerWALEnd: 10 << 20, ConfirmedFlush: 9 << 20, RestartLSN: 9 << 20, WALStatus: "reserved"}, OK, "1.0 MiB behind"},
		{"inactive, lag over", pgsource.SlotInfo{Name: "s", ServerWALEnd: 3 * gib, ConfirmedFlush: 1 << 20, RestartLSN: 1 << 20, WALStatus: "extended"}, Warn, "inactive and far behind"},
		{"inactive, retained over", pgsource.SlotInfo{Name: "s", ServerWALEnd: 3 * gib, ConfirmedFlush: 3*gib - 1, RestartLSN: 1 << 20, WALStatus: "extended"}, Warn, "3.0 GiB of WAL retained"},
		{"active, over", pgsource.SlotInfo{Name: "s", Active: true, ServerWALEnd: 3 * gib, ConfirmedFlush: 1 << 20, RestartLSN: 1 << 20, WALStatus: "extended"}, Info, "catching up"},
	}
	for _, tt := range tests {
		r := &Report{}
		judgeSlotLag(r, tt.st, gib)
		if len(r.Findings) != 1 || r.Findings[0].Severity != tt.sev || !strings.Contains(r.Findings[0].Message, tt.substr) {
			t.Errorf("%s: %+v, want %s with %q", tt.name, r.Findings, tt.sev, tt.substr)
		}
	}
}

func TestJudgeRowSize(t *testing.T) {
	tbl := pgsource.Table{Schema: "public", Name: "t"}
	tests := []struct {
		name    string
		rs      rowSize
		max     int64
		schemas bool
		sev     Severity
	}{
		{"fits", rowSize{bytes: 1000, columns: 3, sampled: 100}, 1 << 20, true, OK},
		{"values alone too large", rowSize{bytes: 2 << 20, columns: 3, sampled: 100}, 1 << 20, false, Fail},
		{"with schema too large", rowSize{bytes: 1<<20 - 2000, columns: 20, sampled: 100}, 1 << 20, true, Warn},
		{"full identity doubles", rowSize{bytes: 600 << 10, columns: 2, sampled: 5, full: true}, 1 << 20, false, Warn},
	}
	for _, tt := range tests {
		r := &Report{}
		judgeRowSize(r, "p.public.t", tbl, tt.rs, tt.max, tt.schemas, "fix it")
		if len(r.Findings) != 1 || r.Findings[0].Severity != tt.sev {
			t.Errorf("%s: %+v, want %s", tt.name, r.Findings, tt.sev)
		}
	}
	if n := suggestMaxMessage(rowSize{bytes: 3 << 20, columns: 2}, false); n != 4<<20 {
		t.Errorf("suggestMaxMessage = %d, want 4 MiB", n)
	}
}
