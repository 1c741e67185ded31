package gateway

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/graph"
)

// peekMap is the in-process tier's versions, as a map; its epoch moves
// with every change, as the cache's does.
type peekMap struct {
	mu    sync.Mutex
	v     map[string]uint64
	epoch atomic.Uint64
}

func (m *peekMap) Now() time.Time { return time.Now() }

func (m *peekMap) Epoch() uint64 { return m.epoch.Load() }

func (m *peekMap) PeekAt(key string, _ time.Time) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.v[key]
	return v, ok
}

func (m *peekMap) set(key string, v uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.v[key] = v
	m.epoch.Add(1)
}

func (m *peekMap) remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.v, key)
	m.epoch.Add(1)
}

// A response is replayed while every product it read is fresh at the
// version it read, and only for the identity it was stored under.
func TestResponseCacheChecksEveryRead(t *testing.T) {
	t.Parallel()
	vs := &peekMap{v: map[string]uint64{"a/1": 3, "b/1": 7}}
	rc, err := newResponseCache(vs, 1<<20, nil, 0, [numCodings]prometheus.Counter{})
	require.NoError(t, err)
	ident := []byte("POST application/json {...}")
	h := rc.hash(ident)
	header := http.Header{"Content-Type": []string{"application/json"}}
	rc.put(h, ident, true, false, header, []byte(`{"data":{}}`), []graph.Read{{Key: "a/1", Version: 3}, {Key: "b/1", Version: 7}})
	rc.entries.CleanUp()

	e, ok := rc.get(h, ident)
	require.True(t, ok, "both reads current")
	require.Equal(t, `{"data":{}}`, string(e.body))
	require.Equal(t, []string{"application/json"}, e.contentType)

	_, ok = rc.get(h, []byte("POST application/json {...}!"))
	require.False(t, ok, "the same hash, another identity")

	vs.set("b/1", 8)
	_, ok = rc.get(h, ident)
	require.False(t, ok, "b/1 moved on")
	vs.set("b/1", 7)
	_, ok = rc.get(h, ident)
	require.True(t, ok)

	vs.remove("a/1") // stale, expired or evicted here
	_, ok = rc.get(h, ident)
	require.False(t, ok, "a/1 no longer fresh in process")
}
