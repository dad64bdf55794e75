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

var kafkaVersionRE = regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`)

// KafkaLibs returns the folder holding every jar the broker needs, fetching them with Maven from
// test/kafka/pom.xml on first use. The folder is keyed by the pom's Kafka version, so a second run
// downloads nothing; a file lock keeps parallel test binaries from fetching at the same time.
// PGCDC_KAFKA_LIBS overrides the location (a folder of jars prepared elsewhere).
func KafkaLibs() (string, error) {
	if dir := os.Getenv("PGCDC_KAFKA_LIBS"); dir != "" {
		return dir, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	pom := filepath.Join(root, "test", "kafka", "pom.xml")
	pomText, err := os.ReadFile(pom)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", pom, err)
	}
	m := kafkaVersionRE.FindSubmatch(pomText)
	if m == nil {
		return "", fmt.Errorf("%s has no <kafka.version>", pom)
	}
	cache := filepath.Join(root, ".cache", "kafka", string(m[1]))
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
		return "", errors.New("Kafka jars are not cached and Maven (mvn) is not installed: install maven, or set PGCDC_TEST_KAFKA_BROKERS to an existing broker")
	}
	os.RemoveAll(libs)
	cmd := exec.Command(mvn, "-q", "-B", "-f", pom, "dependency:copy-dependencies", "-DoutputDirectory="+libs)
	if err := runQuiet(cmd); err != nil {
		return "", fmt.Errorf("fetch Kafka %s jars from Maven Central: %w", m[1], err)
	}
	if err := os.WriteFile(done, []byte(m[1]), 0o644); err != nil {
		return "", err
	}
	return libs, nil
}
