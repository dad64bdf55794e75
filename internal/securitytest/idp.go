package securitytest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/pgcdc/pgcdc/internal/testcerts"
)

// IdP is a tiny OAuth 2 identity provider: a client-credentials token endpoint over TLS (certificate
// from the test CA) issuing RS256 JWTs, and their JWKS over plain HTTP for the broker.
type IdP struct {
	TokenURL string // https://127.0.0.1:port/token
	JWKSURL  string // http://127.0.0.1:port/jwks
	Issuer   string
	Audience string

	clients map[string]string // client id -> secret
	subject map[string]string // client id -> sub claim
	key     *rsa.PrivateKey
	kid     string
	token   *httptest.Server
	jwks    *httptest.Server

	mu     sync.Mutex
	issued []string // every token issued (secrets: they must never be logged)
}

func newIdP(ca *testcerts.CA, clients, subjects map[string]string) (*IdP, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue(testcerts.Options{CommonName: "idp", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}})
	if err != nil {
		return nil, err
	}
	pair, err := leaf.TLSCertificate()
	if err != nil {
		return nil, err
	}
	p := &IdP{Issuer: "https://idp.pgcdc.test", Audience: "kafka", clients: clients, subject: subjects, key: key, kid: "pgcdc-test-key"}
	p.token = httptest.NewUnstartedServer(http.HandlerFunc(p.serveToken))
	p.token.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	p.token.StartTLS()
	p.jwks = httptest.NewServer(http.HandlerFunc(p.serveJWKS))
	p.TokenURL = p.token.URL + "/token"
	p.JWKSURL = p.jwks.URL + "/jwks"
	return p, nil
}

// Close stops both endpoints.
func (p *IdP) Close() {
	p.token.Close()
	p.jwks.Close()
}

// Issued returns the tokens issued so far.
func (p *IdP) Issued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

func (p *IdP) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	id, secret, ok := r.BasicAuth()
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_request"}`))
		return
	}
	if !ok || p.clients[id] == "" || p.clients[id] != secret {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"unknown client or wrong secret"}`))
		return
	}
	now := time.Now()
	tok, err := p.sign(map[string]any{"sub": p.subject[id], "iss": p.Issuer, "aud": p.Audience, "iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "kafka"})
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	p.issued = append(p.issued, tok)
	p.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

func (p *IdP) sign(claims map[string]any) (string, error) {
	enc := func(v any) (string, error) {
		b, err := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b), err
	}
	h, err := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": p.kid})
	if err != nil {
		return "", err
	}
	c, err := enc(claims)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(h + "." + c))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return h + "." + c + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func (p *IdP) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	pub := p.key.PublicKey
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": p.kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func (p *IdP) String() string { return fmt.Sprintf("IdP(token %s, jwks %s)", p.TokenURL, p.JWKSURL) }
