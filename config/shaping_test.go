package config

import (
	"strings"
	"testing"
)

func TestShapingFromEnvironment(t *testing.T) {
	cfg, err := Load("", append(append([]string(nil), minimalEnv...),
		`PGCDC_TABLES_COLUMN_EXCLUDE_LIST=public\.users\.ssn, public\.x\.y{1\,3}`,
		"PGCDC_TABLES_COLUMN_MAPPERS=column.mask.with.8.chars=public.users.email,public.users.phone,column.truncate.to.20.chars=public.users.bio",
		"PGCDC_TABLES_MESSAGE_KEY_COLUMNS=public.audit:id,at",
		"PGCDC_EVENTS_SKIPPED_OPERATIONS=u,t",
		"PGCDC_EVENTS_FORMAT=io.debezium.transforms.ExtractNewRecordState",
		"PGCDC_EVENTS_UNWRAP_DELETE_TOMBSTONE_HANDLING_MODE=rewrite",
		"PGCDC_EVENTS_UNWRAP_ADD_FIELDS=op,source.ts_ms,lsn:pos",
		"PGCDC_EVENTS_REGEX_ROUTER_REGEX=app\\.public\\.(.*)",
		"PGCDC_EVENTS_REGEX_ROUTER_REPLACEMENT=pg.$1",
	))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Tables.ColumnMappers["column.mask.with.8.chars"]; got != "public.users.email,public.users.phone" {
		t.Errorf("mask mapper %q", got)
	}
	if got := cfg.Tables.ColumnMappers["column.truncate.to.20.chars"]; got != "public.users.bio" {
		t.Errorf("truncate mapper %q", got)
	}
	if !cfg.Events.Unwrapped() || cfg.Events.TruncatePublished() || len(cfg.Events.Unwrap.AddFields) != 3 {
		t.Errorf("events %+v", cfg.Events)
	}
}

func TestShapingValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		key  string
	}{
		{"both column lists", func(c *Config) { c.Tables.ColumnIncludeList, c.Tables.ColumnExcludeList = "a.b.c", "a.b.d" }, "tables.column_include_list"},
		{"bad column regex", func(c *Config) { c.Tables.ColumnExcludeList = "a(?=b)" }, "tables.column_exclude_list"},
		{"unknown mapper", func(c *Config) { c.Tables.ColumnMappers = map[string]string{"column.blur.with.3.chars": "a.b.c"} }, "tables.column_mappers"},
		{"unknown hash", func(c *Config) {
			c.Tables.ColumnMappers = map[string]string{"column.mask.hash.ROT13.with.salt.x": "a.b.c"}
		}, "tables.column_mappers"},
		{"bad key columns", func(c *Config) { c.Tables.MessageKeyColumns = "public.t" }, "tables.message_key_columns"},
		{"bad operation", func(c *Config) { c.Events.SkippedOperations = "r" }, "events.skipped_operations"},
		{"truncate and skipped t", func(c *Config) { c.Events.Truncate, c.Events.SkippedOperations = true, "t" }, "events.truncate"},
		{"bad format", func(c *Config) { c.Events.Format = "flat" }, "events.format"},
		{"bad delete mode", func(c *Config) { c.Events.Unwrap.DeleteTombstoneHandlingMode = "delete" }, "events.unwrap.delete_tombstone_handling_mode"},
		{"unknown added field", func(c *Config) { c.Events.Unwrap.AddFields = []string{"source.nope"} }, "events.unwrap.add_fields"},
		{"drop header not written", func(c *Config) { c.Events.Unwrap.DropFieldsHeaderName = "X" }, "events.unwrap.drop_fields_header_name"},
		{"regex router replacement", func(c *Config) { c.Events.RegexRouter = RegexRouterConfig{Regex: "(.*)", Replacement: "$2"} }, "events.regex_router"},
		{"logical router regex", func(c *Config) { c.Events.LogicalTableRouter.TopicReplacement = "x" }, "events.logical_table_router.topic_regex"},
		{"logical router key field", func(c *Config) {
			c.Events.LogicalTableRouter.TopicRegex, c.Events.LogicalTableRouter.KeyFieldRegex = "(.*)", "(.*)"
		}, "events.logical_table_router.key_field_replacement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.set(&c)
			errs := FieldErrors(c.Validate())
			if len(errs) != 1 || errs[0].Key != tc.key {
				t.Errorf("got %v, want one error for %s", errs, tc.key)
			}
		})
	}
	c := valid()
	c.Events.SkippedOperations = "none"
	if err := c.Validate(); err != nil || !c.Events.TruncatePublished() {
		t.Errorf("none: %v, truncates published %v", err, c.Events.TruncatePublished())
	}
	c.Events.ChangedFields.HeaderUnchangedName, c.Events.Unwrap.DropFieldsHeaderName = "Unchanged", "Unchanged"
	if err := c.Validate(); err != nil {
		t.Errorf("drop the unchanged fields: %v", err)
	}
	if !strings.Contains(FormatUnwrap, "ExtractNewRecordState") {
		t.Error(FormatUnwrap)
	}
}

func TestRedactedSalts(t *testing.T) {
	c := valid()
	c.Tables.ColumnMappers = map[string]string{"column.mask.hash.SHA-256.with.salt.s3cret": "a.b.c", "column.mask.with.3.chars": "a.b.d"}
	r := c.Redacted()
	if _, ok := r.Tables.ColumnMappers["column.mask.hash.SHA-256.with.salt.xxxxx"]; !ok || len(r.Tables.ColumnMappers) != 2 {
		t.Errorf("redacted %v", r.Tables.ColumnMappers)
	}
	if _, ok := c.Tables.ColumnMappers["column.mask.hash.SHA-256.with.salt.s3cret"]; !ok {
		t.Error("Redacted changed the original")
	}
}
