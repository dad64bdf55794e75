package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDeliverFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deliver.yaml")
	err := os.WriteFile(path, []byte(`
kafka:
  brokers: [k:9092]
  topic_prefix: app
deliver:
  group_id: billing
  on_failure: hold
  retry_max_attempts: 3
  routes:
    - name: orders
      url: https://hooks.example.com/orders
      tables: [public.orders]
      ops: [c, u]
      payload: hasura
      timeout: 5s
      headers: {X-Team: billing}
      header_env: {Authorization: ORDERS_AUTH}
      signing_secret_env: ORDERS_SECRET
    - name: outbox
      url_env: OUTBOX_URL
      topics: ["outbox.event.*"]
      payload: raw
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{"PGCDC_POSTGRES_DSN=postgres://x@h/db", "PGCDC_DELIVER_CONCURRENCY=3"})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Deliver
	if d.GroupID != "billing" || d.OnFailure != "hold" || d.RetryMaxAttempts != 3 || d.Concurrency != 3 || d.DeadLetter() != "billing.dlq" {
		t.Fatalf("deliver: %+v", d)
	}
	want := Routes{
		{Name: "orders", URL: "https://hooks.example.com/orders", Tables: []string{"public.orders"}, Ops: []string{"c", "u"}, Payload: "hasura",
			Timeout: 5 * time.Second, Headers: map[string]string{"X-Team": "billing"}, HeaderEnv: map[string]string{"Authorization": "ORDERS_AUTH"},
			SigningSecretEnv: "ORDERS_SECRET"},
		{Name: "outbox", URLEnv: "OUTBOX_URL", Topics: []string{"outbox.event.*"}, Payload: "raw"},
	}
	if !reflect.DeepEqual(d.Routes, want) {
		t.Fatalf("routes:\n got %+v\nwant %+v", d.Routes, want)
	}
	// The environment's YAML list replaces the file's.
	cfg, err = Load(path, []string{"PGCDC_POSTGRES_DSN=postgres://x@h/db", `PGCDC_DELIVER_ROUTES=[{name: one, url: "http://h/x", tables: ["s.*"]}]`})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Deliver.Routes) != 1 || cfg.Deliver.Routes[0].Name != "one" || cfg.Deliver.Routes[0].Tables[0] != "s.*" {
		t.Fatalf("env routes: %+v", cfg.Deliver.Routes)
	}
	_, err = Load(path, []string{"PGCDC_POSTGRES_DSN=postgres://x@h/db", `PGCDC_DELIVER_ROUTES=[{name: one, uri: "http://h/x"}]`})
	if err == nil || !strings.Contains(err.Error(), "PGCDC_DELIVER_ROUTES") || !strings.Contains(err.Error(), "unknown key deliver.routes[0].uri (did you mean url?)") {
		t.Fatalf("bad env routes: %v", err)
	}
}

func TestDeliverValidation(t *testing.T) {
	c := valid()
	c.Deliver.Ordering = "row"
	c.Deliver.HeartbeatInterval = 20 * time.Second
	c.Deliver.RetryMaxBackoff = time.Millisecond
	c.Deliver.MetricsListen = "nope"
	c.Deliver.Routes = Routes{
		{Name: "a b", URL: "ftp://x", Ops: []string{"x"}, Payload: "xml", Tables: []string{"orders"}},
		{Name: "c", URL: "http://h", URLEnv: "U", Headers: map[string]string{"Bad Header": "v"}, ClientCertFile: "c.pem"},
		{Name: "c", URL: "http://h", Tables: []string{"public.*"}, SigningSecretEnv: "A", SigningSecretFile: "b"},
	}
	err := c.Validate()
	var keys []string
	for _, fe := range FieldErrors(err) {
		keys = append(keys, fe.Key)
	}
	for _, want := range []string{
		"deliver.metrics_listen", "deliver.ordering", "deliver.retry_max_backoff", "deliver.heartbeat_interval",
		"deliver.routes[0].name", "deliver.routes[0].url", "deliver.routes[0].tables[0]", "deliver.routes[0].ops[0]", "deliver.routes[0].payload",
		"deliver.routes[1].url", "deliver.routes[1].tables", "deliver.routes[1].headers", "deliver.routes[1].client_cert_file",
		"deliver.routes[2].signing_secret_env", "deliver.routes[2].name",
	} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("no error for %s in:\n%v", want, err)
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}
