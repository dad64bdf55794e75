package route

import (
	"fmt"
	"slices"
	"sync"

	"github.com/pgcdc/pgcdc/internal/dbzopt"
	"github.com/pgcdc/pgcdc/pkg/decode"
	"github.com/pgcdc/pgcdc/pkg/event"
	"github.com/pgcdc/pgcdc/pkg/kafkasink"
)

// TopicRenamer is implemented by steps that move records to other topics; RenameTopic gives the
// topic a record of topic goes to. The connector asks them for the topics to create at start-up.
type TopicRenamer interface {
	RenameTopic(topic string) string
}

// RenameTopic passes a data topic through the renaming steps, in order.
func RenameTopic(steps []Step, topic string) string {
	for _, s := range steps {
		if tr, ok := s.(TopicRenamer); ok {
			topic = tr.RenameTopic(topic)
		}
	}
	return topic
}

// topicCache remembers renames: a few topics, many records. Safe for concurrent use (the
// snapshot workers' routers share the steps).
type topicCache struct{ m sync.Map }

func (c *topicCache) get(topic string, rename func(string) string) string {
	if v, ok := c.m.Load(topic); ok {
		return v.(string)
	}
	v := rename(topic)
	c.m.Store(topic, v)
	return v
}

// RegexRouter is Kafka Connect's RegexRouter (org.apache.kafka.connect.transforms.RegexRouter)
// as a route step: a record whose topic the regular expression matches entirely goes to the
// replacement (Java's syntax: $1, ${name}); other records keep theirs. Partitions follow the key
// bytes in the new topic. It applies to the table topics (change events, tombstones); pgcdc's
// message, transaction and heartbeat topics keep their names. Safe for concurrent use.
type RegexRouter struct {
	rw    *dbzopt.Rewrite
	cache topicCache
}

// NewRegexRouter compiles RegexRouter's regex and replacement.
func NewRegexRouter(regex, replacement string) (*RegexRouter, error) {
	rw, err := dbzopt.NewRewrite(regex, replacement)
	if err != nil {
		return nil, fmt.Errorf("RegexRouter: %w", err)
	}
	return &RegexRouter{rw: rw}, nil
}

// RenameTopic returns the topic records of topic go to.
func (r *RegexRouter) RenameTopic(topic string) string {
	return r.cache.get(topic, func(t string) string {
		out, _ := r.rw.Apply(t)
		return out
	})
}

// Apply moves the records to their new topics.
func (r *RegexRouter) Apply(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	return renameRecords(ch, recs, r.RenameTopic)
}

// renameRecords moves the records of a table's change (row changes, truncates, snapshot rows) to
// the topics rename gives; the records of other kinds (logical decoding messages) keep theirs.
func renameRecords(ch *decode.Change, recs []kafkasink.Record, rename func(string) string) ([]kafkasink.Record, error) {
	if ch.Kind == decode.KindMessage {
		return recs, nil
	}
	for i := range recs {
		t := rename(recs[i].Topic)
		if t == "" {
			return recs, fmt.Errorf("topic %s is renamed to an empty name: check the topic router's replacement", recs[i].Topic)
		}
		recs[i].Topic = t
	}
	return recs, nil
}

// LogicalTableRouter is Debezium's ByLogicalTableRouter (io.debezium.transforms.ByLogicalTableRouter)
// as a route step: the records of the tables whose topics TopicRegex matches entirely go to one
// topic, TopicReplacement (e.g. the shards of a table to one logical table). The key and envelope
// schemas are named after the new topic (<topic>.Key, <topic>.Value, <topic>.Envelope), and with
// KeyEnforceUniqueness (Debezium's default) the key gets a field KeyFieldName
// (default __dbz__physicalTableIdentifier) holding the old topic, or its KeyFieldRegex /
// KeyFieldReplacement rewrite, so that rows of different tables keep distinct keys. Tables
// without a key keep a null key. A replacement giving an empty name leaves the record as it is.
// Safe for concurrent use.
type LogicalTableRouter struct {
	topic        *dbzopt.Rewrite
	keyField     *dbzopt.Rewrite // nil: the old topic is the identifier
	keyFieldName string
	enforce      bool
	cache        topicCache
}

// LogicalTableRouterOptions are ByLogicalTableRouter's options.
type LogicalTableRouterOptions struct {
	TopicRegex, TopicReplacement string // topic.regex, topic.replacement (required)
	KeyEnforceUniqueness         bool   // key.enforce.uniqueness (Debezium's default true)
	KeyFieldName                 string // key.field.name; "" is __dbz__physicalTableIdentifier
	KeyFieldRegex                string // key.field.regex
	KeyFieldReplacement          string // key.field.replacement (required with key.field.regex)
}

// DefaultKeyFieldName is ByLogicalTableRouter's key.field.name default.
const DefaultKeyFieldName = "__dbz__physicalTableIdentifier"

// NewLogicalTableRouter checks and compiles o; errors name the Debezium option.
func NewLogicalTableRouter(o LogicalTableRouterOptions) (*LogicalTableRouter, error) {
	if o.TopicRegex == "" {
		return nil, fmt.Errorf("ByLogicalTableRouter: topic.regex is required")
	}
	l := &LogicalTableRouter{keyFieldName: o.KeyFieldName, enforce: o.KeyEnforceUniqueness}
	if l.keyFieldName == "" {
		l.keyFieldName = DefaultKeyFieldName
	}
	var err error
	if l.topic, err = dbzopt.NewRewrite(o.TopicRegex, o.TopicReplacement); err != nil {
		return nil, fmt.Errorf("ByLogicalTableRouter topic.regex/topic.replacement: %w", err)
	}
	if o.KeyFieldRegex != "" {
		if o.KeyFieldReplacement == "" {
			return nil, fmt.Errorf("ByLogicalTableRouter: key.field.replacement must be non-empty if key.field.regex is set")
		}
		if l.keyField, err = dbzopt.NewRewrite(o.KeyFieldRegex, o.KeyFieldReplacement); err != nil {
			return nil, fmt.Errorf("ByLogicalTableRouter key.field.regex/key.field.replacement: %w", err)
		}
	}
	return l, nil
}

// RenameTopic returns the logical table's topic for topic (topic itself when the regex does not
// match it or gives an empty name).
func (l *LogicalTableRouter) RenameTopic(topic string) string {
	return l.cache.get(topic, func(t string) string {
		if out, ok := l.topic.Apply(t); ok && out != "" {
			return out
		}
		return t
	})
}

// ShapeTable names the table's schemas after its new topic and adds the physical table
// identifier to its key.
func (l *LogicalTableRouter) ShapeTable(t *event.Table, topic string) {
	newTopic, ok := l.topic.Apply(topic)
	if !ok || newTopic == "" {
		return
	}
	t.SchemaName = newTopic
	if !l.enforce || len(t.Key) == 0 {
		return
	}
	id := topic
	if l.keyField != nil {
		if v, ok := l.keyField.Apply(topic); ok {
			id = v
		}
	}
	t.KeyFields = append(slices.Clone(t.KeyFields), event.KeyField{Name: l.keyFieldName, Value: id})
}

// Apply moves the records to the logical table's topic.
func (l *LogicalTableRouter) Apply(ch *decode.Change, recs []kafkasink.Record) ([]kafkasink.Record, error) {
	return renameRecords(ch, recs, l.RenameTopic)
}
