package source

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Channel is the NOTIFY channel the change triggers wake the follower on.
const Channel = "kck_changes"

// The change log. A trigger on each source table records every row change
// (the table, the operation and the key columns of the old and new row) in
// kck_source_changes, in the writing transaction, and NOTIFYs Channel with
// an empty payload to wake the follower (notifications with one payload
// are folded into one per transaction). The follower reads the log in
// (xid, id) order from where it stopped, which it keeps in
// kck_source_position, so a follower that was away -- its connection
// lost, its gateway dead, another gateway taking over -- reads every change
// it missed, exactly: nothing is lost, and nothing need be refreshed just
// in case.
//
// Why (xid, id) and the snapshot's xmin: ids are handed out when a row is
// inserted, not when its transaction commits, so a reader that sees id 11
// may not yet see id 10. Reading only rows whose transaction id is below
// the snapshot's xmin reads only finished transactions, and no row with a
// transaction id below xmin can appear later: the position only moves
// forward over rows that will never change. A long-running writing
// transaction holds the follower back (its lag, not its correctness).
const migration = `
CREATE TABLE IF NOT EXISTS kck_source_changes (
	xid      xid8 NOT NULL DEFAULT pg_current_xact_id(),
	id       bigint GENERATED ALWAYS AS IDENTITY,
	at       timestamptz NOT NULL DEFAULT clock_timestamp(),
	tbl      text NOT NULL,
	op       text NOT NULL,
	new_keys jsonb,
	old_keys jsonb,
	PRIMARY KEY (xid, id)
);
CREATE TABLE IF NOT EXISTS kck_source_position (
	follower text PRIMARY KEY,
	xid      xid8 NOT NULL,
	id       bigint NOT NULL,
	updated  timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION kck_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	keys_new jsonb;
	keys_old jsonb;
BEGIN
	IF TG_OP <> 'DELETE' THEN
		SELECT jsonb_object_agg(k, to_jsonb(NEW) -> k) INTO keys_new FROM unnest(TG_ARGV) AS k;
	END IF;
	IF TG_OP <> 'INSERT' THEN
		SELECT jsonb_object_agg(k, to_jsonb(OLD) -> k) INTO keys_old FROM unnest(TG_ARGV) AS k;
	END IF;
	INSERT INTO kck_source_changes (tbl, op, new_keys, old_keys) VALUES (TG_TABLE_NAME, TG_OP, keys_new, keys_old);
	PERFORM pg_notify('` + Channel + `', '');
	RETURN NULL;
END
$$`

// Migrate is the explicit, idempotent migration of the change log: its
// tables, the trigger function, and on each table an AFTER
// INSERT/UPDATE/DELETE row trigger that records the given key columns of
// the old and new row (tables maps a table to those columns).
func Migrate(ctx context.Context, conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, tables map[string][]string) error {
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	sort.Strings(names)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Serialise concurrent migrations of several gateways.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7238)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, migration); err != nil {
			return fmt.Errorf("change log: create tables and function: %w", err)
		}
		for _, t := range names {
			cols := tables[t]
			args := make([]string, len(cols))
			for i, c := range cols {
				args[i] = quoteLiteral(c)
			}
			ident := pgx.Identifier{t}.Sanitize()
			trig := pgx.Identifier{"kck_changes_" + t}.Sanitize()
			stmt := fmt.Sprintf(`CREATE OR REPLACE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s
				FOR EACH ROW EXECUTE FUNCTION kck_notify_change(%s)`, trig, ident, strings.Join(args, ", "))
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("change log: trigger on %s: %w", t, err)
			}
		}
		return nil
	})
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Change is one changed source row.
type Change struct {
	Table string
	Op    string         // INSERT, UPDATE, DELETE
	New   map[string]any // key columns of the new row (nil for DELETE)
	Old   map[string]any // key columns of the old row (nil for INSERT)
}
