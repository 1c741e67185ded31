-- kck:updater add_title(authorId int, title string, year int 1000..2100)
-- kck:affects title_list/:authorId author_stats/:authorId
-- kck:auth scope=titles:write bind authorId=sub
INSERT INTO titles (author_id, title, year)
VALUES (:authorId, btrim(:title), :year)
RETURNING id, author_id AS "authorId", title, year
