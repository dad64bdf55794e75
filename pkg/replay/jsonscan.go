package replay

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A small JSON scanner: records are walked in place (no maps, no reflection), which keeps the
// schema part of a record (most of its bytes when schemas are enabled) out of the decoder's way.

var errJSON = errors.New("malformed JSON")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] (a '"').
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errJSON
}

// skipValue returns the index after the JSON value starting at (or after blanks at) b[i].
func skipValue(b []byte, i int) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, errJSON
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				j, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = j - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errJSON
	default: // number, true, false, null
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				break
			}
			j++
		}
		if j == i {
			return 0, errJSON
		}
		return j, nil
	}
}

// eachField calls fn for every member of the JSON object b, in document order, with the raw
// (still quoted) name and the raw value.
func eachField(b []byte, fn func(name, raw []byte) error) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return fmt.Errorf("%w: not an object", errJSON)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return errJSON
		}
		end, err := skipString(b, i)
		if err != nil {
			return err
		}
		name := b[i:end]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return errJSON
		}
		i = skipWS(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(name, b[i:vend]); err != nil {
			return err
		}
		i = skipWS(b, vend)
		if i >= len(b) {
			return errJSON
		}
		if b[i] == '}' {
			return nil
		}
		if b[i] != ',' {
			return errJSON
		}
		i = skipWS(b, i+1)
	}
	return errJSON
}

// eachElem calls fn for every element of the JSON array b.
func eachElem(b []byte, fn func(raw []byte) error) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return fmt.Errorf("%w: not an array", errJSON)
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for i < len(b) {
		end, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:end]); err != nil {
			return err
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return errJSON
		}
		if b[i] == ']' {
			return nil
		}
		if b[i] != ',' {
			return errJSON
		}
		i = skipWS(b, i+1)
	}
	return errJSON
}

// unquote returns the content of the JSON string raw ("..." with escapes resolved).
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", fmt.Errorf("%w: expected a string, got %.40s", errJSON, raw)
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", err
			}
			return s, nil
		}
	}
	return string(inner), nil
}

func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
