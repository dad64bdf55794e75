package deliver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgcdc/pgcdc/internal/opshttp"
)

// /readyz follows the group membership; /metrics has every series from the start.
func TestMetricsEndpoint(t *testing.T) {
	m := NewMetrics("test")
	m.Routes([]string{"orders"})
	srv := httptest.NewServer(opshttp.Handler(m))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Fatalf("readyz before joining: %d %s", code, body)
	}
	m.joined(3, 2)
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, "generation 3, 2 partitions") {
		t.Fatalf("readyz as a member: %d %s", code, body)
	}
	m.delivery("orders", 0)
	m.setLag("t", 1, 5)
	m.setWaiting("rebalancing")
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while rebalancing: %d", code)
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`pgcdc_deliver_delivered_total{route="orders"} 1`,
		`pgcdc_deliver_failed_attempts_total{reason="timeout",route="orders"} 0`,
		`pgcdc_deliver_consumer_lag{partition="1",topic="t"} 5`,
		`pgcdc_deliver_skipped_total{reason="tombstone"} 0`,
		`pgcdc_deliver_ready 0`,
		`pgcdc_build_info{command="deliver",version="test"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
