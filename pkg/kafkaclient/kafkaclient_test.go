package kafkaclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pgcdc/pgcdc/internal/testcerts"
)

const secret = "Sup3r-S3cret-Value"

func TestSecretNeverPrints(t *testing.T) {
	s := Settings{Brokers: []string{"b:9092"}, Security: Security{SASL: SASL{Mechanism: "scram-sha-512", Username: "u", Password: secret,
		OAuth: OAuth{ClientSecret: secret}}}}
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s.Security.SASL.Password, s.Security.SASL.Password, s.Security.SASL.Password),
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(b))
	for _, o := range outs {
		if strings.Contains(o, secret) || strings.Contains(o, fmt.Sprintf("%x", secret)) {
			t.Errorf("secret shown: %s", o)
		}
	}
	if !strings.Contains(outs[1], "xxxxx") {
		t.Errorf("no placeholder in %s", outs[1])
	}
	if s.Security.SASL.Password.Reveal() != secret || Secret("").String() != "" {
		t.Error("Reveal/String")
	}
}

// tokenServer is an OAuth token endpoint (TLS) that issues numbered tokens to client "pgcdc" with
// the right secret.
type tokenServer struct {
	*httptest.Server
	issued atomic.Int64
	status atomic.Int64 // answer this HTTP status instead (0: normal)
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{}
	ts.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := ts.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			_, _ = io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"try later"}`)
			return
		}
		id, pw, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_request"}`)
			return
		}
		if !ok || id != "pgcdc" || pw != secret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"bad client credentials"}`)
			return
		}
		if r.PostForm.Get("scope") == "forbidden" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_scope"}`)
			return
		}
		n := ts.issued.Add(1)
		// header.payload.signature; the payload names the subject.
		tok := "eyJhbGciOiJub25lIn0." + b64(fmt.Sprintf(`{"sub":"svc-pgcdc","n":%d}`, n)) + ".sig"
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func pemOf(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

func poolOf(ca *testcerts.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func writeCA(t *testing.T, srv *httptest.Server) string {
	p := filepath.Join(t.TempDir(), "idp-ca.pem")
	c := srv.Certificate()
	if err := os.WriteFile(p, pemOf(c.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOAuthBearerMechanism(t *testing.T) {
	ts := newTokenServer(t)
	ca := writeCA(t, ts.Server)
	o := OAuth{TokenURL: ts.URL + "/token", ClientID: "pgcdc", ClientSecret: secret, CAFile: ca,
		Extensions: map[string]string{"logicalCluster": "lkc-1", "identityPoolId": "pool-2"}}
	m, err := newOAuthBearer(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One fresh token per Start (per connection).
	for i := 1; i <= 2; i++ {
		sess, ir, err := m.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := "n,,\x01auth=Bearer eyJhbGciOiJub25lIn0." + b64(fmt.Sprintf(`{"sub":"svc-pgcdc","n":%d}`, i)) + ".sig\x01identityPoolId=pool-2\x01logicalCluster=lkc-1\x01\x01"
		if string(ir) != want {
			t.Fatalf("initial response %q, want %q", ir, want)
		}
		done, resp, err := sess.Next(ctx, nil)
		if !done || resp != nil || err != nil {
			t.Fatalf("Next(success) = %v %q %v", done, resp, err)
		}
	}
	if ts.issued.Load() != 2 || m.lastSubject() != "svc-pgcdc" {
		t.Errorf("issued %d, subject %q", ts.issued.Load(), m.lastSubject())
	}
	// The broker's RFC 7628 error answer.
	sess, _, _ := m.Start(ctx)
	_, _, err = sess.Next(ctx, []byte(`{"status":"invalid_token","scope":"kafka"}`))
	if !IsPermanent(err) || !strings.Contains(err.Error(), "invalid_token") || !strings.Contains(err.Error(), "kafka.sasl.oauth") {
		t.Errorf("refused token: %v", err)
	}

	tests := []struct {
		name      string
		edit      func(o *OAuth)
		status    int
		setting   string
		permanent bool
	}{
		{"wrong secret", func(o *OAuth) { o.ClientSecret = "wrong-" + secret }, 0, "kafka.sasl.oauth.client_secret", true},
		{"bad scope", func(o *OAuth) { o.Scope = "forbidden" }, 0, "kafka.sasl.oauth.scope", true},
		{"endpoint down", func(o *OAuth) {}, http.StatusServiceUnavailable, "kafka.sasl.oauth.token_url", false},
		{"untrusted endpoint", func(o *OAuth) { o.CAFile = "" }, 0, "kafka.sasl.oauth.ca_file", true},
		{"not found", func(o *OAuth) { o.TokenURL = ts.URL + "/nothing"; o.ClientSecret = secret }, http.StatusNotFound, "kafka.sasl.oauth.token_url", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.status.Store(int64(tt.status))
			defer ts.status.Store(0)
			o2 := o
			tt.edit(&o2)
			m, err := newOAuthBearer(o2)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = m.Start(ctx)
			var e *Error
			if !errors.As(err, &e) || e.Setting != tt.setting || e.Permanent != tt.permanent {
				t.Fatalf("error %v (%#v), want setting %s permanent %v", err, e, tt.setting, tt.permanent)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// The client secret file is read for every token: a rotated secret is used without a restart.
func TestOAuthSecretFileRotation(t *testing.T) {
	ts := newTokenServer(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := newOAuthBearer(OAuth{TokenURL: ts.URL, ClientID: "pgcdc", ClientSecretFile: file, CAFile: writeCA(t, ts.Server)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Start(context.Background()); err == nil {
		t.Fatal("old secret accepted")
	}
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Start(context.Background()); err != nil {
		t.Fatalf("rotated secret: %v", err)
	}
}

// tlsListener serves TLS with cert on loopback, answering nothing; it records handshake results.
func tlsListener(t *testing.T, cert tls.Certificate, clientCAs *testcerts.CA) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCAs != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = poolOf(clientCAs)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, cfg)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if tc.Handshake() == nil {
				_, _ = bufio.NewReader(tc).ReadByte() // wait for the client to go
			}
			_ = tc.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return l.Addr().String()
}

func TestDialTLSErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcerts.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := testcerts.NewCA("other CA")
	caFile, _ := ca.WriteCA(dir, "ca")
	otherFile, _ := other.WriteCA(dir, "other")
	issue := func(o testcerts.Options) tls.Certificate {
		l, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := tlsListener(t, issue(testcerts.Options{CommonName: "broker", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}), nil)
	named := tlsListener(t, issue(testcerts.Options{CommonName: "broker", DNSNames: []string{"broker.example"}}), nil)
	expired := tlsListener(t, issue(testcerts.Options{CommonName: "old", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}), nil)
	mtls := tlsListener(t, issue(testcerts.Options{CommonName: "broker", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}), ca)
	clientLeaf, _ := ca.Issue(testcerts.Options{CommonName: "pgcdc-client", Client: true})
	clientCert, clientKey, _ := clientLeaf.Write(dir, "client")
	strangerLeaf, _ := other.Issue(testcerts.Options{CommonName: "stranger", Client: true})
	strangerCert, strangerKey, _ := strangerLeaf.Write(dir, "stranger")
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { // a plaintext listener that answers garbage
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = plain.Close() })

	tests := []struct {
		name    string
		addr    string
		tls     TLS
		setting string // "" = success
		msg     string
	}{
		{"verified", good, TLS{Enabled: true, CAFile: caFile}, "", ""},
		{"untrusted CA", good, TLS{Enabled: true, CAFile: otherFile}, "kafka.tls.ca_file", "not signed by a trusted CA"},
		{"system roots", good, TLS{Enabled: true}, "kafka.tls.ca_file", "not signed by a trusted CA"},
		{"wrong host", named, TLS{Enabled: true, CAFile: caFile}, "kafka.brokers", `not valid for "127.0.0.1" (it names broker.example)`},
		{"server name fixes it", named, TLS{Enabled: true, CAFile: caFile, ServerName: "broker.example"}, "", ""},
		{"wrong server name", good, TLS{Enabled: true, CAFile: caFile, ServerName: "elsewhere"}, "kafka.tls.server_name", "not valid for"},
		{"expired", expired, TLS{Enabled: true, CAFile: caFile}, "kafka.tls", "expired on"},
		{"skip verify", expired, TLS{Enabled: true, InsecureSkipVerify: true}, "", ""},
		{"no TLS there", plain.Addr().String(), TLS{Enabled: true, CAFile: caFile}, "kafka.tls.enabled", "does not speak TLS"},
		{"mtls", mtls, TLS{Enabled: true, CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}, "", ""},
		{"mtls without cert", mtls, TLS{Enabled: true, CAFile: caFile}, "kafka.tls.cert_file", "requires a client certificate"},
		{"mtls with a stranger's cert", mtls, TLS{Enabled: true, CAFile: caFile, CertFile: strangerCert, KeyFile: strangerKey}, "kafka.tls.cert_file", "refused pgcdc's client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(context.Background(), Settings{Brokers: []string{tt.addr}, DialTimeout: 5 * time.Second, Security: Security{TLS: tt.tls}})
			if err != nil {
				t.Fatal(err)
			}
			var state *tls.ConnectionState
			conn, err := c.dialFunc(func(s tls.ConnectionState) { state = &s })(context.Background(), "tcp", tt.addr)
			if err == nil {
				// TLS 1.3 servers judge the client certificate after the client's handshake ended:
				// the refusal arrives with the first read, as kafka-go would see it.
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = conn.Write([]byte{0})
				_, err = conn.Read(make([]byte, 1))
				if errors.Is(err, io.EOF) || isTimeout(err) {
					err = nil
				}
				_ = conn.Close()
				err = c.Explain(err)
			}
			if tt.setting == "" {
				if err != nil || state == nil || state.Version < tls.VersionTLS12 {
					t.Fatalf("err %v, state %v", err, state)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Setting != tt.setting || !e.Permanent || !strings.Contains(e.Msg, tt.msg) {
				t.Fatalf("error %v, want permanent %s: %q", err, tt.setting, tt.msg)
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestNewErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	_ = os.WriteFile(junk, []byte("not a certificate"), 0o600)
	tests := []struct {
		name    string
		s       Security
		setting string
	}{
		{"ca not pem", Security{TLS: TLS{Enabled: true, CAFile: junk}}, "kafka.tls.ca_file"},
		{"ca missing", Security{TLS: TLS{Enabled: true, CAFile: filepath.Join(dir, "none")}}, "kafka.tls.ca_file"},
		{"bad key pair", Security{TLS: TLS{Enabled: true, CertFile: junk, KeyFile: junk}}, "kafka.tls.cert_file"},
		{"bad version", Security{TLS: TLS{Enabled: true, MinVersion: "1.0"}}, "kafka.tls.min_version"},
		{"password file missing", Security{SASL: SASL{Mechanism: "scram-sha-256", Username: "u", PasswordFile: filepath.Join(dir, "none")}}, "kafka.sasl.password_file"},
		{"no password", Security{SASL: SASL{Mechanism: "plain", Username: "u"}}, "kafka.sasl.password"},
		{"bad mechanism", Security{SASL: SASL{Mechanism: "kerberos"}}, "kafka.sasl.mechanism"},
		{"oauth without client", Security{SASL: SASL{Mechanism: "oauthbearer", OAuth: OAuth{TokenURL: "https://idp/t"}}}, "kafka.sasl.oauth.client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), Settings{Brokers: []string{"b:9092"}, Security: tt.s})
			var e *Error
			if !errors.As(err, &e) || e.Setting != tt.setting {
				t.Fatalf("error %v, want setting %s", err, tt.setting)
			}
		})
	}
}

func TestExplainKafkaErrors(t *testing.T) {
	c := &Client{s: Settings{Security: Security{SASL: SASL{Mechanism: "scram-sha-512"}}}}
	tests := []struct {
		err       error
		setting   string
		permanent bool
	}{
		{fmt.Errorf("x: %w: Authentication failed during authentication due to invalid credentials", kafka.SASLAuthenticationFailed), "kafka.sasl.username/kafka.sasl.password", true},
		{kafka.UnsupportedSASLMechanism, "kafka.sasl.mechanism", true},
		{kafka.IllegalSASLState, "kafka.sasl.mechanism", true},
		{io.EOF, "kafka.tls.enabled", false},
	}
	for _, tt := range tests {
		var e *Error
		err := c.Explain(tt.err)
		if !errors.As(err, &e) || e.Setting != tt.setting || e.Permanent != tt.permanent {
			t.Errorf("Explain(%v) = %v, want %s permanent %v", tt.err, err, tt.setting, tt.permanent)
		}
	}
	if err := c.Explain(kafka.NotLeaderForPartition); IsPermanent(err) {
		t.Errorf("not leader: %v", err)
	}
	c.s.Security.TLS.Enabled = true
	if err := c.Explain(io.EOF); err != io.EOF {
		t.Errorf("EOF with TLS on: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		s    Security
		want []string
	}{
		{Security{}, []string{"kafka.tls.enabled is false"}},
		{Security{TLS: TLS{Enabled: true}}, nil},
		{Security{TLS: TLS{Enabled: true, InsecureSkipVerify: true}}, []string{"kafka.tls.insecure_skip_verify is true"}},
		{Security{SASL: SASL{Mechanism: "plain", Username: "u", Password: "p"}}, []string{"kafka.tls.enabled is false", "plain without TLS"}},
		{Security{TLS: TLS{Enabled: true}, SASL: SASL{Mechanism: "oauthbearer", OAuth: OAuth{TokenURL: "http://idp/token", ClientID: "c", ClientSecret: "s"}}},
			[]string{"token_url is http://"}},
	}
	for _, tt := range tests {
		c, err := New(context.Background(), Settings{Brokers: []string{"b:9092"}, Security: tt.s})
		if err != nil {
			t.Fatal(err)
		}
		got := c.Warnings()
		if len(got) != len(tt.want) {
			t.Errorf("%+v: warnings %q, want %q", tt.s, got, tt.want)
			continue
		}
		for i := range got {
			if !strings.Contains(got[i].Msg, tt.want[i]) || got[i].Fix == "" {
				t.Errorf("%+v: warning %q, want %q", tt.s, got[i], tt.want[i])
			}
		}
	}
}
