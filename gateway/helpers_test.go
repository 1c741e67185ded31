package gateway_test

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/kck-go/kck/cache/cachetest"
)

// newFakeClock is a cache.Clock that moves only when told to.
func newFakeClock() *cachetest.Clock {
	return cachetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// gqlReply is a GraphQL response with its errors' extensions.
type gqlReply struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// gqlBody is the POST body of a query.
func gqlBody(query string) string {
	b, _ := json.Marshal(map[string]string{"query": query})
	return string(b)
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }
