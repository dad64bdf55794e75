package check

import (
	"fmt"
	"io"
	"strings"

	"github.com/pgcdc/pgcdc/config"
)

// Severity ranks a finding.
type Severity int

// Severities, least to most severe.
const (
	OK   Severity = iota // as it should be
	Info                 // worth knowing, nothing to do
	Warn                 // works, but risks data or availability; the fix says how to remove the risk
	Fail                 // pgcdc cannot run correctly until this is fixed
)

func (s Severity) String() string {
	return [...]string{"OK", "INFO", "WARN", "FAIL"}[s]
}

// Finding is one result: what was checked (Area), what was found, and for WARN and FAIL the fix.
type Finding struct {
	Severity Severity
	Area     string // postgres, role, table, publication, slot, kafka, topic, config, security
	Message  string
	Fix      string
}

// Report is the list of findings of a check run, in the order they were made.
type Report struct {
	Findings []Finding
}

func (r *Report) add(sev Severity, area, fix, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Area: area, Message: fmt.Sprintf(format, args...), Fix: fix})
}

// Count returns the number of findings of severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Failed reports whether any finding is FAIL.
func (r *Report) Failed() bool { return r.Count(Fail) > 0 }

// Write prints the report for a human: one line per finding, its fix indented below it, and a
// summary line.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%-4s  %-11s %s\n", f.Severity, f.Area, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(&b, "      %-11s fix: %s\n", "", f.Fix)
		}
	}
	fails, warns := r.Count(Fail), r.Count(Warn)
	switch {
	case fails > 0:
		fmt.Fprintf(&b, "\n%s, %s: pgcdc cannot run correctly until the FAIL lines are fixed.\n", plural(fails, "problem"), plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(&b, "\nNo problem, %s: pgcdc can run; the WARN lines are risks worth removing.\n", plural(warns, "warning"))
	default:
		b.WriteString("\nAll checks passed.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// ConfigReport turns a configuration error (from config.Load) into a report: one FAIL per problem,
// naming its key and how to set it.
func ConfigReport(err error) *Report {
	r := &Report{}
	fes := config.FieldErrors(err)
	if len(fes) == 0 {
		r.add(Fail, "config", "fix the file or the PGCDC_* variable named above (config/example.yaml documents every key)", "%v", err)
		return r
	}
	for _, fe := range fes {
		key := fe.Key
		if i := strings.IndexByte(key, '['); i >= 0 {
			key = key[:i]
		}
		r.add(Fail, "config", fmt.Sprintf("set %s in the configuration file or %s (config/example.yaml documents it)", key, config.EnvName(key)), "%s", fe.Error())
	}
	// Problems that are not about one key (a file that cannot be read, an unknown variable).
	if n := len(strings.Split(err.Error(), "\n")); n > len(fes) {
		for _, line := range strings.Split(err.Error(), "\n") {
			known := false
			for _, fe := range fes {
				if line == fe.Error() {
					known = true
				}
			}
			if !known && strings.TrimSpace(line) != "" {
				r.add(Fail, "config", "fix the file or the PGCDC_* variable named here", "%s", line)
			}
		}
	}
	return r
}
