-- The example's table and a few rows: run once, as a SQL person would:
--   psql "$KCK_POSTGRES_URL" -f examples/sql-only/schema.sql
-- (kck reads every .sql file of the folder, and leaves alone those without
-- a kck:product or kck:updater header, like this one.)
CREATE TABLE books (
  id       serial PRIMARY KEY,
  shelf_id int NOT NULL,
  title    text NOT NULL CHECK (title <> ''),
  pages    int CHECK (pages > 0),
  added    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO books (shelf_id, title, pages) VALUES (1, 'Dune', 412), (1, 'Emma', 474), (2, 'Ulysses', 730);
