package connector

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/outbox"
	"github.com/pgcdc/pgcdc/pkg/pgsource"
)

// newOutbox validates the outbox configuration; nil when nothing is routed as outbox events. ev
// gives the topic prefix, the converter's schema settings and the type modes (its Database, not
// known before start-up, is not used: outbox records carry no source block).
func newOutbox(cfg config.Config, ev event.Options, log zerolog.Logger) (*outbox.Router, error) {
	o := cfg.Outbox
	if !o.Enabled() {
		return nil, nil
	}
	opts := outbox.FromConfig(o)
	opts.Event, opts.Log = ev, log.With().Str("component", "outbox").Logger()
	return outbox.New(opts)
}

// checkOutboxTables fails when an outbox table is not among the captured tables.
func (c *Connector) checkOutboxTables(captured []pgsource.Table) error {
	for _, name := range c.cfg.Outbox.Tables {
		found := false
		for _, t := range captured {
			found = found || t.String() == name
		}
		if !found {
			return fmt.Errorf("outbox.tables: table %s does not exist or cannot be captured (see the log), so its events would never be routed", name)
		}
	}
	return nil
}

// publishesTableTopic reports whether t's change events go to its table topic: not an outbox
// table's, unless outbox.raw_events.
func (c *Connector) publishesTableTopic(t pgsource.Table) bool {
	return c.outbox == nil || c.outbox.RawEvents() || !c.outbox.IsTable(t.String())
}
