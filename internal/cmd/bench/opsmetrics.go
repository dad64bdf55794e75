package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// opsAddrRe finds the operations endpoint's address in pgcdc's log (cmd/pgcdc/opsserver.go).
var opsAddrRe = regexp.MustCompile(`"addr":"([^"]+)"[^\n]*"message":"operations endpoint`)

// produceRequests reads how many record batches pgcdc wrote (one produce request each): the
// count of pgcdc_kafka_write_duration_seconds from its /metrics, found through the address its
// log names. -1 when the log or the endpoint does not tell.
func produceRequests(ctx context.Context, logPath string) int64 {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return -1
	}
	m := opsAddrRe.FindSubmatch(b)
	if m == nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+string(m[1])+"/metrics", nil)
	if err != nil {
		return -1
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	n, err := sumMetric(res.Body, "pgcdc_kafka_write_duration_seconds_count")
	if err != nil {
		return -1
	}
	return n
}

// sumMetric adds up the samples of one metric in the Prometheus text format (every label set).
func sumMetric(r io.Reader, name string) (int64, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric whose name starts with this one
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			return 0, fmt.Errorf("%s: no value in %q", name, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%s: not in the metrics", name)
	}
	return int64(sum), nil
}
