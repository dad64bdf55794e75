package connector

import (
	"fmt"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/dbzopt"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/route"
)

// shaping is the event shaping of the configuration (tables.column_*, message_key_columns,
// events.skipped_operations, format, unwrap, changed_fields, regex_router,
// logical_table_router), built once in New: the pipeline's router and the snapshot workers'
// share it (its parts are immutable or safe for concurrent use).
type shaping struct {
	columns  *route.Shaping
	steps    []route.Step // ByLogicalTableRouter, then RegexRouter
	unwrap   *route.Unwrap
	skipped  map[event.Op]bool
	truncate bool
	changed  config.ChangedFieldsConfig
}

func newShaping(cfg config.Config) (*shaping, error) {
	t, e := cfg.Tables, cfg.Events
	s := &shaping{truncate: e.TruncatePublished(), changed: e.ChangedFields}
	var err error
	if s.columns, err = route.NewShaping(route.ShapingOptions{
		ColumnIncludeList: dbzopt.SplitList(t.ColumnIncludeList),
		ColumnExcludeList: dbzopt.SplitList(t.ColumnExcludeList),
		ColumnMappers:     t.ColumnMappers,
		MessageKeyColumns: t.MessageKeyColumns,
	}); err != nil {
		return nil, fmt.Errorf("tables: %w", err)
	}
	if e.SkippedOperations != "" {
		skip, err := dbzopt.ParseSkippedOperations(e.SkippedOperations)
		if err != nil {
			return nil, fmt.Errorf("events.skipped_operations: %w", err)
		}
		s.skipped = map[event.Op]bool{}
		for _, op := range []event.Op{event.OpCreate, event.OpUpdate, event.OpDelete} {
			s.skipped[op] = skip[byte(op)]
		}
	}
	if e.Unwrapped() {
		u := e.Unwrap
		if s.unwrap, err = route.NewUnwrap(route.UnwrapOptions{
			DeleteTombstoneHandlingMode: u.DeleteTombstoneHandlingMode,
			AddFields:                   u.AddFields, AddFieldsPrefix: u.AddFieldsPrefix,
			AddHeaders: u.AddHeaders, AddHeadersPrefix: u.AddHeadersPrefix,
			DropFieldsHeaderName: u.DropFieldsHeaderName, DropFieldsFromKey: u.DropFieldsFromKey,
			DropFieldsKeepSchemaCompatible: u.DropFieldsKeepSchemaCompatible,
		}, e.ChangedFields.HeaderChangedName, e.ChangedFields.HeaderUnchangedName); err != nil {
			return nil, fmt.Errorf("events.unwrap: %w", err)
		}
	}
	if l := e.LogicalTableRouter; l.TopicRegex != "" {
		r, err := route.NewLogicalTableRouter(route.LogicalTableRouterOptions{
			TopicRegex: l.TopicRegex, TopicReplacement: l.TopicReplacement, KeyEnforceUniqueness: l.KeyEnforceUniqueness,
			KeyFieldName: l.KeyFieldName, KeyFieldRegex: l.KeyFieldRegex, KeyFieldReplacement: l.KeyFieldReplacement,
		})
		if err != nil {
			return nil, fmt.Errorf("events.logical_table_router: %w", err)
		}
		s.steps = append(s.steps, r)
	}
	if rr := e.RegexRouter; rr.Regex != "" {
		r, err := route.NewRegexRouter(rr.Regex, rr.Replacement)
		if err != nil {
			return nil, fmt.Errorf("events.regex_router: %w", err)
		}
		s.steps = append(s.steps, r)
	}
	return s, nil
}

// apply puts the shaping into a router's options.
func (s *shaping) apply(o *route.Options) {
	o.Shaping, o.Unwrap, o.SkippedOperations, o.Truncate = s.columns, s.unwrap, s.skipped, s.truncate
	o.ChangedHeader, o.UnchangedHeader = s.changed.HeaderChangedName, s.changed.HeaderUnchangedName
	o.Steps = append(o.Steps, s.steps...)
}
