package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// applyEnv applies the PGCDC_* entries of env over cfg. See the package
// documentation for the naming rule and value syntax.
func applyEnv(cfg *Config, env []string) error {
	byName := make(map[string]field, len(allFields))
	for _, f := range allFields {
		byName[f.Env] = f
	}
	root := reflect.ValueOf(cfg).Elem()
	var errs []error
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if strings.HasPrefix(name, EnvTestPrefix) || strings.HasPrefix(name, EnvReplayPrefix) || name == EnvConfigFile {
			continue
		}
		f, known := byName[name]
		if !known {
			errs = append(errs, fmt.Errorf("environment variable %s: no such setting%s", name, suggest(name, EnvNames())))
			continue
		}
		if value == "" {
			continue // empty = unset, so FOO=${FOO} in a compose file is harmless
		}
		if err := setFromString(root.FieldByIndex(f.Index), value); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s (%s): %w", name, f.Key, err))
		}
	}
	return errors.Join(errs...)
}

// setFromString parses s into v according to v's type.
func setFromString(v reflect.Value, s string) error {
	t := v.Type()
	if t == durationType {
		d, err := parseDuration(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(strings.TrimSpace(s)))
	}
	bad := func() error { return fmt.Errorf("invalid value %q: want %s", s, typeWant(t)) }
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return bad()
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return bad()
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return bad()
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil {
			return bad()
		}
		v.SetFloat(n)
	case reflect.Slice:
		items := splitList(s)
		out := reflect.MakeSlice(t, 0, len(items))
		for _, it := range items {
			e := reflect.New(t.Elem()).Elem()
			if err := setFromString(e, it); err != nil {
				return fmt.Errorf("list item %q: %w", it, err)
			}
			out = reflect.Append(out, e)
		}
		v.Set(out)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("unsupported map type %s", t)
		}
		pairs, err := splitMap(s)
		if err != nil {
			return err
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for _, p := range pairs {
			e := reflect.New(t.Elem()).Elem()
			if err := setFromString(e, p[1]); err != nil {
				return fmt.Errorf("key %q: %w", p[0], err)
			}
			v.SetMapIndex(reflect.ValueOf(p[0]).Convert(t.Key()), e)
		}
	default:
		return fmt.Errorf("unsupported setting type %s", t)
	}
	return nil
}

// splitList splits a comma-separated list, trimming blanks and dropping empty
// items: "a, b,,c" -> [a b c].
func splitList(s string) []string {
	var out []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// splitMap parses "k=v,k=v". A comma-separated piece without "=" continues
// the previous value, so list-valued configs work:
// "cleanup.policy=compact,delete,retention.ms=-1" sets cleanup.policy to
// "compact,delete".
func splitMap(s string) ([][2]string, error) {
	var out [][2]string
	for _, piece := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(piece, "=")
		if !ok {
			if strings.TrimSpace(piece) == "" {
				continue
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("invalid value %q: want key=value pairs separated by commas", s)
			}
			out[len(out)-1][1] += "," + strings.TrimSpace(piece)
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, fmt.Errorf("invalid value %q: empty key before '='", s)
		}
		out = append(out, [2]string{k, strings.TrimSpace(v)})
	}
	return out, nil
}
