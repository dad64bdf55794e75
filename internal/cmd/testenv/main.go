// Command testenv starts the shared test servers, one PostgreSQL and one Apache Kafka on loopback,
// runs a command with their addresses in PGCDC_TEST_PG_DSN and PGCDC_TEST_KAFKA_BROKERS, stops the
// servers and exits with the command's status. `make test` runs `go test` under it so that every
// test package shares one pair of servers.
//
//	go run ./internal/cmd/testenv -- go test -race ./...
//
// When the command fails, the end of each failed test's log is printed again at the end (a digest), so
// that a log cut in its middle still says why.
//
// A server already named in the environment is used as it is. The servers die with this process
// (Pdeathsig) even when it is killed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgcdc/pgcdc/internal/testenv"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: testenv -- COMMAND [ARG...]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var (
		wg    sync.WaitGroup
		pg    *testenv.Postgres
		kafka *testenv.Kafka
		pgErr error
		kErr  error
	)
	start := time.Now()
	if os.Getenv(testenv.EnvPostgresDSN) == "" {
		wg.Add(1)
		go func() { defer wg.Done(); pg, pgErr = testenv.StartPostgres(ctx, testenv.PostgresOptions{}) }()
	}
	if os.Getenv(testenv.EnvKafkaBrokers) == "" {
		wg.Add(1)
		go func() { defer wg.Done(); kafka, kErr = testenv.StartKafka(ctx, testenv.KafkaOptions{}) }()
	}
	wg.Wait()
	defer func() {
		if pg != nil {
			pg.Close()
		}
		if kafka != nil {
			kafka.Close()
		}
	}()
	if err := errors.Join(pgErr, kErr); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	env := os.Environ()
	if pg != nil {
		env = append(env, testenv.EnvPostgresDSN+"="+pg.DSN("postgres"))
		fmt.Fprintf(os.Stderr, "testenv: PostgreSQL on 127.0.0.1:%d (pid %d)\n", pg.Port, pg.PID())
	}
	if kafka != nil {
		env = append(env, testenv.EnvKafkaBrokers+"="+kafka.Addr())
		fmt.Fprintf(os.Stderr, "testenv: Kafka on %s (pid %d)\n", kafka.Addr(), kafka.PID())
	}
	fmt.Fprintf(os.Stderr, "testenv: servers ready in %s; running: %s\n", time.Since(start).Round(time.Millisecond), strings.Join(args, " "))

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	dig := newDigest(os.Stdout)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, dig, dig
	defer dig.report(os.Stdout)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-waited:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit.ExitCode()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
				return 1
			}
			return 0
		}
	}
}
