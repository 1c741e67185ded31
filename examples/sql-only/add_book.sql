-- Adds a book: the typed mutation addBook(shelfId: Int!, title: String!, pages: Int),
-- which answers with the new row (a Book) and the shelf as the write left it.
-- kck:updater add_book(shelfId int, title string, pages int?)
-- kck:auth public
-- kck:affects shelf_books/:shelfId
-- kck:type Book
INSERT INTO books (shelf_id, title, pages) VALUES (:shelfId, btrim(:title), :pages)
RETURNING id, shelf_id, title, pages, added
