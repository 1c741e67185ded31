//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The workload is the demo's, on Postgres, cut to 100 authors (warming 300
// takes a minute on a busy machine, per gateway): title_list/<author>
// warmed at boot for every author (the hot products, served from memory),
// author_stats/<author> and top_authors/<n> computed on first read (the
// misses), add_title through /update (the writes: an INSERT, then the
// author's title_list and author_stats refreshed and returned).
const authors = 100

// topKeys is how many top_authors/<n> keys the misses read. Every write
// refreshes each of them (their source is the whole titles table): 100 of
// them kept the refreshes, and their Cassandra leases (Paxos), at the
// background slots' limit all along, and the machine's two cores so busy
// that a Cassandra node took 100 to 160 s to restart.
const topKeys = 10

func hotStream(rate float64, gws ...*gateway) stream {
	return stream{class: "hot reads", rate: rate, next: func(seq int64) call {
		return call{gw: gws[seq%int64(len(gws))], path: fmt.Sprintf("/fetch?key=title_list/%d", 1+rand.IntN(authors))}
	}}
}

// missKey is the seq-th key never read before by this stream: author_stats/
// for every author, then top_authors/1..topKeys; then they repeat as hits.
func missKey(seq int64) string {
	i := seq % (authors + topKeys)
	if i < authors {
		return fmt.Sprintf("author_stats/%d", i+1)
	}
	return fmt.Sprintf("top_authors/%d", i-authors+1)
}

func missStream(rate float64, gws ...*gateway) stream {
	return missStreamTo(rate, roundRobin(gws))
}

// missStreamTo is missStream to the gateways pick chooses.
func missStreamTo(rate float64, pick func(seq int64) *gateway) stream {
	return stream{class: "misses", rate: rate, next: func(seq int64) call {
		return call{gw: pick(seq), path: "/fetch?key=" + missKey(seq)}
	}}
}

// roundRobin picks the gateways in turn.
func roundRobin(gws []*gateway) func(seq int64) *gateway {
	return func(seq int64) *gateway { return gws[seq%int64(len(gws))] }
}

// writes tracks the add_title writes sent: which were acknowledged.
type writes struct {
	prefix string
	mu     sync.Mutex
	acked  map[string]int // title -> author
	failed map[string]int
}

func newWrites(prefix string) *writes {
	return &writes{prefix: prefix, acked: map[string]int{}, failed: map[string]int{}}
}

func (w *writes) stream(rate float64, gws ...*gateway) stream {
	return w.streamTo(rate, roundRobin(gws))
}

// The seq-th write's title and author.
func (w *writes) title(seq int64) string { return fmt.Sprintf("%s-%d", w.prefix, seq) }
func (w *writes) author(seq int64) int   { return 1 + int(seq*7919%authors) }

func (w *writes) record(title string, author int, acked bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if acked {
		w.acked[title] = author
	} else {
		w.failed[title] = author
	}
}

// count is how many writes were acknowledged so far.
func (w *writes) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// streamTo is stream to the gateways pick chooses.
func (w *writes) streamTo(rate float64, pick func(seq int64) *gateway) stream {
	type input struct {
		AuthorID int    `json:"authorId"`
		Title    string `json:"title"`
		Year     int    `json:"year"`
	}
	return stream{class: "writes", rate: rate,
		next: func(seq int64) call {
			in := input{AuthorID: w.author(seq), Title: w.title(seq), Year: 2000 + int(seq%20)}
			b, _ := json.Marshal(map[string]any{"name": "add_title", "input": in})
			return call{gw: pick(seq), method: http.MethodPost, path: "/update", body: string(b)}
		},
		done: func(seq int64, c call, status int, body []byte) {
			w.record(w.title(seq), w.author(seq), status == 200)
		}}
}

// sourceStream inserts titles straight into the source database, asking
// no gateway: only the follower of the change log brings them to the
// products. A committed insert counts as acknowledged.
func (w *writes) sourceStream(rate float64, pool *pgxpool.Pool) stream {
	return stream{class: "source changes", rate: rate, exec: func(seq int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := pool.Exec(ctx, "INSERT INTO titles (author_id, title, year) VALUES ($1, $2, $3)", w.author(seq), w.title(seq), 2000+int(seq%20))
		w.record(w.title(seq), w.author(seq), err == nil)
		return err
	}}
}

// refreshStream refreshes a random title_list through GraphQL.
func refreshStream(rate float64, gws ...*gateway) stream {
	return stream{class: "refreshes", rate: rate,
		next: func(seq int64) call {
			q := fmt.Sprintf(`{"query":"mutation { refresh(key: \"title_list/%d\") { version } }"}`, 1+rand.IntN(authors))
			return call{gw: gws[seq%int64(len(gws))], method: http.MethodPost, path: "/graphql", body: q}
		},
		ok: graphqlOK}
}

// graphqlOK: a 200 with no errors.
func graphqlOK(status int, body []byte) bool {
	return status == 200 && !strings.Contains(string(body), `"errors"`)
}

// sourceTitles reads the titles of the suite's writes from Postgres, by
// author.
func sourceTitles(ctx context.Context, dsn, prefix string) (map[string]int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT title, author_id FROM titles WHERE title LIKE $1", prefix+"-%")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var (
			title  string
			author int
		)
		if err := rows.Scan(&title, &author); err != nil {
			return nil, err
		}
		out[title] = author
	}
	return out, rows.Err()
}

