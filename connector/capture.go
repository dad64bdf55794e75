package connector

import (
	"sync"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// capturedOnly is the route step that drops the changes of tables tables.include does not select,
// for publications that carry more than the captured tables (publication_mode all_tables,
// disabled, no_tables). A partition counts as selected when its partitioned table is. Snapshot
// workers share it: the verdicts are cached per relation version in a sync.Map.
type capturedOnly struct {
	tables  config.TablesConfig
	verdict sync.Map // *decode.Relation -> bool
}

func (f *capturedOnly) captured(rel *decode.Relation) bool {
	if v, ok := f.verdict.Load(rel); ok {
		return v.(bool)
	}
	ok := f.tables.Matches(rel.Table.Schema, rel.Table.Name)
	if !ok && rel.Root != "" {
		if schema, name, found := cut(rel.Root); found {
			ok = f.tables.Matches(schema, name)
		}
	}
	f.verdict.Store(rel, ok)
	return ok
}

func cut(qualified string) (schema, name string, ok bool) {
	for i := 0; i < len(qualified); i++ {
		if qualified[i] == '.' {
			return qualified[:i], qualified[i+1:], true
		}
	}
	return "", "", false
}

// Keep drops row changes of tables that are not captured before they are encoded.
func (f *capturedOnly) Keep(ch *decode.Change) bool {
	return ch.Relation == nil || f.captured(ch.Relation)
}

// Apply drops the TRUNCATE events of tables that are not captured (one TRUNCATE can name several).
func (f *capturedOnly) Apply(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	if ch.Kind != decode.KindTruncate {
		return recs, nil
	}
	kept := recs[:0]
	for _, r := range recs {
		for _, rel := range ch.Relations {
			if rel.Name == r.Table && f.captured(rel) {
				kept = append(kept, r)
				break
			}
		}
	}
	return kept, nil
}
