-- kck:product title_list(author_id int)
-- kck:auth public
-- kck:result list
-- kck:source titles author_id=author_id
-- kck:domain author_ids 1m
-- An author's titles, oldest first.
SELECT id, author_id AS "authorId", title, year
FROM titles
WHERE author_id = :author_id
ORDER BY year, id