// servedTitles reads the titles of an author's title_list on a gateway.
func servedTitles(g *gateway, author int) ([]string, error) {
	p, err := g.fetch(fmt.Sprintf("title_list/%d", author))
	if err != nil {
		return nil, err
	}
	var list []struct {
		Title string `json:"title"`
	}
	if err := json.Unmarshal(p.Value, &list); err != nil {
		return nil, err
	}
	out := make([]string, len(list))
	for i, l := range list {
		out[i] = l.Title
	}
	return out, nil
}

// dataCheck is what became of the writes once the system recovered.
type dataCheck struct {
	acked, failed int
	lost          []string // acknowledged, absent from Postgres
	halfWritten   []string // refused, yet present in Postgres
	took          time.Duration
}

// converge waits until every gateway serves, for every author the writes
// touched, exactly the titles Postgres holds (the products caught up with
// the source), and checks the acknowledged writes against Postgres. It
// fails the test when they do not agree within the bound.
func (w *writes) converge(t *testing.T, dsn string, within time.Duration, gws ...*gateway) dataCheck {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now()
	w.mu.Lock()
	dc := dataCheck{acked: len(w.acked), failed: len(w.failed)}
	w.mu.Unlock()
	var last string
	ok := false
	for time.Since(t0) < within {
		src, err := sourceTitles(ctx, dsn, w.prefix)
		if err != nil {
			last = err.Error()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		byAuthor := map[int][]string{}
		w.mu.Lock()
		for _, m := range []map[string]int{w.acked, w.failed} {
			for _, a := range m {
				byAuthor[a] = nil
			}
		}
		w.mu.Unlock()
		for title, a := range src {
			byAuthor[a] = append(byAuthor[a], title)
		}
		last = ""
	check:
		for a, want := range byAuthor {
			slices.Sort(want)
			for _, g := range gws {
				got, err := servedTitles(g, a)
				if err != nil {
					last = err.Error()
					break check
				}
				got = slices.DeleteFunc(got, func(s string) bool { return !strings.HasPrefix(s, w.prefix+"-") })
				slices.Sort(got)
				if !slices.Equal(got, want) {
					last = fmt.Sprintf("%s serves title_list/%d with %d of the suite's titles, Postgres holds %d", g.name, a, len(got), len(want))
					break check
				}
			}
		}
		if last == "" {
			w.mu.Lock()
			for title := range w.acked {
				if _, ok := src[title]; !ok {
					dc.lost = append(dc.lost, title)
				}
			}
			for title := range w.failed {
				if _, ok := src[title]; ok {
					dc.halfWritten = append(dc.halfWritten, title)
				}
			}
			w.mu.Unlock()
			ok = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	dc.took = time.Since(t0)
	require.True(t, ok, "the products did not catch up with Postgres within %v: %s", within, last)
	require.Empty(t, dc.lost, "acknowledged writes lost")
	return dc
}

// reflected waits until every gateway's title_list holds every write
// acknowledged so far (writes may go on meanwhile: the later ones are not
// waited for), and checks that Postgres holds each. It fails the test when
// one is missing from Postgres, or from a gateway's products after within.
func (w *writes) reflected(t *testing.T, dsn string, within time.Duration, gws ...*gateway) dataCheck {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now()
	w.mu.Lock()
	dc := dataCheck{acked: len(w.acked), failed: len(w.failed)}
	byAuthor := map[int][]string{}
	for title, a := range w.acked {
		byAuthor[a] = append(byAuthor[a], title)
	}
	w.mu.Unlock()
	src, err := sourceTitles(ctx, dsn, w.prefix)
	require.NoError(t, err)
	for _, titles := range byAuthor {
		for _, title := range titles {
			if _, ok := src[title]; !ok {
				dc.lost = append(dc.lost, title)
			}
		}
	}
	require.Empty(t, dc.lost, "acknowledged writes absent from Postgres")
	// (gateway, author) pairs seen holding every title: not read again.
	done := map[[2]int]bool{}
	var last string
	for {
		last = ""
		for gi, g := range gws {
			for a, titles := range byAuthor {
				if done[[2]int{gi, a}] {
					continue
				}
				got, err := servedTitles(g, a)
				if err != nil {
					last = fmt.Sprintf("%s: title_list/%d: %v", g.name, a, err)
					continue
				}
				missing := 0
				for _, title := range titles {
					if !slices.Contains(got, title) {
						missing++
					}
				}
				if missing > 0 {
					last = fmt.Sprintf("%s serves title_list/%d without %d of its %d acknowledged titles", g.name, a, missing, len(titles))
					continue
				}
				done[[2]int{gi, a}] = true
			}
		}
		if last == "" {
			break
		}
		require.Less(t, time.Since(t0), within, "acknowledged writes not reflected in every gateway's products: %s", last)
		time.Sleep(100 * time.Millisecond)
	}
	dc.took = time.Since(t0)
	return dc
}

func (d dataCheck) String() string {
	return fmt.Sprintf("%d of %d acknowledged writes lost", len(d.lost), d.acked)
}
