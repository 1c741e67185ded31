// Package demo is a built-in, deterministic dataset (authors, titles, sales)
// and the data products and updater over it that the gateway serves when no
// database is configured. It needs no server: `go run .` is enough.
package demo

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kck-go/kck/primers"
)

// Sizes of the generated dataset.
const (
	NumAuthors = 300
	minTitles  = 5
	maxTitles  = 15
	numSales   = 3000
	firstYear  = 1950
	lastYear   = 2025
)

// Regions of the sales rows.
var Regions = []string{"eu", "na", "apac", "latam"}

// Author is a row of the authors table.
type Author struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Title is a row of the titles table.
type Title struct {
	ID       int64  `json:"id"`
	AuthorID int64  `json:"authorId"`
	Title    string `json:"title"`
	Year     int64  `json:"year"`
}

// Sale is a row of the sales table.
type Sale struct {
	ID      int64     `json:"id"`
	TitleID int64     `json:"titleId"`
	Region  string    `json:"region"`
	Qty     int64     `json:"qty"`
	Date    time.Time `json:"date"`
}

// Dataset holds the demo rows. It is safe for concurrent use: primers read
// it while the add_title updater writes it.
type Dataset struct {
	mu      sync.RWMutex
	authors []Author // index i holds author id i+1
	titles  []Title  // index i holds title id i+1
	byAuth  map[int64][]int64
	sales   []Sale
	salesBy map[int64]int64 // title id -> total qty
	journal *os.File        // nil: added titles live in memory only
}

// seed fixes the generator, so every gateway and test sees the same rows.
const seed1, seed2 = 0x6b636b, 2024

var (
	firstNames = []string{"Ada", "Bram", "Chloe", "Dario", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas",
		"Kaia", "Luca", "Mira", "Nils", "Oona", "Pablo", "Quinn", "Rosa", "Sami", "Tove", "Uma", "Viktor", "Wen", "Yara", "Zeno"}
	lastNames = []string{"Abara", "Berg", "Castillo", "Dahl", "Eze", "Fischer", "Garcia", "Horvat", "Ito", "Jensen",
		"Kowalski", "Laine", "Moreau", "Novak", "Okafor", "Petrov", "Quist", "Rossi", "Silva", "Tanaka", "Ueda", "Varga"}
	words = []string{"Silent", "River", "Glass", "Winter", "Garden", "Iron", "Paper", "Night", "Salt", "Orchard",
		"Harbour", "Letters", "Empire", "Lantern", "Shadow", "Summer", "Atlas", "Echo", "Stone", "Tide", "Engine", "Crown"}
)

// NewDataset generates the demo rows from a fixed seed: 300 authors, 5 to 15
// titles each (years 1950 to 2025) and 3,000 sales rows.
func NewDataset() *Dataset {
	r := rand.New(rand.NewPCG(seed1, seed2))
	d := &Dataset{byAuth: map[int64][]int64{}, salesBy: map[int64]int64{}}
	for i := range NumAuthors {
		d.authors = append(d.authors, Author{
			ID:   int64(i + 1),
			Name: firstNames[r.IntN(len(firstNames))] + " " + lastNames[r.IntN(len(lastNames))],
		})
	}
	for _, a := range d.authors {
		for range minTitles + r.IntN(maxTitles-minTitles+1) {
			name := "The " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
			d.addTitle(a.ID, name, int64(firstYear+r.IntN(lastYear-firstYear+1)))
		}
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range numSales {
		s := Sale{
			ID:      int64(i + 1),
			TitleID: int64(1 + r.IntN(len(d.titles))),
			Region:  Regions[r.IntN(len(Regions))],
			Qty:     int64(1 + r.IntN(50)),
			Date:    start.AddDate(0, 0, r.IntN(366)),
		}
		d.sales = append(d.sales, s)
		d.salesBy[s.TitleID] += s.Qty
	}
	return d
}

func (d *Dataset) addTitle(authorID int64, title string, year int64) Title {
	t := Title{ID: int64(len(d.titles) + 1), AuthorID: authorID, Title: title, Year: year}
	d.titles = append(d.titles, t)
	d.byAuth[authorID] = append(d.byAuth[authorID], t.ID)
	return t
}

// Authors returns a copy of the authors, by id.
func (d *Dataset) Authors() []Author {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.authors)
}

// Titles returns a copy of all titles, by id.
func (d *Dataset) Titles() []Title {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.titles)
}

// Sales returns a copy of the sales rows, by id.
func (d *Dataset) Sales() []Sale {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.sales)
}

// Author returns one author; ok is false when there is none with that id.
func (d *Dataset) Author(id int64) (Author, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if id < 1 || id > int64(len(d.authors)) {
		return Author{}, false
	}
	return d.authors[id-1], true
}

// TitlesBy returns an author's titles, oldest first (then by id).
func (d *Dataset) TitlesBy(authorID int64) []Title {
	d.mu.RLock()
	ts := make([]Title, 0, len(d.byAuth[authorID]))
	for _, id := range d.byAuth[authorID] {
		ts = append(ts, d.titles[id-1])
	}
	d.mu.RUnlock()
	SortTitles(ts)
	return ts
}

// SortTitles orders titles as title_list does: by year, then by id.
func SortTitles(ts []Title) {
	slices.SortFunc(ts, func(a, b Title) int {
		return cmp.Or(cmp.Compare(a.Year, b.Year), cmp.Compare(a.ID, b.ID))
	})
}

// SalesOf returns the total quantity sold of the given titles.
func (d *Dataset) SalesOf(titleIDs ...int64) int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var n int64
	for _, id := range titleIDs {
		n += d.salesBy[id]
	}
	return n
}

// AddTitle adds a title to an author and returns it. Bad input (unknown
// author, empty or over-long title, year outside 1000..2100) wraps
// primers.ErrBadInput.
func (d *Dataset) AddTitle(authorID int64, title string, year int64) (Title, error) {
	title = strings.TrimSpace(title)
	switch {
	case title == "":
		return Title{}, fmt.Errorf("%w: title must not be empty", primers.ErrBadInput)
	case len(title) > 200:
		return Title{}, fmt.Errorf("%w: title is longer than 200 bytes", primers.ErrBadInput)
	case year < 1000 || year > 2100:
		return Title{}, fmt.Errorf("%w: year %d is outside 1000..2100", primers.ErrBadInput, year)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if authorID < 1 || authorID > int64(len(d.authors)) {
		return Title{}, fmt.Errorf("%w: no author with id %d", primers.ErrBadInput, authorID)
	}
	t := Title{ID: int64(len(d.titles) + 1), AuthorID: authorID, Title: title, Year: year}
	if err := d.appendJournal(t); err != nil {
		return Title{}, err
	}
	return d.addTitle(authorID, title, year), nil
}
