-- kck:product shelf_books(shelf_id int)
-- kck:auth public
-- kck:result list
-- kck:source books shelf_id=shelf_id
-- The books on one shelf, in the order they were added. A row changed in
-- books (by anyone) refreshes the shelf's instance through the change feed.
SELECT id, shelf_id AS "shelfId", title, pages FROM books WHERE shelf_id = :shelf_id ORDER BY id
