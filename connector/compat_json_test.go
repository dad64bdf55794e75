package connector_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// An order-preserving JSON tree, so that the comparison with Debezium sees field order (Kafka
// Connect's JsonConverter writes fields in schema order; keys are hashed byte for byte).

type jobj struct {
	keys []string
	vals map[string]any
}

func (o *jobj) get(k string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.vals[k]
	return v, ok
}

func (o *jobj) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *jobj) del(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, kk := range o.keys {
		if kk == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// parseOrdered parses JSON into *jobj, []any, json.Number, string, bool and nil.
func parseOrdered(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	v, err := parseValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

func parseValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &jobj{vals: map[string]any{}}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				o.set(kt.(string), v)
			}
			_, err := d.Token()
			return o, err
		case '[':
			a := []any{}
			for d.More() {
				v, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := d.Token()
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil
	}
}

// writeOrdered serializes a tree compactly, keeping field order.
func writeOrdered(b *bytes.Buffer, v any) {
	switch t := v.(type) {
	case *jobj:
		if t == nil {
			b.WriteString("null")
			return
		}
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			writeOrdered(b, t.vals[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			writeOrdered(b, e)
		}
		b.WriteByte(']')
	case json.Number:
		b.WriteString(string(t))
	default:
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(t)
		b.Truncate(b.Len() - 1) // Encode's newline
	}
}

func orderedString(v any) string {
	var b bytes.Buffer
	writeOrdered(&b, v)
	return b.String()
}

// diffTrees lists the differences between want (Debezium) and got (pgcdc) as "path: ..." lines.
func diffTrees(path string, want, got any, out *[]string) {
	switch w := want.(type) {
	case *jobj:
		g, ok := got.(*jobj)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: debezium=%s pgcdc=%s", path, short(want), short(got)))
			return
		}
		for _, k := range w.keys {
			gv, ok := g.vals[k]
			if !ok {
				*out = append(*out, fmt.Sprintf("%s: missing in pgcdc (debezium=%s)", join(path, w, k), short(w.vals[k])))
				continue
			}
			diffTrees(join(path, w, k), w.vals[k], gv, out)
		}
		for _, k := range g.keys {
			if _, ok := w.vals[k]; !ok {
				*out = append(*out, fmt.Sprintf("%s: only in pgcdc (pgcdc=%s)", join(path, g, k), short(g.vals[k])))
			}
		}
		if !sameOrder(w, g) {
			*out = append(*out, fmt.Sprintf("%s: field order debezium=%v pgcdc=%v", path, w.keys, g.keys))
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: debezium=%s pgcdc=%s", path, short(want), short(got)))
			return
		}
		if wf, gf := fieldIndex(w), fieldIndex(g); wf != nil && gf != nil {
			// schema fields: pair by name, so that one missing field does not hide the rest
			var wn, gn []string
			for _, e := range w {
				n := e.(*jobj).vals["field"].(string)
				wn = append(wn, n)
				if ge, ok := gf[n]; ok {
					diffTrees(fmt.Sprintf("%s[%s]", path, n), e, ge, out)
				} else {
					*out = append(*out, fmt.Sprintf("%s[%s]: field missing in pgcdc", path, n))
				}
			}
			for _, e := range g {
				n := e.(*jobj).vals["field"].(string)
				gn = append(gn, n)
				if _, ok := wf[n]; !ok {
					*out = append(*out, fmt.Sprintf("%s[%s]: field only in pgcdc", path, n))
				}
			}
			if len(wn) == len(gn) && strings.Join(wn, ",") != strings.Join(gn, ",") {
				*out = append(*out, fmt.Sprintf("%s: field order debezium=%v pgcdc=%v", path, wn, gn))
			}
			return
		}
		if len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: length debezium=%d pgcdc=%d (debezium=%s pgcdc=%s)", path, len(w), len(g), short(want), short(got)))
			return
		}
		for i := range w {
			diffTrees(fmt.Sprintf("%s[%s]", path, elemName(w[i], i)), w[i], g[i], out)
		}
	default:
		if orderedString(want) != orderedString(got) {
			*out = append(*out, fmt.Sprintf("%s: debezium=%s pgcdc=%s", path, short(want), short(got)))
		}
	}
}

// elemName names a schema field by its "field" member, other elements by index.
func elemName(v any, i int) string {
	if o, ok := v.(*jobj); ok {
		if f, ok := o.vals["field"].(string); ok {
			return f
		}
	}
	return fmt.Sprint(i)
}

func join(path string, _ *jobj, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// sameOrder compares the order of the keys both objects have.
func sameOrder(w, g *jobj) bool {
	var a, b []string
	for _, k := range w.keys {
		if _, ok := g.vals[k]; ok {
			a = append(a, k)
		}
	}
	for _, k := range g.keys {
		if _, ok := w.vals[k]; ok {
			b = append(b, k)
		}
	}
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func short(v any) string {
	s := orderedString(v)
	if len(s) > 300 {
		s = s[:300] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fieldIndex maps a schema's "fields" array by field name; nil when a is not one.
func fieldIndex(a []any) map[string]any {
	if len(a) == 0 {
		return nil
	}
	m := map[string]any{}
	for _, e := range a {
		o, ok := e.(*jobj)
		if !ok {
			return nil
		}
		n, ok := o.vals["field"].(string)
		if !ok {
			return nil
		}
		m[n] = e
	}
	return m
}
