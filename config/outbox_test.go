package config

import (
	"strings"
	"testing"
)

func TestValidateOutbox(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // one FieldError's text starts with it
	}{
		{"table not exact", func(c *Config) { c.Outbox.Tables = []string{"public.out*"} }, `outbox.tables[0]: "public.out*": want an exact schema.table name`},
		{"table not captured", func(c *Config) {
			c.Tables.Exclude = []string{"public.outbox"}
			c.Outbox.Tables = []string{"public.outbox"}
		}, "outbox.tables[0]: public.outbox is not captured"},
		{"prefix regexp", func(c *Config) { c.Outbox.Messages.Prefixes = []string{"("} }, `outbox.messages.prefixes[0]: invalid regular expression "("`},
		{"topic regexp", func(c *Config) { c.Outbox.TopicRegex = "(?=x)" }, `outbox.topic_regex: invalid regular expression`},
		{"replacement group", func(c *Config) { c.Outbox.TopicReplacement = "x.${nope}" }, `outbox.topic_replacement: "x.${nope}" refers to group "nope"`},
		{"additional syntax", func(c *Config) { c.Outbox.AdditionalFields = []string{"type"} }, `outbox.additional_fields[0]: "type": want column:placement`},
		{"additional placement", func(c *Config) { c.Outbox.AdditionalFields = []string{"type:partition"} }, `outbox.additional_fields[0]: invalid value "partition" (allowed: header, envelope)`},
		{"op invalid", func(c *Config) { c.Outbox.OpInvalidBehavior = "ignore" }, `outbox.op_invalid_behavior: invalid value "ignore"`},
		{"invalid event", func(c *Config) { c.Outbox.InvalidEvent = "drop" }, `outbox.invalid_event: invalid value "drop" (allowed: fail, skip)`},
		{"null fields", func(c *Config) { c.Outbox.JSONNullFields = "keep" }, `outbox.json_null_fields: invalid value "keep"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			fes := FieldErrors(c.Validate())
			if len(fes) != 1 || !strings.HasPrefix(fes[0].Error(), tt.want) {
				t.Fatalf("got %v, want one problem starting with %q", fes, tt.want)
			}
		})
	}
	c := valid()
	c.Outbox.Tables = []string{"public.outbox"}
	c.Outbox.Messages.Prefixes = []string{"orders|billing"}
	c.Outbox.AdditionalFields = []string{"type:header:eventType", "seq:Envelope"}
	if err := c.Validate(); err != nil {
		t.Fatalf("a valid outbox configuration: %v", err)
	}
}

func TestOutboxFromEnv(t *testing.T) {
	cfg, err := Load("", []string{
		"PGCDC_POSTGRES_DSN=postgres://u@h/db", "PGCDC_KAFKA_BROKERS=k:9092", "PGCDC_KAFKA_TOPIC_PREFIX=app",
		"PGCDC_OUTBOX_TABLES=public.outbox", "PGCDC_OUTBOX_MESSAGES_PREFIXES=orders",
		"PGCDC_OUTBOX_ADDITIONAL_FIELDS=type:header:eventType,seq:envelope", "PGCDC_OUTBOX_TOPIC_REPLACEMENT=events.${routedByValue}",
	})
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Outbox
	if !o.Enabled() || o.Tables[0] != "public.outbox" || o.Messages.Prefixes[0] != "orders" || len(o.AdditionalFields) != 2 ||
		o.TopicReplacement != "events.${routedByValue}" || o.RouteByField != "aggregatetype" {
		t.Fatalf("outbox from the environment: %+v", o)
	}
}
