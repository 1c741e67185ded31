package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/browsertest"
)

// A gateway told to stop (SIGTERM) under load loses no request, and its
// subscribers move to another gateway without missing a version. Two
// gateway processes on one keyspace; on A, a load of GraphQL and /fetch
// requests, acting as a load balancer would (it stops sending once it has
// seen /readyz fail), requests whose body is still arriving when A closes
// its listener, and graphql-ws's own client in Node (browser/drain.mjs)
// subscribed to a product.
//
//  1. SIGTERM: /readyz answers 503 at once; A keeps serving requests, and
//     its subscriber is pushed a version made meanwhile.
//  2. A second SIGTERM ends the drain delay (set long, so that step 1 is
//     not a race with the machine's speed): the listener closes (new
//     connections are refused), the requests in flight are answered, the
//     WebSocket is closed with 1001, A exits 0.
//  3. The client resumes on B with the last version it saw, after a
//     version was made that it missed: the first message is the newest
//     version in the store, then it is pushed the next one. This depends
//     on B's store reads, not on how versions travel between gateways.
func TestDrainUnderLoad(t *testing.T) {
	t.Parallel()
	cl := cassandraCluster(t)
	// A drains for long (startGateways' default is no delay).
	a := startGateways(t, 1, cl, "KCK_DRAIN_DELAY=10m")[0]
	b := startGateways(t, 1, cl)[0]

	node := browsertest.Command(t, t.Context(), "drain.mjs", a.base, b.base)
	stdin, err := node.StdinPipe()
	require.NoError(t, err)
	stdout, err := node.StdoutPipe()
	require.NoError(t, err)
	var nodeErr lockedBuffer
	node.Stderr = &nodeErr
	require.NoError(t, node.Start())
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.Logf("drain.mjs: %s", sc.Text())
			lines <- sc.Text()
		}
		close(lines)
	}()
	// expect returns the fields of the client's next line starting with
	// word, skipping the others.
	expect := func(word string) []string {
		t.Helper()
		timeout := time.After(2 * time.Minute) // a hang guard
		for {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "drain.mjs ended before %q: %s", word, nodeErr.String())
				if f := strings.Fields(l); len(f) > 0 && f[0] == word {
					return f[1:]
				}
			case <-timeout:
				t.Fatalf("drain.mjs said no %q", word)
			}
		}
	}
	v0 := expect("next")[0]
	t.Logf("subscribed on A at version %s", v0)

	load := newLoad(a.base)
	load.start(4)
	require.Eventually(t, func() bool { return load.ok.Load() >= 200 }, 2*time.Minute, 10*time.Millisecond)

	// 1. Draining.
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { return readyz(a.base) == http.StatusServiceUnavailable }, time.Minute, 10*time.Millisecond)
	drainStarted := load.ok.Load()
	vd := refresh(t, a, "title_list/7")
	for v := expect("next")[0]; v != vd; v = expect("next")[0] {
		require.Less(t, ver(t, v), ver(t, vd), "versions come in order")
	}
	require.Eventually(t, func() bool { return load.ok.Load() >= drainStarted+200 }, 2*time.Minute, 10*time.Millisecond,
		"A keeps serving while it drains")
	// Requests in flight when the listener closes: their bodies are
	// finished only once connections are refused.
	closed := make(chan struct{})
	var slow sync.WaitGroup
	slowErrs := make(chan error, 3)
	for i := range 3 {
		started := make(chan struct{})
		slow.Go(func() { slowErrs <- slowRequest(strings.TrimPrefix(a.base, "http://"), i, started, closed) })
		<-started
	}
	load.stop() // the load balancer has seen /readyz fail: it sends no more

	// 2. Closing.
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool {
		_, err := net.Dial("tcp", strings.TrimPrefix(a.base, "http://"))
		return errors.Is(err, syscall.ECONNREFUSED)
	}, time.Minute, 5*time.Millisecond, "the listener closes")
	close(closed)
	slow.Wait()
	close(slowErrs)
	for err := range slowErrs {
		assert.NoError(t, err, "a request in flight when the listener closed")
	}
	f := expect("closed")
	require.Equal(t, "1001", f[0])
	require.Equal(t, vd, f[1], "the client saw every version on A")
	require.NoError(t, a.cmd.Wait(), "A exits 0: everything in flight was answered")
	assert.Zero(t, load.failed.Load(), "failed requests: %v", load.errs())
	t.Logf("load: %d requests answered, %d of them after /readyz failed; none failed", load.ok.Load(), load.ok.Load()-drainStarted)

	// 3. Resuming on B, with a version made meanwhile.
	missed := refresh(t, b, "title_list/7")
	require.Greater(t, ver(t, missed), ver(t, vd))
	_, err = fmt.Fprintf(stdin, "resume %s\n", missed)
	require.NoError(t, err)
	first := expect("resumed")[0]
	require.GreaterOrEqual(t, ver(t, first), ver(t, missed))
	after := refresh(t, b, "title_list/7")
	_, err = fmt.Fprintf(stdin, "expect %s\n", after)
	require.NoError(t, err)
	require.Equal(t, after, expect("next")[0])
	err = node.Wait()
	require.NoError(t, err, "drain.mjs: %s", nodeErr.String())
}

