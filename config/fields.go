package config

import (
	"encoding"
	"reflect"
	"sort"
	"strings"
	"time"
)

// field is one leaf setting of Config, found by walking the struct by its
// yaml tags. Both the YAML decoder and the environment overrides use this
// walk, so a new key gets file and env support without further code.
type field struct {
	Key   string // dotted yaml key, e.g. "kafka.brokers"
	Env   string // environment variable, e.g. "PGCDC_KAFKA_BROKERS"
	Index []int  // reflect field index path from Config
	Type  reflect.Type
}

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// EnvPrefix starts every environment variable that configures pgcdc.
const EnvPrefix = "PGCDC_"

// EnvTestPrefix is reserved for tests (e.g. PGCDC_TEST_PG_DSN); Load ignores
// such variables.
const EnvTestPrefix = "PGCDC_TEST_"

// EnvReplayPrefix is reserved for `pgcdc replay`'s own variables (PGCDC_REPLAY_TARGET_PASSWORD);
// Load ignores such variables.
const EnvReplayPrefix = "PGCDC_REPLAY_"

// EnvConfigFile is reserved for the command to name the configuration file;
// Load ignores it.
const EnvConfigFile = "PGCDC_CONFIG"

// yamlName returns the yaml key of a struct field, or "" if it has none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

// isSection reports whether t is a struct of settings (walked into) rather
// than a leaf value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != durationType && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// EnvName returns the environment variable for a dotted key:
// "kafka.max_in_flight_bytes" -> "PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func walkFields(t reflect.Type, prefix string, index []int, out *[]field) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := yamlName(sf)
		if name == "" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if isSection(sf.Type) {
			walkFields(sf.Type, key, idx, out)
			continue
		}
		*out = append(*out, field{Key: key, Env: EnvName(key), Index: idx, Type: sf.Type})
	}
}

var allFields = func() []field {
	var fs []field
	walkFields(reflect.TypeOf(Config{}), "", nil, &fs)
	return fs
}()

// Keys returns every dotted configuration key ("postgres.dsn", ...) in
// declaration order.
func Keys() []string {
	out := make([]string, len(allFields))
	for i, f := range allFields {
		out[i] = f.Key
	}
	return out
}

// EnvNames returns every environment variable Load understands, sorted.
func EnvNames() []string {
	out := make([]string, len(allFields))
	for i, f := range allFields {
		out[i] = f.Env
	}
	sort.Strings(out)
	return out
}

// typeWant describes what a value of type t looks like, for error messages.
func typeWant(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 500ms, 30s or 1m"
	case t == reflect.TypeOf(ByteSize(0)):
		return "a size such as 1048576, 64MiB or 10GiB"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(typeWant(t.Elem()), "a ") + "s"
	case reflect.Map:
		return "a mapping of keys to " + strings.TrimPrefix(typeWant(t.Elem()), "a ") + "s"
	}
	return t.String()
}

// levenshtein is the edit distance between a and b, for "did you mean".
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// suggest returns ` (did you mean "x"?)` for the closest candidate, or a list
// of the candidates when none is close.
func suggest(got string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(got), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(2, len(got)/4) {
		return " (did you mean " + best + "?)"
	}
	if len(candidates) > 0 && len(candidates) <= 20 {
		return " (known: " + strings.Join(candidates, ", ") + ")"
	}
	return ""
}
