package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/testenv"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   any               `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// docker-compose.yml runs the four services with the settings the tests use: PostgreSQL with the
// test clusters' replication settings, Kafka in KRaft mode configured like the test broker and of
// the version the tests fetch, pgcdc configured by PGCDC_* variables that exist and form a valid
// configuration, and a console consumer of pgcdc's topics.
func TestComposeFile(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"postgres", "kafka", "pgcdc", "consumer"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}

	// PostgreSQL: -c settings equal to the test clusters'.
	pg := c.Services["postgres"]
	settings := map[string]string{}
	for i, a := range pg.Command {
		if a == "-c" && i+1 < len(pg.Command) {
			k, v, _ := strings.Cut(pg.Command[i+1], "=")
			settings[k] = v
		}
	}
	if settings["wal_level"] != "logical" {
		t.Errorf("postgres command does not set wal_level=logical: %v", pg.Command)
	}
	want := testenv.PostgresSettings()
	for _, k := range []string{"wal_level", "max_replication_slots", "max_wal_senders", "wal_sender_timeout", "max_slot_wal_keep_size", "logical_decoding_work_mem"} {
		if settings[k] != want[k] {
			t.Errorf("postgres %s = %q in compose, %q in the tests", k, settings[k], want[k])
		}
	}
	if pg.Healthcheck == nil {
		t.Error("postgres has no healthcheck (pgcdc waits for it)")
	}

	// Kafka: the test broker's properties as KAFKA_* variables, KRaft, the tests' version.
	k := c.Services["kafka"]
	pom, err := os.ReadFile("../../test/kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	if m == nil || k.Image != "apache/kafka:"+string(m[1]) {
		t.Errorf("kafka image %q, the tests use Kafka %s", k.Image, m[1])
	}
	for prop, v := range testenv.KafkaSettings() {
		env := "KAFKA_" + strings.ToUpper(strings.ReplaceAll(prop, ".", "_"))
		if got, ok := k.Environment[env]; !ok || got != v {
			t.Errorf("kafka %s (%s) = %q in compose, %q in the tests", env, prop, got, v)
		}
	}
	if !strings.Contains(k.Environment["KAFKA_PROCESS_ROLES"], "controller") || k.Environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "" || k.Environment["CLUSTER_ID"] == "" {
		t.Errorf("kafka is not in KRaft mode: %v", k.Environment)
	}
	if k.Environment["KAFKA_ADVERTISED_LISTENERS"] != "PLAINTEXT://kafka:9092" {
		t.Errorf("kafka advertises %q; clients in the compose network reach kafka:9092", k.Environment["KAFKA_ADVERTISED_LISTENERS"])
	}

	// pgcdc: every variable is a configuration key, and together they are a valid configuration.
	p := c.Services["pgcdc"]
	if p.Build == nil {
		t.Error("pgcdc is not built from the Dockerfile")
	}
	known := config.EnvNames()
	var env []string
	for name, v := range p.Environment {
		if !slices.Contains(known, name) {
			t.Errorf("pgcdc variable %s is not a configuration key (config.EnvNames)", name)
		}
		env = append(env, name+"="+v)
	}
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatalf("pgcdc environment is not a valid configuration: %v", err)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"kafka:9092"}) || !strings.Contains(cfg.Postgres.DSN, "@postgres:5432/") {
		t.Errorf("pgcdc points at %v and %s", cfg.Kafka.Brokers, cfg.Postgres.RedactedDSN())
	}
	_, port, _ := strings.Cut(cfg.Metrics.Listen, ":")
	if !slices.ContainsFunc(p.Ports, func(s string) bool { return strings.HasSuffix(s, ":"+port) }) {
		t.Errorf("metrics port %s not published: %v", port, p.Ports)
	}

	// The consumer reads pgcdc's topics from the broker pgcdc writes to.
	cons := strings.Join(c.Services["consumer"].Command, " ")
	if !strings.Contains(cons, "kafka-console-consumer.sh") || !strings.Contains(cons, "--bootstrap-server kafka:9092") ||
		!strings.Contains(cons, `^`+regexp.QuoteMeta(cfg.Kafka.TopicPrefix+".")) {
		t.Errorf("consumer command: %s", cons)
	}
}

// The Dockerfile builds a static binary in a separate stage and runs it as a non-root user.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(from) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM lines", len(from))
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVer == nil || !strings.HasPrefix(from[0][1], "golang:"+string(goVer[1])) {
		t.Errorf("build stage %s, go.mod wants go %s", from[0][1], goVer[1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/pgcdc", "COPY --from=build", "EXPOSE 9187", `ENTRYPOINT ["/usr/local/bin/pgcdc"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(user) == 0 {
		t.Fatal("no USER: the image would run as root")
	}
	if u := user[len(user)-1][1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("runs as %s", u)
	}
	if strings.Index(df, "USER") < strings.LastIndex(df, "FROM") {
		t.Error("USER is not set in the final stage")
	}
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil || !strings.Contains(string(ignore), ".git") || !strings.Contains(string(ignore), ".cache") {
		t.Errorf(".dockerignore must keep .git and .cache out of the build context (%v)", err)
	}
}
