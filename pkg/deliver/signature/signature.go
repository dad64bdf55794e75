package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret's text form.
const SecretPrefix = "whsec_"

// Secret is one HMAC key.
type Secret []byte

// ParseSecret decodes "whsec_<base64>". The error never contains the secret.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, SecretPrefix) {
		return nil, errors.New("a signing secret must start with whsec_ followed by base64 (generate one with: pgcdc deliver secret)")
	}
	b, err := base64.StdEncoding.DecodeString(s[len(SecretPrefix):])
	if err != nil {
		return nil, errors.New("a signing secret must be whsec_ followed by standard base64 (the part after whsec_ does not decode)")
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("a signing secret must hold at least 16 bytes (this one holds %d); the specification recommends 24 to 64", len(b))
	}
	return Secret(b), nil
}

// ParseSecrets parses a list of secrets separated by blanks, commas or new lines (the form of an
// environment variable or a secret file): every one of them signs.
func ParseSecrets(s string) ([]Secret, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if len(fields) == 0 {
		return nil, errors.New("no signing secret found (want one or more whsec_... values)")
	}
	out := make([]Secret, 0, len(fields))
	for i, f := range fields {
		sec, err := ParseSecret(f)
		if err != nil {
			return nil, fmt.Errorf("secret %d of %d: %w", i+1, len(fields), err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// NewSecret returns a fresh random 32-byte secret in its whsec_ form.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// String is the secret's whsec_ form.
func (s Secret) String() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s) }

// sign is the base64 HMAC-SHA256 of "id.timestamp.body" under s.
func (s Secret) sign(id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, s)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Signer signs with every one of its secrets.
type Signer struct {
	Secrets []Secret
}

// Signature returns the webhook-signature header value: "v1,<sig>" per secret, space-separated.
func (g Signer) Signature(id string, ts time.Time, body []byte) string {
	var b strings.Builder
	for i, s := range g.Secrets {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(s.sign(id, ts.Unix(), body))
	}
	return b.String()
}

// Sign sets webhook-id, webhook-timestamp and (when g has secrets) webhook-signature on h.
func (g Signer) Sign(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(g.Secrets) > 0 {
		h.Set(HeaderSignature, g.Signature(id, ts, body))
	}
}

// Verification errors.
var (
	ErrMissingHeader = errors.New("webhook signature: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp     = errors.New("webhook signature: timestamp outside the tolerance")
	ErrNoMatch       = errors.New("webhook signature: no signature matches")
)

// Verify checks a received request's headers and raw body against secrets, as a receiver does:
// the timestamp must be within tolerance of now, and one v1 signature must match one secret.
func Verify(h http.Header, body []byte, secrets []Secret, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeader
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook signature: timestamp %q is not Unix seconds", tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	for _, s := range secrets {
		want := []byte(s.sign(id, ts, body))
		for _, part := range strings.Fields(sigs) {
			version, sig, ok := strings.Cut(part, ",")
			if ok && version == "v1" && subtle.ConstantTimeCompare([]byte(sig), want) == 1 {
				return nil
			}
		}
	}
	return ErrNoMatch
}
