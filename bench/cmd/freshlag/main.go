// Command freshlag measures, against a running gateway serving the demo from
// PostgreSQL (kck demo load, then kck serve with KCK_POSTGRES_URL):
//
//  1. freshness lag: from the commit of a source row change (an UPDATE of a
//     title's year, made directly in the database) to the gateway serving
//     the affected product with the change, p50 and p99 over -changes runs;
//
//  2. database pressure: the queries Postgres ran (pg_stat_statements, this
//     database only) while the gateway served -reads reads of hot products.
//
//     freshlag -gateway http://127.0.0.1:18080 -postgres-url postgres://... [-changes 200] [-reads 100000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	gw := flag.String("gateway", "http://127.0.0.1:18080", "gateway base URL")
	url := flag.String("postgres-url", os.Getenv("KCK_POSTGRES_URL"), "the gateway's database")
	changes := flag.Int("changes", 200, "source changes to time")
	reads := flag.Int("reads", 100000, "hot reads while counting queries")
	flag.Parse()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, *url)
	check(err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
	check(err)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	get := func(key string) string {
		resp, err := client.Get(*gw + "/fetch?key=" + key)
		check(err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		check(err)
		if resp.StatusCode != 200 {
			fail("%s: %d %s", key, resp.StatusCode, b)
		}
		return string(b)
	}

	// 1. Freshness lag.
	lags := make([]time.Duration, 0, *changes)
	for i := range *changes {
		author := 1 + i%100
		key := fmt.Sprintf("title_list/%d", author)
		get(key)                  // cached before the change
		year := 2101 - 1 - i%1000 // distinct, within the table's check
		marker := fmt.Sprintf(`"year":%d`, year)
		_, err := conn.Exec(ctx, `UPDATE titles SET year = $1 WHERE id = (SELECT min(id) FROM titles WHERE author_id = $2)`, year, author)
		check(err)
		committed := time.Now()
		for !strings.Contains(get(key), marker) {
			if time.Since(committed) > 10*time.Second {
				fail("%s never showed %s", key, marker)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lags = append(lags, time.Since(committed))
	}
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[int(q*float64(len(lags)-1))] }
	fmt.Printf("| freshness lag, %d changes | p50 %.1f ms | p99 %.1f ms | max %.1f ms |\n",
		len(lags), ms(p(0.5)), ms(p(0.99)), ms(lags[len(lags)-1]))

	// 2. Database pressure of hot reads.
	var hot []string
	for a := 1; a <= 100; a++ {
		hot = append(hot, fmt.Sprintf("title_list/%d", a), fmt.Sprintf("author_stats/%d", a))
	}
	hot = append(hot, "top_authors/10")
	for _, k := range hot {
		get(k)
	}
	time.Sleep(500 * time.Millisecond) // let refreshes of the changes above finish
	before := queries(ctx, conn)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(*reads) {
					return
				}
				get(hot[i%int64(len(hot))])
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := queries(ctx, conn)
	fmt.Printf("| database pressure | %d reads of %d hot products in %.1f s | %d queries in Postgres |\n",
		*reads, len(hot), elapsed.Seconds(), after-before-1) // -1: our own counting query
}

// queries is the number of statements this database has run.
func queries(ctx context.Context, conn *pgx.Conn) int64 {
	var n int64
	check(conn.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n))
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "freshlag: "+format+"\n", args...)
	os.Exit(1)
}
