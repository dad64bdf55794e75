package signature

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference libraries' test vector: reproducing it is what says a receiver's
// library accepts what pgcdc sends (a round trip through our own Verify would not).
func TestSpecificationVector(t *testing.T) {
	sec, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Signer{Secrets: []Secret{sec}}.Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

func TestRotationAndVerify(t *testing.T) {
	oldS, _ := ParseSecret(NewSecret())
	newS, _ := ParseSecret(NewSecret())
	other, _ := ParseSecret(NewSecret())
	now := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	body := []byte(`{"a":1}`)
	Signer{Secrets: []Secret{newS, oldS}}.Sign(h, "evt-1", now, body)
	if n := len(strings.Fields(h.Get(HeaderSignature))); n != 2 {
		t.Fatalf("want 2 signatures, got %q", h.Get(HeaderSignature))
	}
	for _, tc := range []struct {
		name    string
		secrets []Secret
		body    string
		now     time.Time
		want    error
	}{
		{"new secret", []Secret{newS}, `{"a":1}`, now, nil},
		{"old secret", []Secret{oldS}, `{"a":1}`, now, nil},
		{"unknown secret", []Secret{other}, `{"a":1}`, now, ErrNoMatch},
		{"tampered body", []Secret{newS}, `{"a":2}`, now, ErrNoMatch},
		{"too old", []Secret{newS}, `{"a":1}`, now.Add(6 * time.Minute), ErrTimestamp},
		{"from the future", []Secret{newS}, `{"a":1}`, now.Add(-6 * time.Minute), ErrTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(h, []byte(tc.body), tc.secrets, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if err := Verify(http.Header{}, body, []Secret{newS}, now, time.Minute); !errors.Is(err, ErrMissingHeader) {
		t.Fatalf("no headers: %v", err)
	}
}

func TestUnsignedSetsIDAndTimestamp(t *testing.T) {
	h := http.Header{}
	Signer{}.Sign(h, "x", time.Unix(42, 0), nil)
	if h.Get(HeaderID) != "x" || h.Get(HeaderTimestamp) != "42" || h.Get(HeaderSignature) != "" {
		t.Fatalf("headers %v", h)
	}
}

func TestParseSecrets(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	for _, tc := range []struct {
		in      string
		n       int
		wantErr string
	}{
		{a, 1, ""},
		{a + " " + b, 2, ""},
		{a + ",\n" + b + "\n", 2, ""},
		{"", 0, "no signing secret"},
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0, "must start with whsec_"},
		{"whsec_!!!", 0, "does not decode"},
		{"whsec_c2hvcnQ=", 0, "at least 16 bytes"},
		{a + " nope", 0, "secret 2 of 2"},
	} {
		got, err := ParseSecrets(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSecrets(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "MfKQ9r8") {
				t.Errorf("error reveals the secret: %v", err)
			}
			continue
		}
		if err != nil || len(got) != tc.n {
			t.Errorf("ParseSecrets(%q) = %d, %v", tc.in, len(got), err)
		}
	}
	s, _ := ParseSecret(a)
	if s.String() != a {
		t.Errorf("String() = %q, want %q", s.String(), a)
	}
}
