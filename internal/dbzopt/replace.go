package dbzopt

import (
	"fmt"
	"regexp"
	"strings"
)

// Replacement is a replacement string in Java's syntax (Matcher.appendReplacement), checked
// against the regular expression it is used with: "$n" is group n (the longest run of digits that
// names an existing group), "${name}" a named group, a backslash takes the next character
// literally. Go's regexp.Expand differs ("$1_x" is the group named "1_x" there), so it is not used.
type Replacement struct {
	parts []replPart
}

type replPart struct {
	lit   string
	group int // >= 0: a group reference; -1: lit
}

// ParseReplacement parses repl for re. Like Java it refuses a "$" without a group, a reference
// to a group re does not have, and a trailing backslash.
func ParseReplacement(re *regexp.Regexp, repl string) (Replacement, error) {
	var r Replacement
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			r.parts = append(r.parts, replPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	groups := re.NumSubexp()
	for i := 0; i < len(repl); {
		c := repl[i]
		switch c {
		case '\\':
			if i+1 >= len(repl) {
				return r, fmt.Errorf("replacement %q: character to be escaped is missing", repl)
			}
			lit.WriteByte(repl[i+1])
			i += 2
		case '$':
			i++
			if i >= len(repl) {
				return r, fmt.Errorf("replacement %q: illegal group reference: group index is missing", repl)
			}
			var g int
			if repl[i] == '{' {
				end := strings.IndexByte(repl[i:], '}')
				if end < 0 {
					return r, fmt.Errorf("replacement %q: named capturing group is missing trailing '}'", repl)
				}
				name := repl[i+1 : i+end]
				if name == "" {
					return r, fmt.Errorf("replacement %q: named capturing group has 0 length name", repl)
				}
				g = re.SubexpIndex(name)
				if g < 0 {
					return r, fmt.Errorf("replacement %q: no group with name {%s} in %s", repl, name, re)
				}
				i += end + 1
			} else {
				if repl[i] < '0' || repl[i] > '9' {
					return r, fmt.Errorf("replacement %q: illegal group reference", repl)
				}
				g = int(repl[i] - '0')
				i++
				for i < len(repl) && repl[i] >= '0' && repl[i] <= '9' {
					next := g*10 + int(repl[i]-'0')
					if next > groups {
						break
					}
					g = next
					i++
				}
				if g > groups {
					return r, fmt.Errorf("replacement %q: no group %d in %s", repl, g, re)
				}
			}
			flush()
			r.parts = append(r.parts, replPart{group: g})
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return r, nil
}

// Apply returns the replacement for the submatch indexes m of s (from FindStringSubmatchIndex);
// a group that did not take part in the match contributes nothing, as in Java.
func (r Replacement) Apply(s string, m []int) string {
	var b strings.Builder
	for _, p := range r.parts {
		if p.group < 0 {
			b.WriteString(p.lit)
			continue
		}
		if lo, hi := m[2*p.group], m[2*p.group+1]; lo >= 0 {
			b.WriteString(s[lo:hi])
		}
	}
	return b.String()
}

// Rewrite is a RegexRouter-style rename: when re matches the whole of s it returns the
// replacement and true (Matcher.matches, then replaceFirst); otherwise s and false.
type Rewrite struct {
	re   *regexp.Regexp
	repl Replacement
}

// NewRewrite compiles regex (whole-string, case-sensitive) and parses replacement for it.
func NewRewrite(regex, replacement string) (*Rewrite, error) {
	re, err := CompileRegex(regex)
	if err != nil {
		return nil, err
	}
	repl, err := ParseReplacement(re, replacement)
	if err != nil {
		return nil, err
	}
	return &Rewrite{re: re, repl: repl}, nil
}

// Apply rewrites s when the regular expression matches it entirely.
func (w *Rewrite) Apply(s string) (string, bool) {
	m := w.re.FindStringSubmatchIndex(s)
	if m == nil {
		return s, false
	}
	return w.repl.Apply(s, m), true
}
