// Command pushlag measures, against a running gateway serving the demo from
// PostgreSQL (kck demo load, then kck serve with KCK_POSTGRES_URL), how long
// a committed source row change takes to reach a subscriber: one WebSocket
// (graphql-transport-ws) subscribed to title_list of -authors authors; for
// each of -changes changes, an UPDATE of one title's year, made directly in
// the database, and the time from its commit to the subscriber receiving
// the version that shows it. Prints p50, p99 and max.
//
// With -refresh-on, the changes are refresh(key) mutations sent to that
// gateway instead (no database needed): with -gateway another gateway of
// the cluster, that measures a change's way through the cache's change
// feed, from the refresh's answer to the subscriber on the other gateway.
//
//	pushlag -gateway http://127.0.0.1:18080 -postgres-url postgres://... [-changes 200] [-authors 20]
//	pushlag -gateway http://B -refresh-on http://A
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
)

type msg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type arrival struct {
	id      string
	payload string
	at      time.Time
}

func main() {
	gw := flag.String("gateway", "http://127.0.0.1:18080", "gateway base URL")
	url := flag.String("postgres-url", os.Getenv("KCK_POSTGRES_URL"), "the gateway's database")
	changes := flag.Int("changes", 200, "source changes to time")
	authors := flag.Int("authors", 20, "authors subscribed to (title_list/1 ...)")
	refreshOn := flag.String("refresh-on", "", "make each change a refresh(key) on this gateway instead of an UPDATE")
	flag.Parse()
	ctx := context.Background()
	var db *pgx.Conn
	if *refreshOn == "" {
		var err error
		db, err = pgx.Connect(ctx, *url)
		check(err)
		defer db.Close(ctx)
	}

	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(*gw, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	check(err)
	defer conn.CloseNow()
	conn.SetReadLimit(4 << 20)
	send := func(m msg) {
		b, _ := json.Marshal(m)
		check(conn.Write(ctx, websocket.MessageText, b))
	}
	arrivals := make(chan arrival, 1024)
	go func() {
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				close(arrivals)
				return
			}
			at := time.Now()
			var m msg
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			switch m.Type {
			case "ping":
				send(msg{Type: "pong"})
			case "next":
				arrivals <- arrival{m.ID, string(m.Payload), at}
			case "error", "complete":
				fail("subscription %s ended: %s", m.ID, m.Payload)
			}
		}
	}()
	send(msg{Type: "connection_init"})
	for a := 1; a <= *authors; a++ {
		p, _ := json.Marshal(map[string]string{"query": fmt.Sprintf(`subscription { product(key: "title_list/%d") { version value } }`, a)})
		send(msg{ID: fmt.Sprint(a), Type: "subscribe", Payload: p})
	}
	for seen := map[string]bool{}; len(seen) < *authors; {
		a, ok := <-arrivals
		if !ok {
			fail("connection closed")
		}
		seen[a.id] = true // the current values
	}

	lags := make([]time.Duration, 0, *changes)
	for i := range *changes {
		author := 1 + i%*authors
		var marker string
		var committed time.Time
		if *refreshOn != "" {
			// At a random phase of the other gateway's feed poll: right
			// after the last push arrived it would wait a whole interval.
			time.Sleep(time.Duration(rand.Int64N(int64(250 * time.Millisecond))))
			v := refresh(*refreshOn, fmt.Sprintf("title_list/%d", author))
			committed = time.Now() // the refresh answers once stored and published
			marker = fmt.Sprintf(`"version":%q`, v)
		} else {
			year := 2101 - 1 - i%1000 // distinct, within the table's check
			marker = fmt.Sprintf(`"year":%d`, year)
			_, err := db.Exec(ctx, `UPDATE titles SET year = $1 WHERE id = (SELECT min(id) FROM titles WHERE author_id = $2)`, year, author)
			check(err)
			committed = time.Now()
		}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case a, ok := <-arrivals:
				if !ok {
					fail("connection closed")
				}
				if a.id == fmt.Sprint(author) && strings.Contains(a.payload, marker) {
					lags = append(lags, a.at.Sub(committed))
					break wait
				}
			case <-timeout:
				fail("title_list/%d never pushed %s", author, marker)
			}
		}
	}
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[int(q*float64(len(lags)-1))] }
	what := "an UPDATE committed"
	if *refreshOn != "" {
		what = "a refresh on another gateway"
	}
	fmt.Printf("| pushed to a subscriber, %s, %d changes | p50 %.1f ms | p99 %.1f ms | max %.1f ms |\n",
		what, len(lags), ms(p(0.5)), ms(p(0.99)), ms(lags[len(lags)-1]))
}

// refresh runs refresh(key) on a gateway and returns the new version.
func refresh(gw, key string) string {
	body, _ := json.Marshal(map[string]string{"query": fmt.Sprintf(`mutation { refresh(key: %q) { version } }`, key)})
	resp, err := http.Post(gw+"/graphql", "application/json", bytes.NewReader(body))
	check(err)
	defer resp.Body.Close()
	var r struct {
		Data struct{ Refresh struct{ Version string } }
	}
	check(json.NewDecoder(resp.Body).Decode(&r))
	if r.Data.Refresh.Version == "" {
		fail("refresh %s on %s: %d", key, gw, resp.StatusCode)
	}
	return r.Data.Refresh.Version
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pushlag: "+format+"\n", args...)
	os.Exit(1)
}
