// Command pushlag measures, against a running gateway serving the demo from
// PostgreSQL (kck demo load, then kck serve with KCK_POSTGRES_URL), how long
// a committed source row change takes to reach a subscriber: one WebSocket
// (graphql-transport-ws) subscribed to title_list of -authors authors; for
// each of -changes changes, an UPDATE of one title's year, made directly in
// the database, and the time from its commit to the subscriber receiving
// the version that shows it. Prints p50, p99 and max.
//
//	pushlag -gateway http://127.0.0.1:18080 -postgres-url postgres://... [-changes 200] [-authors 20]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
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
	flag.Parse()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, *url)
	check(err)
	defer db.Close(ctx)

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
		year := 2101 - 1 - i%1000 // distinct, within the table's check
		marker := fmt.Sprintf(`"year":%d`, year)
		_, err := db.Exec(ctx, `UPDATE titles SET year = $1 WHERE id = (SELECT min(id) FROM titles WHERE author_id = $2)`, year, author)
		check(err)
		committed := time.Now()
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
	fmt.Printf("| pushed to a subscriber, %d changes | p50 %.1f ms | p99 %.1f ms | max %.1f ms |\n",
		len(lags), ms(p(0.5)), ms(p(0.99)), ms(lags[len(lags)-1]))
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
