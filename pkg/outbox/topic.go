package outbox

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// topicRouter is Kafka Connect's RegexRouter as the EventRouter configures it
// (route.topic.regex, route.topic.replacement): when the regular expression matches the whole
// routing value, the topic is the replacement with its group references filled in; otherwise the
// routing value itself is the topic.
type topicRouter struct {
	re    *regexp.Regexp
	parts []replPart
}

// replPart is a literal (group < 0) or a group reference of a replacement.
type replPart struct {
	lit   string
	group int
}

func newTopicRouter(regex, replacement string) (*topicRouter, error) {
	re, err := regexp.Compile(`^(?:` + regex + `)$`)
	if err != nil {
		return nil, fmt.Errorf("outbox.topic_regex %q: %w (Go's RE2 syntax: no lookaround or back-references; named groups as (?<name>...) or (?P<name>...))", regex, err)
	}
	parts, err := parseReplacement(replacement, re)
	if err != nil {
		return nil, fmt.Errorf("outbox.topic_replacement %q: %w", replacement, err)
	}
	return &topicRouter{re: re, parts: parts}, nil
}

// parseReplacement parses a java.util.regex replacement string (Matcher.appendReplacement): "\x"
// is a literal x, "${name}" a named group, "$n" a numbered group (as many digits as still name a
// group, the first always).
func parseReplacement(s string, re *regexp.Regexp) ([]replPart, error) {
	var parts []replPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, replPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			i++
			if i == len(s) {
				return nil, fmt.Errorf("character to be escaped is missing")
			}
			lit.WriteByte(s[i])
		case '$':
			i++
			if i == len(s) {
				return nil, fmt.Errorf("illegal group reference: group index is missing")
			}
			if s[i] == '{' {
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("named capturing group is missing trailing '}'")
				}
				name := s[i+1 : i+end]
				g := re.SubexpIndex(name)
				if g < 0 {
					return nil, fmt.Errorf("no group with name {%s} in outbox.topic_regex", name)
				}
				flush()
				parts = append(parts, replPart{group: g})
				i += end
				continue
			}
			if s[i] < '0' || s[i] > '9' {
				return nil, fmt.Errorf("illegal group reference")
			}
			g := int(s[i] - '0')
			for i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
				next := g*10 + int(s[i+1]-'0')
				if next > re.NumSubexp() {
					break
				}
				g = next
				i++
			}
			if g > re.NumSubexp() {
				return nil, fmt.Errorf("no group %d in outbox.topic_regex", g)
			}
			flush()
			parts = append(parts, replPart{group: g})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

// topic returns the topic of a routing value.
func (t *topicRouter) topic(value string) string {
	m := t.re.FindStringSubmatchIndex(value)
	if m == nil {
		return value
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.group < 0 {
			b.WriteString(p.lit)
			continue
		}
		if s, e := m[2*p.group], m[2*p.group+1]; s >= 0 {
			b.WriteString(value[s:e])
		}
	}
	return b.String()
}

// checkTopic says why name cannot be a Kafka topic (Kafka's Topic.validate), or "".
func checkTopic(name string) string {
	switch {
	case name == "":
		return "the topic name is empty"
	case name == "." || name == "..":
		return strconv.Quote(name) + " is not allowed as a topic name"
	case len(name) > 249:
		return fmt.Sprintf("the topic name is %d characters long (at most 249)", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("topic %q has a character Kafka does not allow (only a-z A-Z 0-9 . _ -)", name)
		}
	}
	return ""
}
