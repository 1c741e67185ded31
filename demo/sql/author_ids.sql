-- kck:product author_ids()
-- kck:auth public
-- kck:result list
-- kck:filter $[*].id
-- kck:source authors *
-- Every author id: the domain of title_list (see title_list.sql, kck:domain).
SELECT id FROM authors ORDER BY id
