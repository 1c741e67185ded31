-- kck:product author_stats(author_id int)
-- kck:auth scope=stats:read bind author_id=sub
-- kck:result row
-- kck:source authors author_id=id
-- kck:source titles author_id=author_id
-- kck:source sales *
-- Title count, first and last year and total sales of one author.
SELECT a.id AS "authorId", a.name,
	count(t.id)::int AS "titleCount",
	coalesce(min(t.year), 0)::int AS "firstYear",
	coalesce(max(t.year), 0)::int AS "lastYear",
	coalesce((SELECT sum(s.qty) FROM sales s JOIN titles st ON st.id = s.title_id WHERE st.author_id = a.id), 0)::bigint AS "totalSales"
FROM authors a
LEFT JOIN titles t ON t.author_id = a.id
WHERE a.id = :author_id
GROUP BY a.id, a.name
