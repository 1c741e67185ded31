-- PostGraphile's titleList(authorId): the same rows, in the same order, as
-- KCK's title_list primer (demo/sql/title_list.sql).
CREATE OR REPLACE FUNCTION title_list(author_id integer) RETURNS SETOF titles
LANGUAGE sql STABLE AS $$
	SELECT * FROM titles t WHERE t.author_id = title_list.author_id ORDER BY t.year, t.id
$$;
