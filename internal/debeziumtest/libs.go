package debeziumtest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

// Libs returns the folder holding every jar Kafka Connect standalone and Debezium's PostgreSQL
// connector need, fetched with Maven from test/debezium/pom.xml on first use into
// .cache/debezium/<debezium version>-kafka<kafka version>/libs (testenv.MavenLibs: a second run
// downloads nothing; parallel test binaries fetch once). PGCDC_DEBEZIUM_LIBS overrides the location
// (a folder of the jars prepared elsewhere).
func Libs() (string, error) {
	if dir := os.Getenv("PGCDC_DEBEZIUM_LIBS"); dir != "" {
		return dir, nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	pom := filepath.Join(root, "test", "debezium", "pom.xml")
	dv, err := testenv.PomProperty(pom, "debezium.version")
	if err != nil {
		return "", err
	}
	kv, err := testenv.PomProperty(pom, "kafka.version")
	if err != nil {
		return "", err
	}
	libs, err := testenv.MavenLibs(pom, filepath.Join("debezium", dv+"-kafka"+kv))
	if err != nil {
		return "", fmt.Errorf("%w (or set PGCDC_DEBEZIUM_LIBS to a folder of the jars)", err)
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
