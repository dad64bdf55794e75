package debeziumtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
)

var (
	debeziumVersionRE = regexp.MustCompile(`<debezium.version>([^<]+)</debezium.version>`)
	kafkaVersionRE    = regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`)
)

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot() (string, error) {
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

// Libs returns the folder holding every jar Kafka Connect standalone and Debezium's PostgreSQL
// connector need, fetching them with Maven from test/debezium/pom.xml on first use into
// .cache/debezium/<debezium version>-kafka<kafka version>/libs. A "complete" marker makes a second run
// download nothing; a file lock keeps parallel test binaries from fetching at the same time.
// PGCDC_DEBEZIUM_LIBS overrides the location (a folder of jars prepared elsewhere).
func Libs() (string, error) {
	if dir := os.Getenv("PGCDC_DEBEZIUM_LIBS"); dir != "" {
		return dir, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	pom := filepath.Join(root, "test", "debezium", "pom.xml")
	pomText, err := os.ReadFile(pom)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", pom, err)
	}
	dv := debeziumVersionRE.FindSubmatch(pomText)
	kv := kafkaVersionRE.FindSubmatch(pomText)
	if dv == nil || kv == nil {
		return "", fmt.Errorf("%s lacks <debezium.version> or <kafka.version>", pom)
	}
	version := string(dv[1]) + "-kafka" + string(kv[1])
	cache := filepath.Join(root, ".cache", "debezium", version)
	libs := filepath.Join(cache, "libs")
	done := filepath.Join(cache, "complete")
	if _, err := os.Stat(done); err == nil {
		return libs, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", cache, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(done); err == nil { // fetched by another process while we waited
		return libs, nil
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", errors.New("Debezium jars are not cached and Maven (mvn) is not installed: install maven, or set PGCDC_DEBEZIUM_LIBS to a folder of the jars")
	}
	os.RemoveAll(libs)
	cmd := exec.Command(mvn, "-q", "-B", "-f", pom, "dependency:copy-dependencies", "-DoutputDirectory="+libs)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fetch Debezium %s jars from Maven Central: %v\n%s", version, err, tail(out.String(), 4000))
	}
	if err := os.WriteFile(done, []byte(version), 0o644); err != nil {
		return "", err
	}
	return libs, nil
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
