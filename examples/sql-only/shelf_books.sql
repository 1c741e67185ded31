-- The books of a shelf: the GraphQL field shelfBooks(shelfId: Int!): [Book!],
-- its subscription, kept fresh by every change to books.
-- kck:product shelf_books(shelf_id int)
-- kck:auth public
-- kck:source books shelf_id=shelf_id
-- kck:type Book
SELECT id, shelf_id, title, pages, added
FROM books WHERE shelf_id = :shelf_id ORDER BY id
