-- kck:product my_titles()
-- kck:auth key_by=sub
-- kck:result list
-- kck:source titles sub=author_id
-- The caller's own titles: per user, keyed by the token's sub (an author id);
-- :sub is the hidden parameter key_by adds. Oldest first, as title_list.
SELECT id, author_id AS "authorId", title, year
FROM titles
WHERE author_id::text = :sub
ORDER BY year, id