// lockedBuffer is a process's output, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func readyz(base string) int {
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// refresh recomputes key on g and returns the new version.
func refresh(t *testing.T, g *gateway, key string) string {
	t.Helper()
	d := g.graphql(t, fmt.Sprintf(`mutation { refresh(key: %q) { version } }`, key))
	return d["refresh"].(map[string]any)["version"].(string)
}

func ver(t *testing.T, s string) uint64 {
	t.Helper()
	var v uint64
	_, err := fmt.Sscan(s, &v)
	require.NoError(t, err)
	return v
}

// load sends requests to one gateway from a few workers until stopped,
// counting what was answered and what failed.
type load struct {
	base       string
	ok, failed atomic.Int64
	quit       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	failures   []string
}

func newLoad(base string) *load { return &load{base: base, quit: make(chan struct{})} }

func (l *load) start(workers int) {
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.quit:
					return
				default:
				}
				if err := l.one(w, i); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						l.failures = append(l.failures, err.Error())
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		})
	}
}

// one sends a /fetch (GET) or a GraphQL query (POST), by turns, over the
// client's keep-alive connections.
func (l *load) one(w, i int) error {
	author := 1 + (w*31+i)%50
	var (
		resp *http.Response
		err  error
	)
	if i%2 == 0 {
		resp, err = client.Get(fmt.Sprintf("%s/fetch?key=title_list/%d", l.base, author))
	} else {
		body := fmt.Sprintf(`{"query":"{ titleList(authorId: %d) { title } }"}`, author)
		resp, err = client.Post(l.base+"/graphql", "application/json", strings.NewReader(body))
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(b, []byte(`"errors"`)) {
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

func (l *load) stop() {
	close(l.quit)
	l.wg.Wait()
}

func (l *load) errs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures
}

// slowRequest sends a GraphQL query to addr on a connection of its own:
// the request line, the headers and half the body, then (once closed is
// closed) the rest; it checks the answer. started is closed once the first
// half is written.
func slowRequest(addr string, i int, started, closed chan struct{}) error {
	body := []byte(fmt.Sprintf(`{"query":"{ titleList(authorId: %d) { title } }"}`, 60+i))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		close(started)
		return err
	}
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(body), body[:len(body)/2])
	close(started)
	if err != nil {
		return err
	}
	<-closed
	if _, err := conn.Write(body[len(body)/2:]); err != nil {
		return fmt.Errorf("the rest of the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("the answer: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   struct{ TitleList []struct{ Title string } }
		Errors []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(out.Errors) > 0 || len(out.Data.TitleList) == 0 {
		return fmt.Errorf("status %d, errors %v, %d titles", resp.StatusCode, out.Errors, len(out.Data.TitleList))
	}
	return nil
}
