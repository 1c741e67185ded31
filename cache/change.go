package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Change is one announcement on a cluster's Bus: key K has version V now
// (or was deleted at V). Small values travel with it, so that a gateway
// holding the key replaces its copy without reading the store.
type Change struct {
	Key     string
	Version uint64
	// Deleted: the key was removed at Version (an invalidation).
	Deleted bool
	// Entry is the new value itself when it is at most the cache's
	// BusInlineBytes; nil otherwise (a receiver drops its older copy and
	// reads the store when asked).
	Entry *Entry
	// SourceChanged: a source row of Key changed, but no gateway holds Key
	// (the store has no value), so none was computed; a gateway whose
	// subscribers watch it reads it again.
	SourceChanged bool
	// Resync: the origin could not announce some of its changes (its bus
	// rejected them); every gateway drops its in-process tier.
	Resync bool
	// Origin is the Owner of the cache that made the change.
	Origin string
	// Seq numbers an origin's announcements from 1, so that a receiver
	// that finds one skipped knows it missed it.
	Seq uint64
	// At is when the change was published, on the publisher's clock.
	At time.Time
}

// The wire form of a Change (AppendBinary, ParseChange): a format byte,
// flags, then varints and length-prefixed strings. Binary rather than JSON:
// a change is encoded once and decoded on every gateway, and an inline
// value (already JSON) is carried as it is.
const changeFormat = 1

const (
	flagDeleted = 1 << iota
	flagEntry
	flagSourceChanged
	flagResync
)

// AppendBinary appends ch's wire form to b.
func (ch Change) AppendBinary(b []byte) []byte {
	var flags byte
	if ch.Deleted {
		flags |= flagDeleted
	}
	if ch.Entry != nil {
		flags |= flagEntry
	}
	if ch.SourceChanged {
		flags |= flagSourceChanged
	}
	if ch.Resync {
		flags |= flagResync
	}
	b = append(b, changeFormat, flags)
	b = binary.AppendUvarint(b, ch.Seq)
	b = binary.AppendVarint(b, micros(ch.At))
	b = binary.AppendUvarint(b, ch.Version)
	b = appendString(b, ch.Key)
	b = appendString(b, ch.Origin)
	if e := ch.Entry; e != nil {
		b = binary.AppendVarint(b, micros(e.ComputedAt))
		b = binary.AppendVarint(b, micros(e.StaleAt))
		b = binary.AppendVarint(b, micros(e.ExpiresAt))
		b = binary.AppendUvarint(b, uint64(len(e.Value)))
		b = append(b, e.Value...)
	}
	return b
}

// ErrBadChange is returned by ParseChange for bytes that are not a change.
var ErrBadChange = errors.New("bad change")

// ParseChange decodes a change from its wire form. The entry's value is a
// copy: b may be reused by the caller.
func ParseChange(b []byte) (Change, error) {
	d := decoder{b: b}
	var ch Change
	if format := d.byte(); format != changeFormat {
		return Change{}, fmt.Errorf("%w: format %d", ErrBadChange, format)
	}
	flags := d.byte()
	ch.Seq = d.uvarint()
	ch.At = fromMicros(d.varint())
	ch.Version = d.uvarint()
	ch.Key = d.string()
	ch.Origin = d.string()
	ch.Deleted = flags&flagDeleted != 0
	ch.SourceChanged = flags&flagSourceChanged != 0
	ch.Resync = flags&flagResync != 0
	if flags&flagEntry != 0 {
		e := &Entry{Key: ch.Key, Version: ch.Version}
		e.ComputedAt = fromMicros(d.varint())
		e.StaleAt = fromMicros(d.varint())
		e.ExpiresAt = fromMicros(d.varint())
		e.Value = []byte(d.string())
		ch.Entry = e
	}
	if d.err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrBadChange, d.err)
	}
	if len(d.b) != 0 {
		return Change{}, fmt.Errorf("%w: %d bytes after the change", ErrBadChange, len(d.b))
	}
	if flags&^(flagDeleted|flagEntry|flagSourceChanged|flagResync) != 0 || ch.Deleted && ch.Entry != nil {
		return Change{}, fmt.Errorf("%w: flags %#x", ErrBadChange, flags)
	}
	return ch, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads a wire form; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New("truncated " + what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("header")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
