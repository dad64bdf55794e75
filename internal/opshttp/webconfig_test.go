package opshttp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/pgcdc/pgcdc/internal/metrics"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and returns their paths and
// a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgcdc-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With metrics.web_config_file the endpoint serves HTTPS with basic auth, as the Prometheus web
// configuration file says; without a valid login every path answers 401.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webFile := filepath.Join(dir, "web.yml")
	yml := "tls_server_config:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\nbasic_auth_users:\n  prometheus: " + string(hash) + "\n"
	if err := os.WriteFile(webFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	m := metrics.New("v1")
	srv, err := Start(Options{Key: "metrics.listen", Listen: "127.0.0.1:0", WebConfigFile: webFile, WebConfigKey: "metrics.web_config_file"}, m, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, user, password string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	base := "https://" + srv.Addr()
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, _ := get(base+path, "", ""); code != 401 {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
		if code, _ := get(base+path, "prometheus", "wrong"); code != 401 {
			t.Errorf("%s with a wrong password: %d, want 401", path, code)
		}
	}
	if code, body := get(base+"/metrics", "prometheus", "s3cret"); code != 200 || !strings.Contains(body, `pgcdc_build_info{version="v1"} 1`) {
		t.Errorf("/metrics with credentials: %d\n%.300s", code, body)
	}
	if code, body := get(base+"/healthz", "prometheus", "s3cret"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// Plain HTTP on the TLS port gets no metrics.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + srv.Addr() + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "pgcdc_") {
			t.Errorf("plain HTTP answered %d with metrics", resp.StatusCode)
		}
	}
}

// A web configuration file that cannot be used stops Start with an error naming the key.
func TestWebConfigInvalid(t *testing.T) {
	dir := t.TempDir()
	for name, yml := range map[string]string{
		"missing cert":   "tls_server_config:\n  cert_file: " + filepath.Join(dir, "nope.crt") + "\n  key_file: " + filepath.Join(dir, "nope.key") + "\n",
		"not yaml":       "tls_server_config: [\n",
		"unknown field":  "tls_server_cfg:\n  cert_file: x\n",
		"plain password": "basic_auth_users:\n  prometheus: notahash\n",
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yml")
		if err := os.WriteFile(f, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Start(Options{Key: "metrics.listen", Listen: "127.0.0.1:0", WebConfigFile: f, WebConfigKey: "metrics.web_config_file"}, metrics.New("v"), zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "metrics.web_config_file") {
			t.Errorf("%s: err = %v, want an error naming metrics.web_config_file", name, err)
		}
	}
}
