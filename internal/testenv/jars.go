package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
)

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (no go.mod above the working directory)")
		}
		dir = parent
	}
}

// PomProperty returns the value of <name>...</name> in a pom.xml (e.g. "kafka.version").
func PomProperty(pom, name string) (string, error) {
	text, err := os.ReadFile(pom)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", pom, err)
	}
	m := regexp.MustCompile(`<` + regexp.QuoteMeta(name) + `>([^<]+)</` + regexp.QuoteMeta(name) + `>`).FindSubmatch(text)
	if m == nil {
		return "", fmt.Errorf("%s has no <%s>", pom, name)
	}
	return string(m[1]), nil
}

// MavenLibs returns <repo>/.cache/<cacheKey>/libs, a folder holding every dependency of pom
// (mvn dependency:copy-dependencies, with the given -D properties), fetching them on first use.
// cacheKey names what the pom resolves to (e.g. "kafka/4.3.0"): a second run with the same key
// downloads nothing. Parallel test binaries wait for one another (see Cached).
func MavenLibs(pom, cacheKey string, props ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	libs := ""
	err = Cached(filepath.Join(root, ".cache", cacheKey), func(dir string) error {
		mvn, err := exec.LookPath("mvn")
		if err != nil {
			return fmt.Errorf("%s is not cached and Maven (mvn) is not installed: install maven", cacheKey)
		}
		args := append([]string{"-q", "-B", "-f", pom, "dependency:copy-dependencies", "-DoutputDirectory=" + filepath.Join(dir, "libs")}, props...)
		if err := runQuiet(exec.Command(mvn, args...)); err != nil {
			return fmt.Errorf("fetch %s from Maven Central: %w", cacheKey, err)
		}
		return nil
	}, func(dir string) { libs = filepath.Join(dir, "libs") })
	return libs, err
}

// Cached fills dir once: when dir/complete exists it only calls ready(dir); otherwise, holding an
// exclusive lock on dir/.lock (so parallel test binaries fetch once and the others wait), it
// empties dir, calls fill(dir), writes the marker and calls ready(dir). A fill that fails or is
// interrupted leaves no marker, and the next call starts over.
func Cached(dir string, fill func(dir string) error, ready func(dir string)) error {
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err == nil {
		ready(dir)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(done); err == nil { // filled by another process while we waited
		ready(dir)
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != ".lock" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := fill(dir); err != nil {
		return err
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		return err
	}
	ready(dir)
	return nil
}

// KafkaLibs returns the folder holding every jar the broker needs, fetched with Maven from
// test/kafka/pom.xml on first use into .cache/kafka/<kafka.version>/libs.
// PGCDC_KAFKA_LIBS overrides the location (a folder of jars prepared elsewhere).
func KafkaLibs() (string, error) {
	if dir := os.Getenv("PGCDC_KAFKA_LIBS"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	pom := filepath.Join(root, "test", "kafka", "pom.xml")
	version, err := PomProperty(pom, "kafka.version")
	if err != nil {
		return "", err
	}
	libs, err := MavenLibs(pom, filepath.Join("kafka", version))
	if err != nil {
		return "", fmt.Errorf("%w (or set PGCDC_TEST_KAFKA_BROKERS to an existing broker)", err)
	}
	return libs, nil
}
