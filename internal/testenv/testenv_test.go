package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/segmentio/kafka-go"
)

func TestMain(m *testing.M) { Main(m) }

// The shared broker takes a record from a real producer (acks=all) and gives it back to a consumer.
func TestKafkaProduceConsume(t *testing.T) {
	brokers := SharedKafka(t)
	topic := UniqueName(t, "topic")
	CreateTopic(t, brokers, topic, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := 0; i < 10; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got, err := ReadTopic(ctx, brokers, topic, 10, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, m := range got {
		seen[string(m.Key)] = string(m.Value)
	}
	for i := 0; i < 10; i++ {
		if v := seen[fmt.Sprint("k", i)]; v != fmt.Sprint("v", i) {
			t.Errorf("key k%d: got value %q", i, v)
		}
	}
	if len(got) != 10 {
		t.Errorf("read %d records, want 10", len(got))
	}
}

// A logical slot on the shared PostgreSQL streams a committed insert through pgoutput to pglogrepl.
func TestPostgresLogicalSlot(t *testing.T) {
	dsn := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE items (id int PRIMARY KEY, name text)`,
		`CREATE PUBLICATION pub FOR TABLE items`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	repl, err := pgconn.Connect(ctx, dsn+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	slot := UniqueName(t, "slot")
	if _, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{}); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO items VALUES (42, 'answer')`); err != nil {
		t.Fatal(err)
	}
	err = pglogrepl.StartReplication(ctx, repl, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'pub'"}})
	if err != nil {
		t.Fatalf("start replication: %v", err)
	}
	rel := map[uint32]*pglogrepl.RelationMessage{}
	for {
		raw, err := repl.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		x, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		msg, err := pglogrepl.Parse(x.WALData)
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pglogrepl.RelationMessage:
			rel[m.RelationID] = m
		case *pglogrepl.InsertMessage:
			r := rel[m.RelationID]
			if r == nil || r.RelationName != "items" {
				t.Fatalf("insert into unknown relation %d", m.RelationID)
			}
			got := []string{string(m.Tuple.Columns[0].Data), string(m.Tuple.Columns[1].Data)}
			if got[0] != "42" || got[1] != "answer" {
				t.Fatalf("insert carried %v, want [42 answer]", got)
			}
			return
		}
	}
}

// A dedicated cluster takes its own settings and restarts in place on the same port.
func TestDedicatedPostgresSettingsAndRestart(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx, PostgresOptions{Settings: map[string]string{"wal_level": "replica"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	query := func() (walLevel string, started time.Time) {
		conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), pg_postmaster_start_time()`).Scan(&walLevel, &started); err != nil {
			t.Fatal(err)
		}
		return
	}
	level, start1 := query()
	if level != "replica" {
		t.Fatalf("wal_level = %s, want replica", level)
	}
	pid1, port := pg.PID(), pg.Port
	if err := pg.Restart(ctx, StopImmediate); err != nil {
		t.Fatal(err)
	}
	_, start2 := query()
	if pg.PID() == pid1 || !start2.After(start1) || pg.Port != port {
		t.Fatalf("restart: pid %d→%d, start %v→%v, port %d→%d", pid1, pg.PID(), start1, start2, port, pg.Port)
	}
	if alive(pid1) {
		t.Fatalf("old postmaster %d still alive", pid1)
	}
}

// A dedicated broker can be frozen and thawed, and restarted on the same port.
func TestDedicatedKafkaPauseAndRestart(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	k, err := StartKafka(ctx, KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	brokers := []string{k.Addr()}
	if err := k.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := k.ping(ctx, 2*time.Second); err == nil {
		t.Fatal("a paused broker answered a Metadata request")
	}
	if err := k.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := k.waitReady(ctx, 30*time.Second); err != nil {
		t.Fatalf("after resume: %v", err)
	}
	topic := UniqueName(t, "topic")
	CreateTopic(t, brokers, topic, 1)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("before restart")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	pid1 := k.PID()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if k.PID() == pid1 {
		t.Fatal("restart kept the same pid")
	}
	got, err := ReadTopic(ctx, brokers, topic, 1, 60*time.Second)
	if err != nil || string(got[0].Value) != "before restart" {
		t.Fatalf("after restart: %v %v", got, err)
	}
}

// Servers die with the process that started them, even when it is killed with SIGKILL.
func TestServersDieWithTheirProcess(t *testing.T) {
	Require(t)
	if os.Getenv("PGCDC_TESTENV_CHILD") == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pg, err := StartPostgres(ctx, PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("postmaster-pid %d %s\n", pg.PID(), pg.base)
		time.Sleep(time.Minute) // until the parent kills us
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServersDieWithTheirProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "PGCDC_TESTENV_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pid int
	var base string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "postmaster-pid" {
			pid, _ = strconv.Atoi(f[1])
			base = f[2]
			break
		}
	}
	if pid == 0 {
		t.Fatal("child did not report a postmaster pid")
	}
	defer os.RemoveAll(base)
	if !alive(pid) {
		t.Fatalf("postmaster %d not running before the kill", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for i := 0; i < 100; i++ {
		if !alive(pid) {
			return // gone
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("postmaster %d outlived its killed parent", pid)
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Every supported major version starts from the binaries testenv provides (the system's or the ones
// fetched from Maven Central) and reports the version asked for.
func TestPostgresVersions(t *testing.T) {
	Require(t)
	for _, v := range PostgresVersions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			pg, err := StartPostgres(ctx, PostgresOptions{Version: v})
			if err != nil {
				t.Fatal(err)
			}
			defer pg.Close()
			if pg.Major != v {
				t.Fatalf("started PostgreSQL %d, want %d", pg.Major, v)
			}
			conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var level string
			if err := conn.QueryRow(ctx, `SHOW wal_level`).Scan(&level); err != nil || level != "logical" {
				t.Fatalf("wal_level %q (%v), want logical", level, err)
			}
			// pgoutput and the contrib modules the tests use are there.
			for _, q := range []string{`CREATE EXTENSION hstore`, `CREATE EXTENSION citext`,
				`SELECT pg_create_logical_replication_slot('v', 'pgoutput')`, `SELECT pg_drop_replication_slot('v')`} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		})
	}
}

// A three-broker cluster with a dedicated controller: topics get replication factor 3 and
// min.insync.replicas 2; killing a partition's leader moves leadership to an in-sync broker and
// acks=all writes go on; with two brokers down the partition is below min.insync.replicas and refuses
// acks=all writes (Not Enough Replicas) while the controller, apart from the brokers, keeps the
// quorum; once they are back the cluster is whole again.
//
// A long test (make test-long): the short tests of internal/chaos drive the same faults through pgcdc
// on their shared cluster.
func TestKafkaCluster(t *testing.T) {
	RequireLong(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	began := time.Now()
	c, err := StartKafkaCluster(ctx, KafkaClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("controller pid %d and brokers %d, %d, %d ready in %s", c.Controller.PID(), c.Brokers[0].PID(), c.Brokers[1].PID(), c.Brokers[2].PID(), time.Since(began).Round(time.Millisecond))
	for _, b := range c.Brokers {
		if b.PID() == c.Controller.PID() || b.Port == 0 || b.CtrlPort != 0 {
			t.Fatalf("broker %d is not a broker-only process apart from the controller", b.NodeID)
		}
	}
	topic := UniqueName(t, "topic")
	if err := c.CreateTopic(ctx, topic, 1, nil); err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(c.Addrs()...), Timeout: 30 * time.Second}
	cfg, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"}}}})
	if err != nil || len(cfg.Resources) != 1 || len(cfg.Resources[0].ConfigEntries) != 1 || cfg.Resources[0].ConfigEntries[0].ConfigValue != "2" {
		t.Fatalf("min.insync.replicas of %s: %+v %v", topic, cfg, err)
	}
	// produce writes one record with acks=all straight to the current leader (a raw connection, no
	// client-side metadata cache or retries) and returns the broker's answer.
	produce := func(v string) error {
		leader, err := c.Leader(ctx, topic, 0)
		if err != nil {
			return err
		}
		if leader < 0 {
			return fmt.Errorf("no leader")
		}
		conn, err := kafka.DialLeader(ctx, "tcp", c.Broker(leader).Addr(), topic, 0)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetRequiredAcks(-1)
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = conn.WriteMessages(kafka.Message{Value: []byte(v)})
		return err
	}
	if err := produce("one"); err != nil {
		t.Fatal(err)
	}
	first, _ := c.Leader(ctx, topic, 0)
	c.Broker(first).Kill()
	var second int
	deadline := time.Now().Add(time.Minute)
	for second = first; second == first || second < 0; second, _ = c.Leader(ctx, topic, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("leadership did not move off killed broker %d", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for err := produce("two"); err != nil; err = produce("two") {
		if time.Now().After(deadline) {
			t.Fatalf("no acks=all write after broker %d was killed: %v", first, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("killed leader %d: broker %d leads and takes acks=all writes", first, second)
	c.Broker(second).Stop()
	var perr error
	for perr = produce("three"); !errors.Is(perr, kafka.NotEnoughReplicas); perr = produce("three") {
		if time.Now().After(deadline) {
			t.Fatalf("with brokers %d and %d down, a write answered %v, want Not Enough Replicas", first, second, perr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := apiVersionsPing(ctx, fmt.Sprintf("127.0.0.1:%d", c.Controller.CtrlPort), 5*time.Second); err != nil {
		t.Fatalf("controller: %v", err)
	}
	t.Logf("brokers %d and %d down: %v", first, second, perr)
	for _, id := range []int{first, second} {
		if err := c.Broker(id).Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := produce("four"); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTopic(ctx, c.Addrs(), topic, 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, m := range got {
		vals = append(vals, string(m.Value))
	}
	if strings.Join(vals, ",") != "one,two,four" {
		t.Fatalf("topic holds %v, want [one two four]", vals)
	}
	for _, n := range append([]*Kafka{c.Controller}, c.Brokers...) {
		t.Logf("node %d: %s", n.NodeID, rss(n.PID()))
	}
}

func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return "?"
}

// The server processes left behind by a postmaster killed in the middle of a stop are found by
// their parent and killed; a pid that names another process by now (its start time differs) is
// left alone.
func TestReapOrphans(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var children []proc
	for deadline := time.Now().Add(5 * time.Second); len(children) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the shell's child did not show")
		}
		children = childPIDs(cmd.Process.Pid)
	}
	_ = cmd.Process.Kill() // the parent dies; its child lives on, an orphan
	_ = cmd.Wait()
	if _, _, ok := procStat(children[0].pid); !ok {
		t.Fatal("the child died with its parent: nothing to reap")
	}
	reap(append(children, proc{pid: os.Getpid(), start: "not ours"}), 5*time.Second)
	if _, start, ok := procStat(children[0].pid); ok && start == children[0].start {
		t.Fatalf("child %d still runs after reap", children[0].pid)
	}
}
