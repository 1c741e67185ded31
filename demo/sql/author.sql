-- kck:product author(author_id int)
-- kck:auth public
-- kck:result row
-- kck:source authors author_id=id
-- kck:warm_query SELECT id FROM authors ORDER BY id
SELECT id, name FROM authors WHERE id = :author_id
