package kafkaclient

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/sasl"
)

// awsEnv points the AWS credential chain at static environment credentials only: no shared files,
// no instance metadata (nothing leaves this machine).
func awsEnv(t *testing.T, keyID, secretKey, region string) {
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": secretKey, "AWS_SESSION_TOKEN": "", "AWS_REGION": region,
		"AWS_DEFAULT_REGION": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
}

// The AWS_MSK_IAM initial response is a SigV4-presigned kafka-cluster:Connect request; the signature
// is recomputed here from the AWS specification (canonical request, string to sign, derived key).
func TestAWSMSKIAMSigning(t *testing.T) {
	const keyID, secretKey = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	awsEnv(t, keyID, secretKey, "us-east-1")
	for _, tt := range []struct{ configured, want string }{{"", "us-east-1"}, {"eu-west-1", "eu-west-1"}} {
		t.Run("region "+tt.want, func(t *testing.T) {
			c, err := New(context.Background(), Settings{Brokers: []string{"b-1.msk.example:9098"},
				Security: Security{TLS: TLS{Enabled: true}, SASL: SASL{Mechanism: "aws-msk-iam", AWSRegion: tt.configured}}})
			if err != nil {
				t.Fatal(err)
			}
			if c.mech.Name() != "AWS_MSK_IAM" {
				t.Fatalf("mechanism %s", c.mech.Name())
			}
			ctx := sasl.WithMetadata(context.Background(), &sasl.Metadata{Host: "b-1.msk.example", Port: 9098})
			sess, ir, err := c.mech.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if done, _, err := sess.Next(ctx, []byte(`{"version":"2020_10_22","request-id":"x"}`)); !done || err != nil {
				t.Fatalf("Next: %v %v", done, err)
			}
			var got map[string]string
			if err := json.Unmarshal(ir, &got); err != nil {
				t.Fatalf("initial response %q: %v", ir, err)
			}
			if strings.Contains(string(ir), secretKey) {
				t.Fatal("the initial response carries the secret key")
			}
			date := got["x-amz-date"]
			signed, err := time.Parse("20060102T150405Z", date)
			if err != nil || time.Since(signed).Abs() > time.Minute {
				t.Fatalf("x-amz-date %q", date)
			}
			scope := date[:8] + "/" + tt.want + "/kafka-cluster/aws4_request"
			for k, v := range map[string]string{
				"version": "2020_10_22", "host": "b-1.msk.example", "action": "kafka-cluster:Connect",
				"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": keyID + "/" + scope,
				"x-amz-signedheaders": "host", "x-amz-expires": "300",
			} {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			query := map[string]string{
				"Action": got["action"], "X-Amz-Algorithm": got["x-amz-algorithm"], "X-Amz-Credential": got["x-amz-credential"],
				"X-Amz-Date": date, "X-Amz-Expires": got["x-amz-expires"], "X-Amz-SignedHeaders": "host",
			}
			want := sigV4(secretKey, date, tt.want, "b-1.msk.example", query)
			if got["x-amz-signature"] != want {
				t.Errorf("signature %s, recomputed %s", got["x-amz-signature"], want)
			}
			src, err := awsSource(context.Background(), c.awsCred)
			if err != nil || !strings.Contains(src, "Env") {
				t.Errorf("credential source %q, %v", src, err)
			}
		})
	}
}

// sigV4 computes the signature of a presigned GET / to host (AWS Signature Version 4).
func sigV4(secretKey, date, region, host string, query map[string]string) string {
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = uriEncode(k) + "=" + uriEncode(query[k])
	}
	const emptyPayload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	canonical := strings.Join([]string{"GET", "/", strings.Join(parts, "&"), "host:" + host + "\n", "host", emptyPayload}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	scope := date[:8] + "/" + region + "/kafka-cluster/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+secretKey), date[:8])
	k = mac(k, region)
	k = mac(k, "kafka-cluster")
	k = mac(k, "aws4_request")
	return hex.EncodeToString(mac(k, toSign))
}

// uriEncode is SigV4's URI encoding: unreserved characters kept, the rest %XX upper case.
func uriEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestAWSMSKIAMNeedsRegion(t *testing.T) {
	awsEnv(t, "AKIDEXAMPLE", "x", "")
	_, err := New(context.Background(), Settings{Brokers: []string{"b:9098"}, Security: Security{SASL: SASL{Mechanism: "aws-msk-iam"}}})
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.aws_region") {
		t.Fatalf("err %v", err)
	}
}
