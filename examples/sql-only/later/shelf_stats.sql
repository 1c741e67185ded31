-- Copied into the folder while the gateway runs: served without a restart.
-- kck:product shelf_stats(shelf_id int)
-- kck:auth public
-- kck:result row
-- kck:source books shelf_id=shelf_id
SELECT count(*)::int AS books, coalesce(sum(pages), 0)::int AS pages
FROM books WHERE shelf_id = :shelf_id
