package opshttp

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/internal/metrics"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	m := metrics.New("v1")
	srv, err := Start(Options{Key: "metrics.listen", Listen: "127.0.0.1:0", WebConfigKey: "metrics.web_config_file"}, m, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	base := "http://" + srv.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not streaming") {
		t.Errorf("/readyz before streaming: %d %q", code, body)
	}
	m.Streaming(true)
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, "streaming") {
		t.Errorf("/readyz streaming: %d %q", code, body)
	}
	m.Event("public.t", 'u')
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, `pgcdc_events_total{op="u",table="public.t"} 1`) || !strings.Contains(body, "pgcdc_ready 1") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}

// A port in use is an error at start that names the key to change.
func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(Options{Key: "metrics.listen", Listen: ln.Addr().String(), WebConfigKey: "metrics.web_config_file"}, metrics.New("v"), zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("err = %v", err)
	}
}
