package dbzopt

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// SplitList splits a Debezium list of regular expressions as its RegExSplitter does: at commas
// not escaped by a backslash; each item trimmed, "\," turned into ",", empty items dropped.
func SplitList(s string) []string {
	var out []string
	start := 0
	add := func(part string) {
		part = strings.TrimSpace(part)
		if part != "" {
			out = append(out, strings.ReplaceAll(part, `\,`, ","))
		}
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // the escaped character is part of the item
		case ',':
			add(s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		add(s[start:])
	}
	return out
}

// Patterns is a list of regular expressions each matched against a whole name,
// case-insensitively, as Debezium matches table, column and key-column lists.
type Patterns []*regexp.Regexp

// CompilePatterns compiles each item of list (already split) as a whole-name, case-insensitive
// pattern. The error names the item.
func CompilePatterns(list []string) (Patterns, error) {
	out := make(Patterns, 0, len(list))
	for _, p := range list {
		re, err := compileWhole(p)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

func compileWhole(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`(?i)^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", p, unwrapSyntax(err))
	}
	return re, nil
}

// unwrapSyntax drops the wrapper compileWhole added from a syntax error's expression.
func unwrapSyntax(err error) error {
	var se *syntax.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%s", se.Code)
	}
	return err
}

// Match reports whether any pattern matches name entirely.
func (ps Patterns) Match(name string) bool {
	for _, re := range ps {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// CompileRegex compiles a RegexRouter or ByLogicalTableRouter regex: matched against the whole
// topic (Java's Matcher.matches), case-sensitively.
func CompileRegex(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", p, unwrapSyntax(err))
	}
	return re, nil
}
