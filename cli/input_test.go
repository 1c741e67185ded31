package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/logtest"
)

// startServeLogged is startServe with the gateway's log kept in capture as
// well as shown by the test.
func startServeLogged(t *testing.T, cfg serveConfig, capture *logtest.Capture) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(teeHandler{slog.NewTextHandler(newTestLog(t), nil), capture})
	go func() { done <- serve(ctx, cfg, log, ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(5 * time.Minute): // a hang guard, as in startServe
		cancel()
		t.Fatal("gateway did not start in 5 minutes")
	}
	return "", nil
}

type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	_ = h.a.Handle(ctx, r.Clone())
	return h.b.Handle(ctx, r)
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}
func (h teeHandler) WithGroup(n string) slog.Handler {
	return teeHandler{h.a.WithGroup(n), h.b.WithGroup(n)}
}

// metricSum adds up every sample of a metric family in /metrics.
func metricSum(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	sum := 0.0
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			require.NoError(t, err, line)
			sum += f
		}
	}
	return sum
}

type errorReply struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func call(t *testing.T, method, url, body string) (int, errorReply, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e errorReply
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e, string(b)
}

// A value the SQL's placeholder cannot take (an int beyond int4, in a key
// or an updater's input) is the caller's error, 400 before any query: it
// never reaches the driver, never counts as the primer's error, never logs
// an ERROR. An input the database refuses (a foreign key, a check) is 400
// too, and its answer names no constraint, table or column: those go to
// the log.
func TestSQLInputsTheDatabaseCannotTake(t *testing.T) {
	url, _ := demoDatabase(t)
	cfg := testConfig(t, t.TempDir())
	cfg.PostgresURL = url
	logs := &logtest.Capture{}
	base, stop := startServeLogged(t, cfg, logs)
	defer func() { require.NoError(t, stop()) }()
	waitReady(t, base)

	for _, tc := range []struct {
		key, says string
	}{
		{"title_list/2147483648", "int4"},
		{"title_list/-2147483649", "int4"},
		{"author/9223372036854775807", "int4"},
		{"author_stats/99999999999", "int4"},
		{"title_list/NaN", "not an integer"},
	} {
		for range 3 { // every time, and never the primer's
			code, e, body := call(t, "GET", base+"/fetch?key="+tc.key, "")
			assert.Equal(t, http.StatusBadRequest, code, "%s: %s", tc.key, body)
			assert.Equal(t, "BAD_USER_INPUT", e.Error.Code, tc.key)
			assert.Contains(t, e.Error.Message, tc.says, tc.key)
		}
	}
	// The edges of int4 pass (no such author: an empty list, or NOT_FOUND).
	for _, key := range []string{"title_list/2147483647", "author/-2147483648"} {
		code, _, body := call(t, "GET", base+"/fetch?key="+key, "")
		assert.Contains(t, []int{200, 404}, code, "%s: %s", key, body)
	}

	for _, tc := range []struct {
		name, input, says string
		hides             []string
	}{
		{"beyond int4", `{"authorId":99999999999,"title":"T","year":2000}`, "int4", nil},
		{"float for an int", `{"authorId":1.5,"title":"T","year":2000}`, "integer", nil},
		{"no such author", `{"authorId":99999,"title":"T","year":2000}`, "refers to a row that does not exist",
			[]string{"titles", "authors", "fkey", "author_id"}},
		{"empty title", `{"authorId":7,"title":"  ","year":2000}`, "breaks a rule",
			[]string{"titles", "title_check", "btrim"}},
		{"NUL in a title", `{"authorId":7,"title":"a\u0000b","year":2000}`, "NUL", nil},
	} {
		code, e, body := call(t, "POST", base+"/update", `{"name":"add_title","input":`+tc.input+`}`)
		assert.Equal(t, http.StatusBadRequest, code, "%s: %s", tc.name, body)
		assert.Equal(t, "BAD_USER_INPUT", e.Error.Code, tc.name)
		assert.Contains(t, e.Error.Message, tc.says, tc.name)
		for _, h := range tc.hides {
			assert.NotContains(t, e.Error.Message, h, "%s: the schema stays in the log", tc.name)
		}
	}
	assert.Equal(t, 1, logs.Count("constraint=titles_title_check"), "the detail is logged")
	assert.Equal(t, 1, logs.Count("constraint=titles_author_id_fkey"))

	assert.Zero(t, metricSum(t, base, "kck_primer_errors_total"), "no primer failed")
	n, errs := logs.Errors()
	assert.Zero(t, n, "%v", errs)
}
