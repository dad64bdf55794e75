package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// With ha.enabled a lost connection to PostgreSQL makes the process stand by again; anything else
// (a setup or privilege problem) still ends it with the error.
func TestConnectionLost(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", fmt.Errorf("postgres: read server settings: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"refused", fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"insufficient privilege", &pgconn.PgError{Code: "42501"}, false},
		{"undefined object", fmt.Errorf("publication: %w", &pgconn.PgError{Code: "42704"}), false},
		{"bad password", &pgconn.PgError{Code: "28P01"}, false},
		{"plain", errors.New("kafka.acks: bad"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connectionLost(tt.err); got != tt.want {
				t.Errorf("connectionLost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
