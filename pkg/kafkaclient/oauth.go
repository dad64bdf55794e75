package kafkaclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go/sasl"
)

// oauthBearer is SASL/OAUTHBEARER (RFC 7628) with tokens from an OAuth 2 client-credentials grant
// (RFC 6749 section 4.4). kafka-go never re-authenticates a connection, so every Start (one per new
// connection) fetches a fresh token: a connection begins with a token's whole lifetime, and when a
// broker with connections.max.reauth.ms ends the session the connection is dropped, the request
// retried, and the new connection authenticates with a new token.
type oauthBearer struct {
	o      OAuth
	client *http.Client

	mu      sync.Mutex
	subject string // "sub" of the last token, for check's report
}

func newOAuthBearer(o OAuth) (*oauthBearer, error) {
	u, err := url.Parse(o.TokenURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &Error{Setting: "kafka.sasl.oauth.token_url", Permanent: true, Msg: fmt.Sprintf("invalid URL %q: want https://host/path", o.TokenURL)}
	}
	if o.ClientID == "" {
		return nil, &Error{Setting: "kafka.sasl.oauth.client_id", Permanent: true, Msg: "required for mechanism oauthbearer"}
	}
	if _, err := resolve("kafka.sasl.oauth.client_secret", o.ClientSecret, o.ClientSecretFile); err != nil {
		return nil, &Error{Setting: "kafka.sasl.oauth.client_secret", Permanent: true, Msg: "cannot read the client secret", Err: err}
	}
	pool, err := loadCAs("kafka.sasl.oauth.ca_file", o.CAFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &oauthBearer{o: o, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

func (m *oauthBearer) Name() string { return "OAUTHBEARER" }

// Start fetches a token and returns the client's first message: the GS2 header, the token and the
// extensions, separated by 0x01 (RFC 7628 section 3.1).
func (m *oauthBearer) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	token, err := m.fetchToken(ctx)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	m.subject = tokenSubject(token)
	m.mu.Unlock()
	return oauthSession{}, initialResponse(token, m.o.Extensions), nil
}

// initialResponse builds "n,,\x01auth=Bearer <token>\x01[key=value\x01...]\x01".
func initialResponse(token string, ext map[string]string) []byte {
	var b strings.Builder
	b.WriteString("n,,\x01auth=Bearer ")
	b.WriteString(token)
	b.WriteByte(1)
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + ext[k])
		b.WriteByte(1)
	}
	b.WriteByte(1)
	return []byte(b.String())
}

type oauthSession struct{}

// Next handles the server's answer: empty means success; otherwise it is an RFC 7628 error
// ({"status":"invalid_token",...}), reported with the settings to check.
func (oauthSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	if len(challenge) == 0 {
		return true, nil, nil
	}
	var e struct {
		Status string `json:"status"`
		Scope  string `json:"scope"`
	}
	_ = json.Unmarshal(challenge, &e)
	msg := "the broker refused the token"
	if e.Status != "" {
		msg += " (status " + e.Status + ")"
	}
	if e.Scope != "" {
		msg += ", the broker wants scope " + strings.TrimSpace(e.Scope)
	}
	return false, nil, &Error{Setting: "kafka.sasl.oauth", Permanent: true,
		Msg: msg + ": check kafka.sasl.oauth (token_url, client_id, scope) against the broker's sasl.oauthbearer.expected.audience/expected.issuer and JWKS"}
}

// fetchToken runs the client-credentials grant. Errors name the setting to fix and never contain the
// client secret or a token.
func (m *oauthBearer) fetchToken(ctx context.Context) (string, error) {
	secret, err := resolve("kafka.sasl.oauth.client_secret", m.o.ClientSecret, m.o.ClientSecretFile)
	if err != nil {
		return "", &Error{Setting: "kafka.sasl.oauth.client_secret", Permanent: true, Msg: "cannot read the client secret", Err: err}
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if m.o.Scope != "" {
		form.Set("scope", m.o.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.o.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &Error{Setting: "kafka.sasl.oauth.token_url", Permanent: true, Msg: "invalid URL"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: client id and secret form-encoded, then HTTP basic authentication.
	req.SetBasicAuth(url.QueryEscape(m.o.ClientID), url.QueryEscape(secret))
	resp, err := m.client.Do(req)
	if err != nil {
		if x := explainTLS(err, TLS{}, "token endpoint"); x != nil {
			return "", x
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL
		}
		return "", &Error{Setting: "kafka.sasl.oauth.token_url", Msg: "the token endpoint did not answer", Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", &Error{Setting: "kafka.sasl.oauth.token_url", Msg: "reading the token endpoint's answer", Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return "", tokenError(resp.StatusCode, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", &Error{Setting: "kafka.sasl.oauth.token_url", Permanent: true, Msg: "the token endpoint's answer holds no access_token (is it an OAuth 2 token endpoint?)"}
	}
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "bearer") {
		return "", &Error{Setting: "kafka.sasl.oauth.token_url", Permanent: true, Msg: fmt.Sprintf("the token endpoint issued a %q token, not a bearer token", tok.TokenType)}
	}
	return tok.AccessToken, nil
}

// tokenError explains a refused token request (RFC 6749 section 5.2). Only the error code and its
// description are shown, never the body as a whole.
func tokenError(status int, body []byte) error {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &e)
	detail := fmt.Sprintf("HTTP %d", status)
	if e.Error != "" {
		detail += ", " + clip(e.Error, 60)
		if e.Description != "" {
			detail += ": " + clip(e.Description, 200)
		}
	}
	switch {
	case e.Error == "invalid_client" || e.Error == "unauthorized_client" || status == http.StatusUnauthorized:
		return &Error{Setting: "kafka.sasl.oauth.client_secret", Permanent: true, Msg: "the token endpoint refused the client (" + detail + "): check kafka.sasl.oauth.client_id and the client secret"}
	case e.Error == "invalid_scope":
		return &Error{Setting: "kafka.sasl.oauth.scope", Permanent: true, Msg: "the token endpoint refused the scope (" + detail + ")"}
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed || e.Error == "unsupported_grant_type" || e.Error == "invalid_request":
		return &Error{Setting: "kafka.sasl.oauth.token_url", Permanent: true, Msg: "the token endpoint refused the request (" + detail + "): is it the token endpoint, and is the client allowed the client_credentials grant?"}
	}
	return &Error{Setting: "kafka.sasl.oauth.token_url", Msg: "the token endpoint failed (" + detail + ")"}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// tokenSubject returns the "sub" claim of a JWT (unverified: for display only), or "".
func tokenSubject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.Sub
}

// lastSubject returns the subject of the last token fetched.
func (m *oauthBearer) lastSubject() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subject
}
