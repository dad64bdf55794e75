package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/pgcdc/pgcdc/pkg/deliver/signature"
)

// runWebhook serves a webhook endpoint on loopback and prints every request it gets (the
// Standard Webhooks headers, whether the signature verifies, the JSON body), answering 200. It
// writes its URL to -url-file once listening and exits after -n requests or -timeout.
func runWebhook(args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	urlFile := fs.String("url-file", "", "write the endpoint's URL here once listening (required)")
	n := fs.Int("n", 3, "exit after this many requests")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	secretEnv := fs.String("secret-env", "", "environment variable holding the whsec_ secret to verify signatures with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *urlFile == "" {
		return errors.New("-url-file is required")
	}
	var secrets []signature.Secret
	if *secretEnv != "" {
		s, err := signature.ParseSecrets(os.Getenv(*secretEnv))
		if err != nil {
			return fmt.Errorf("%s: %w", *secretEnv, err)
		}
		secrets = s
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/hooks/orders"
	if err := os.WriteFile(*urlFile, []byte(url+"\n"), 0o644); err != nil {
		return err
	}
	var mu sync.Mutex
	got := 0
	done := make(chan struct{})
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		verdict := "not checked"
		if len(secrets) > 0 {
			verdict = "valid"
			if err := signature.Verify(r.Header, body, secrets, time.Now(), 5*time.Minute); err != nil {
				verdict = "INVALID: " + err.Error()
			}
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "  ", "  ") != nil {
			pretty.Reset()
			pretty.Write(body)
		}
		mu.Lock()
		got++
		fmt.Printf("\n%s── webhook call %d: %s %s%s\n", style(bold+cyan), got, r.Method, r.URL.Path, style(reset))
		for _, h := range []string{"Content-Type", "User-Agent", "webhook-id", "webhook-timestamp", "webhook-signature", "Pgcdc-Topic", "Pgcdc-Offset", "Pgcdc-Lsn", "Pgcdc-Attempt"} {
			if v := r.Header.Get(h); v != "" {
				fmt.Printf("  %s%s:%s %s\n", style(dim), h, style(reset), v)
			}
		}
		fmt.Printf("  %ssignature:%s %s\n  %s\n", style(dim), style(reset), verdict, pretty.String())
		if got == *n {
			close(done)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(*timeout):
		return fmt.Errorf("got %d of %d webhook calls in %s", got, *n, *timeout)
	}
}
