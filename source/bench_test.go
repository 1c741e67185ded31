package source_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/source"
)

// BenchmarkSourceWrite is what the change log costs the source database:
// an UPDATE of one row per transaction (the common write) on a table
// without a trigger ("plain"), on one whose trigger only NOTIFYs the
// changed keys ("notify": the trigger before the change log, which loses
// what nobody listened to), and on one whose trigger records the change in
// kck_source_changes and wakes the follower ("logged"). Each op is one
// committed transaction, 8 writers at once. The ratios are the triggers'
// price on the writes teams already make (docs/scaling.md).
func BenchmarkSourceWrite(b *testing.B) {
	url := pgtest.Database(b)
	ctx := context.Background()
	p, err := source.Open(ctx, url)
	require.NoError(b, err)
	defer p.Close()
	for _, table := range []string{"plain", "notify", "logged"} {
		_, err := p.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, n bigint)`, table))
		require.NoError(b, err)
		_, err = p.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, 0 FROM generate_series(1, 1000) g`, table))
		require.NoError(b, err)
	}
	require.NoError(b, source.Migrate(ctx, p, map[string][]string{"logged": {"id"}}))
	_, err = p.Exec(ctx, notifyOnly)
	require.NoError(b, err)
	for _, table := range []string{"plain", "notify", "logged"} {
		b.Run(table, func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(4) // 8 writers on 2 cores
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, err := p.Exec(ctx, fmt.Sprintf(`UPDATE %s SET n = n + 1 WHERE id = $1`, table), i%1000+1); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "writes/s")
		})
	}
}

// notifyOnly is the trigger KCK installed before the change log: NOTIFY
// with the row's keys, read by whoever listens at that moment.
const notifyOnly = `
CREATE FUNCTION notify_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE keys_new jsonb; keys_old jsonb;
BEGIN
	IF TG_OP <> 'DELETE' THEN
		SELECT jsonb_object_agg(k, to_jsonb(NEW) -> k) INTO keys_new FROM unnest(TG_ARGV) AS k;
	END IF;
	IF TG_OP <> 'INSERT' THEN
		SELECT jsonb_object_agg(k, to_jsonb(OLD) -> k) INTO keys_old FROM unnest(TG_ARGV) AS k;
	END IF;
	PERFORM pg_notify('bench_changes', jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'new', keys_new, 'old', keys_old)::text);
	RETURN NULL;
END $$;
CREATE TRIGGER notify_only AFTER INSERT OR UPDATE OR DELETE ON notify FOR EACH ROW EXECUTE FUNCTION notify_only('id')`
