package cassandra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Which failures of a lightweight transaction leave its outcome unknown
// (settled with a serial read) and which say it did not apply.
func TestCASUnknown(t *testing.T) {
	t.Parallel()
	reset := fmt.Errorf("gocql: failed to read uncompressed frame, err: %w",
		&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"CAS write unknown", &gocql.RequestErrCASWriteUnknown{}, true},
		{"CAS write timeout", &gocql.RequestErrWriteTimeout{WriteType: "CAS"}, true},
		{"simple write timeout", &gocql.RequestErrWriteTimeout{WriteType: "SIMPLE"}, false},
		{"read timeout", &gocql.RequestErrReadTimeout{}, true},
		{"connection reset mid-request", reset, true},
		{"connection closed waiting", fmt.Errorf("cassandra: %w", gocql.ErrConnectionClosed), true},
		{"no response", gocql.ErrTimeoutNoResponse, true},
		{"unavailable: never started", &gocql.RequestErrUnavailable{}, false},
		{"no connections: never sent", gocql.ErrNoConnections, false},
		{"a plain error", errors.New("syntax error"), false},
		{"deadline", context.DeadlineExceeded, true}, // may have been sent: ask (the serial read then fails on the same deadline)
	} {
		if got := casUnknown(tc.err); got != tc.want {
			t.Errorf("%s: casUnknown(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
