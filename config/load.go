package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load builds the configuration: defaults, then the YAML file at path (skipped
// when path is ""), then the PGCDC_* variables of env (os.Environ() style
// "KEY=value" entries), then derived defaults (spool_dir from the slot), and
// finally Validate. All problems found at one stage are reported together
// (errors.Join). The returned Config is only meaningful when err is nil, but
// holds what was loaded so far for diagnostics.
func Load(path string, env []string) (Config, error) {
	cfg := Default()
	cfg.Postgres.SpoolDir = "" // derived from the final slot below unless set
	var fileErr error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: read %s: %w", path, err)
		}
		fileErr = decodeYAML(data, path, &cfg)
	}
	// Report file and environment problems together.
	if err := errors.Join(fileErr, applyEnv(&cfg, env)); err != nil {
		return cfg, err
	}
	if cfg.Postgres.SpoolDir == "" {
		cfg.Postgres.SpoolDir = DefaultSpoolDir(cfg.Postgres.Slot)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Parse applies the YAML document data over cfg, as Load does for its file.
// name is used in error messages (a file name, or e.g. "<stdin>").
// Unknown keys, duplicate keys and badly typed values are errors naming the
// key and line. A key with an empty (null) value keeps its current value;
// lists replace the current list; mappings (kafka.topic_config) are merged
// into the current mapping key by key.
func Parse(data []byte, name string, cfg *Config) error {
	return decodeYAML(data, name, cfg)
}

func decodeYAML(data []byte, name string, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: more than one YAML document; put the whole configuration in one", name)
	}
	d := &yamlDecoder{name: name}
	d.node(&doc, reflect.ValueOf(cfg).Elem(), "")
	return errors.Join(d.errs...)
}

type yamlDecoder struct {
	name string
	errs []error
}

func (d *yamlDecoder) errorf(n *yaml.Node, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s", d.name, n.Line, msg))
}

func (d *yamlDecoder) node(n *yaml.Node, v reflect.Value, key string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.node(n.Content[0], v, key)
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // empty value: keep the default
	}
	if isSection(v.Type()) {
		d.section(n, v, key)
		return
	}
	d.leaf(n, v, key)
}

func (d *yamlDecoder) section(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if key != "" {
			what = key
		}
		d.errorf(n, "", "%s must be a mapping of keys to values", what)
		return
	}
	t := v.Type()
	byName := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			byName[name] = i
			names = append(names, name)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name := kn.Value
		full := name
		if key != "" {
			full = key + "." + name
		}
		if line, dup := seen[name]; dup {
			d.errorf(kn, full, "duplicate key (first set on line %d)", line)
			continue
		}
		seen[name] = kn.Line
		idx, ok := byName[name]
		if !ok {
			d.errorf(kn, "", "unknown key %s%s", full, suggest(name, names))
			continue
		}
		d.node(vn, v.Field(idx), full)
	}
}

func (d *yamlDecoder) leaf(n *yaml.Node, v reflect.Value, key string) {
	t := v.Type()
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, key, "want %s", typeWant(t))
			return
		}
		dur, err := parseDuration(n.Value)
		if err != nil {
			d.errorf(n, key, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	if _, custom := v.Addr().Interface().(yaml.Unmarshaler); !custom {
		switch t.Kind() {
		case reflect.Slice:
			if n.Kind != yaml.SequenceNode {
				d.errorf(n, key, "want %s, got %s", typeWant(t), describeNode(n))
				return
			}
			out := reflect.MakeSlice(t, len(n.Content), len(n.Content))
			for i, en := range n.Content {
				d.node(en, out.Index(i), fmt.Sprintf("%s[%d]", key, i))
			}
			v.Set(out)
			return
		case reflect.Map:
			if n.Kind != yaml.MappingNode || t.Key().Kind() != reflect.String {
				d.errorf(n, key, "want %s, got %s", typeWant(t), describeNode(n))
				return
			}
			if v.IsNil() {
				v.Set(reflect.MakeMap(t))
			}
			seen := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				kn, vn := n.Content[i], n.Content[i+1]
				if line, dup := seen[kn.Value]; dup {
					d.errorf(kn, fmt.Sprintf("%s[%s]", key, kn.Value), "duplicate key (first set on line %d)", line)
					continue
				}
				seen[kn.Value] = kn.Line
				e := reflect.New(t.Elem()).Elem()
				d.node(vn, e, fmt.Sprintf("%s[%s]", key, kn.Value))
				v.SetMapIndex(reflect.ValueOf(kn.Value).Convert(t.Key()), e)
			}
			return
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			// yaml.v3 silently truncates 1.5 to 1: insist on an integer.
			if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
				d.errorf(n, key, "want %s, got %s", typeWant(t), describeNode(n))
				return
			}
		}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) || n.Kind != yaml.ScalarNode {
			d.errorf(n, key, "want %s, got %s", typeWant(t), describeNode(n))
			return
		}
		d.errorf(n, key, "%v", err)
	}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// parseDuration is time.ParseDuration with a message that says what is
// allowed. "0" is accepted without a unit.
func parseDuration(s string) (time.Duration, error) {
	dur, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a number with a unit: ns, us, ms, s, m, h, e.g. 500ms, 30s, 1m30s)", s)
	}
	return dur, nil
}
