-- kck:product top_authors(n int 1..100)
-- kck:auth public
-- kck:result list
-- kck:source authors *
-- kck:source titles *
-- kck:source sales *
-- kck:warm top_authors/10
-- kck:refresh 1m
-- kck:freshness 2m
-- The n best-selling authors.
SELECT a.id AS "authorId", a.name, coalesce(sum(s.qty), 0)::bigint AS "totalSales"
FROM authors a
LEFT JOIN titles t ON t.author_id = a.id
LEFT JOIN sales s ON s.title_id = t.id
GROUP BY a.id, a.name
ORDER BY "totalSales" DESC, a.id
LIMIT :n
