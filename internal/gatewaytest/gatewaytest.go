// Package gatewaytest waits for a gateway under test to be ready, on
// progress rather than on the machine's speed.
package gatewaytest

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Stall is how long WaitReady lets /readyz go unchanged, with warming's
// keys done not rising, before it gives up. Warming that moves at all, however
// slowly (a cold cluster on a busy machine), is waited for.
const Stall = 90 * time.Second

// progress matches the count /readyz gives while boot warming runs.
var progress = regexp.MustCompile(`\((\d+) of (\d+) keys\)`)

// WaitReady polls base+"/readyz" until it answers 200. It fails the test
// when the answer stops changing for Stall (warming made no progress, or the
// gateway is stuck), saying what /readyz last said and how far warming got.
func WaitReady(t testing.TB, client *http.Client, base string) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	var (
		last     string
		done     = -1
		changed  = time.Now()
		tick     = time.NewTicker(50 * time.Millisecond)
		started  = time.Now()
		lastCode int
	)
	defer tick.Stop()
	for range tick.C {
		code, body := get(client, base+"/readyz")
		if code == http.StatusOK {
			t.Logf("gateway %s ready after %s", base, time.Since(started).Round(time.Millisecond))
			return
		}
		n := -1
		if m := progress.FindStringSubmatch(body); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if code != lastCode || n > done || n < 0 && body != last {
			changed = time.Now()
		}
		last, lastCode = body, code
		if n >= 0 {
			done = n
		}
		if time.Since(changed) > Stall {
			t.Fatalf("gateway %s not ready after %s and no progress for %s; last /readyz (%d): %s",
				base, time.Since(started).Round(time.Second), Stall, code, body)
		}
	}
}

func get(client *http.Client, url string) (int, string) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}
