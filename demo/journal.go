package demo

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// OpenDataset returns the generated dataset with the titles added by earlier
// runs replayed from the journal at path, and keeps journaling new titles
// there. Without it, a restarted gateway would serve, from its persistent
// store, titles its regenerated dataset no longer has.
func OpenDataset(path string) (*Dataset, error) {
	d := NewDataset()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("demo journal: %w", err)
	}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var t Title
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			f.Close()
			return nil, fmt.Errorf("demo journal %s line %d: %w", path, line, err)
		}
		if _, err := d.AddTitle(t.AuthorID, t.Title, t.Year); err != nil {
			f.Close()
			return nil, fmt.Errorf("demo journal %s line %d: %w", path, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("demo journal %s: %w", path, err)
	}
	d.journal = f
	return d, nil
}

// Close closes the journal, if any.
func (d *Dataset) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.journal == nil {
		return nil
	}
	err := d.journal.Close()
	d.journal = nil
	return err
}

// appendJournal records t; the caller holds d.mu. A title is only added to
// the dataset once it is durable, so a crash never loses an acknowledged one.
func (d *Dataset) appendJournal(t Title) error {
	if d.journal == nil {
		return nil
	}
	b, _ := json.Marshal(t)
	if _, err := d.journal.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("demo journal: %w", err)
	}
	return d.journal.Sync()
}
