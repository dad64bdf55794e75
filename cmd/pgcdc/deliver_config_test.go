package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/deliver"
	"github.com/pgcdc/pgcdc/pkg/deliver/signature"
)

// Secrets and headers come from the environment and files, never from the file's plain values;
// a missing variable or file is an error naming the route key.
func TestDeliverRouteSecrets(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	secretFile := filepath.Join(dir, "secrets")
	s1, s2 := signature.NewSecret(), signature.NewSecret()
	if err := os.WriteFile(keyFile, []byte("k-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(s1+"\n"+s2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOK_AUTH", "Bearer abc")
	t.Setenv("HOOK_URL", "https://hooks.example.com/x?token=t0k")
	rt, err := buildRoute(config.RouteConfig{
		Name: "r", URLEnv: "HOOK_URL", Tables: []string{"public.*"},
		Headers: map[string]string{"X-Team": "a"}, HeaderEnv: map[string]string{"Authorization": "HOOK_AUTH"},
		HeaderFiles: map[string]string{"X-Api-Key": keyFile}, SigningSecretFile: secretFile,
	}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if rt.URL != "https://hooks.example.com/x?token=t0k" || rt.Header.Get("Authorization") != "Bearer abc" || rt.Header.Get("X-Api-Key") != "k-123" ||
		rt.Header.Get("X-Team") != "a" || len(rt.Signer.Secrets) != 2 || rt.Topics[0] != "app.public.*" || rt.Timeout != config.DefaultRouteTimeout {
		t.Fatalf("route: %+v", rt)
	}
	if strings.Contains(rt.RedactedURL(), "t0k") {
		t.Fatalf("redacted URL shows the token: %s", rt.RedactedURL())
	}
	_, err = buildRoute(config.RouteConfig{Name: "r", URLEnv: "NOPE_URL", Tables: []string{"public.*"},
		HeaderEnv: map[string]string{"Authorization": "NOPE_AUTH"}, SigningSecretEnv: "NOPE_SECRET", HeaderFiles: map[string]string{"X": filepath.Join(dir, "missing")}}, "app")
	for _, want := range []string{"url_env: the environment variable NOPE_URL is not set", "header_env[Authorization]: the environment variable NOPE_AUTH", "signing_secret_env", "header_files[X]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	t.Setenv("BAD_SECRET", "not-a-secret")
	if _, err := buildRoute(config.RouteConfig{Name: "r", URL: "http://h", Tables: []string{"public.*"}, SigningSecretEnv: "BAD_SECRET"}, "app"); err == nil ||
		!strings.Contains(err.Error(), "whsec_") || strings.Contains(err.Error(), "not-a-secret") {
		t.Errorf("bad secret: %v", err)
	}
}

// pgcdc deliver needs no postgres.* settings; kafka.topic_prefix only when a route names tables.
func TestDeliverConfigIgnoresPostgres(t *testing.T) {
	t.Setenv("PGCDC_POSTGRES_DSN", "")
	t.Setenv("PGCDC_KAFKA_BROKERS", "localhost:9092")
	t.Setenv("PGCDC_DELIVER_ROUTES", `[{name: a, url: "http://h", topics: [x]}]`)
	var errOut bytes.Buffer
	cfg, ok := loadDeliverConfig("", &errOut)
	if !ok {
		t.Fatalf("rejected: %s", errOut.String())
	}
	o, err := deliverOptions(cfg, zerolog.Nop(), deliver.NewMetrics("test"))
	if err != nil || len(o.Routes) != 1 || o.DeadLetterTopic != "pgcdc-deliver.dlq" {
		t.Fatalf("options: %v %+v", err, o)
	}
	t.Setenv("PGCDC_DELIVER_ROUTES", `[{name: a, url: "http://h", tables: [public.x]}]`)
	errOut.Reset()
	if _, ok := loadDeliverConfig("", &errOut); ok || !strings.Contains(errOut.String(), "kafka.topic_prefix") {
		t.Fatalf("tables without topic_prefix accepted: %s", errOut.String())
	}
}

// A route's ca_file makes an endpoint with a private CA trusted, and client_cert_file/key_file
// present a client certificate to an endpoint that requires one (mutual TLS).
func TestDeliverRouteTLS(t *testing.T) {
	dir := t.TempDir()
	clientCert, clientKey, clientPool := selfSigned(t, dir)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	post := func(tc *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		resp, err := c.Post(srv.URL, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	full, err := routeTLS(config.RouteConfig{CAFile: caFile, ClientCertFile: clientCert, ClientKeyFile: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := post(full); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	noClient, _ := routeTLS(config.RouteConfig{CAFile: caFile})
	if err := post(noClient); err == nil {
		t.Fatal("the server requiring a client certificate accepted none")
	}
	if err := post(nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without ca_file: %v", err)
	}
	if _, err := routeTLS(config.RouteConfig{CAFile: clientKey}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a key as CA file: %v", err)
	}
}

// selfSigned writes a client certificate and key and returns their files and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgcdc-deliver-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestDeliverSecretCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"deliver", "secret"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if _, err := signature.ParseSecret(strings.TrimSpace(out.String())); err != nil {
		t.Fatalf("printed secret %q: %v", out.String(), err)
	}
}
