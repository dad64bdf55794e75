package route

import (
	"fmt"
	"slices"

	"github.com/pgcdc/pgcdc/internal/dbzopt"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
)

// Shaping is how the router shapes each table's events as Debezium's connector options do:
// which columns are in the values (column.include.list / column.exclude.list), how their values
// are masked or cut (column.mask.with.N.chars, column.mask.hash[.v2].<algorithm>.with.salt.<salt>,
// column.truncate.to.N.chars), and which columns form the key (message.key.columns). Every name
// is matched as "<schema>.<table>.<column>", whole and case-insensitively. It applies when a
// relation's encoder is built, so to snapshot rows and streamed changes alike. A Shaping is
// immutable and may be shared by routers.
type Shaping struct {
	include, exclude dbzopt.Patterns
	mappers          []dbzopt.MapperRule
	keys             *dbzopt.KeyColumns
}

// ShapingOptions are the Debezium options, as Debezium writes them.
type ShapingOptions struct {
	ColumnIncludeList []string          // column.include.list (regular expressions, one per item)
	ColumnExcludeList []string          // column.exclude.list
	ColumnMappers     map[string]string // column.mask.* and column.truncate.* property => regular expressions (comma-separated)
	MessageKeyColumns string            // message.key.columns
}

// NewShaping checks and compiles o; errors name the Debezium option. It returns nil when o
// shapes nothing.
func NewShaping(o ShapingOptions) (*Shaping, error) {
	if len(o.ColumnIncludeList) == 0 && len(o.ColumnExcludeList) == 0 && len(o.ColumnMappers) == 0 && o.MessageKeyColumns == "" {
		return nil, nil
	}
	if len(o.ColumnIncludeList) > 0 && len(o.ColumnExcludeList) > 0 {
		return nil, fmt.Errorf("column.include.list and column.exclude.list cannot both be set")
	}
	s := &Shaping{}
	var err error
	if s.include, err = dbzopt.CompilePatterns(o.ColumnIncludeList); err != nil {
		return nil, fmt.Errorf("column.include.list: %w", err)
	}
	if s.exclude, err = dbzopt.CompilePatterns(o.ColumnExcludeList); err != nil {
		return nil, fmt.Errorf("column.exclude.list: %w", err)
	}
	if s.mappers, err = dbzopt.ParseMappers(o.ColumnMappers); err != nil {
		return nil, err
	}
	if s.keys, err = dbzopt.ParseKeyColumns(o.MessageKeyColumns); err != nil {
		return nil, fmt.Errorf("message.key.columns: %w", err)
	}
	return s, nil
}

// Table returns t shaped: its columns marked omitted or mapped, its key replaced when
// message.key.columns names columns of it. t is not changed.
func (s *Shaping) Table(t event.Table) event.Table {
	if s == nil {
		return t
	}
	t.Columns = slices.Clone(t.Columns)
	names := make([]string, len(t.Columns))
	for i := range t.Columns {
		c := &t.Columns[i]
		names[i] = c.Name
		full := t.Schema + "." + t.Name + "." + c.Name
		if len(s.include) > 0 && !s.include.Match(full) || s.exclude.Match(full) {
			c.Omit = true
		}
		for _, m := range s.mappers {
			if m.Columns.Match(full) {
				c.Mapper = mapperOf(m)
				break
			}
		}
	}
	if key := s.keys.Columns(t.Schema, t.Name, names); key != nil {
		t.Key = key
	}
	return t
}

func mapperOf(m dbzopt.MapperRule) *event.Mapper {
	switch m.Kind {
	case dbzopt.MapTruncate:
		return &event.Mapper{Kind: event.Truncate, N: m.N}
	case dbzopt.MapMask:
		return &event.Mapper{Kind: event.MaskChars, N: m.N}
	case dbzopt.MapHash:
		return &event.Mapper{Kind: event.HashV1, NewHash: m.NewHash, Salt: []byte(m.Salt)}
	}
	return &event.Mapper{Kind: event.HashV2, NewHash: m.NewHash, Salt: []byte(m.Salt)}
}

// TableShaper is implemented by steps that change how a relation's events are encoded: the
// names of its schemas and fields added to its key (ByLogicalTableRouter). The router calls
// ShapeTable when it builds the relation's encoder, with the table as Options.Shaping left it
// and its data topic.
type TableShaper interface {
	ShapeTable(t *event.Table, topic string)
}

// shapeTable is rel's table as the router encodes it: Options.Shaping, then the TableShaper steps.
func (r *Router) shapeTable(rel *decode.Relation) event.Table {
	t := r.opts.Shaping.Table(rel.Table)
	topic := Topic(r.opts.Event.TopicPrefix, t.Schema, t.Name)
	for _, s := range r.opts.Steps {
		if ts, ok := s.(TableShaper); ok {
			ts.ShapeTable(&t, topic)
		}
	}
	for _, k := range t.Key {
		if c := t.Columns[k]; c.Mapper != nil && !r.logged["key "+rel.Name+"."+c.Name] {
			r.logged["key "+rel.Name+"."+c.Name] = true
			r.opts.Log.Warn().Str("table", rel.Name).Str("column", c.Name).
				Msg("a masked or truncated column is part of the key: the key (and the __debezium.oldkey/newkey headers) carries its real value, as in Debezium; choose other key columns with tables.message_key_columns")
		}
	}
	return t
}
