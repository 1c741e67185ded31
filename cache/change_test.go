package cache_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
)

func TestChangeWireForm(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 12, 0, 0, 123000, time.UTC)
	for _, ch := range []cache.Change{
		{Key: "title_list/42", Version: 1 << 52, Origin: "gw-1", Seq: 1, At: at},
		{Key: "title_list/4%2F2", Version: 9, Deleted: true, Origin: "gw-2", Seq: 1 << 40, At: at},
		{Key: "p/1", SourceChanged: true, Origin: "gw", Seq: 3},
		{Resync: true, Origin: "gw", Seq: 4, At: at},
		{Key: "a/1", Version: 5, Origin: "o", Seq: 2, At: at, Entry: &cache.Entry{Key: "a/1", Version: 5, Value: []byte(`{"x":[1,2]}`),
			ComputedAt: at, StaleAt: at.Add(time.Minute), ExpiresAt: at.Add(time.Hour)}},
		{Key: "a/2", Version: 6, Origin: "o", Seq: 3, At: at, Entry: &cache.Entry{Key: "a/2", Version: 6, Value: []byte(`1`), ComputedAt: at}},
	} {
		got, err := cache.ParseChange(ch.AppendBinary(nil))
		require.NoError(t, err)
		assert.Equal(t, ch, got)
	}
}

func TestParseChangeRefusesGarbage(t *testing.T) {
	t.Parallel()
	good := cache.Change{Key: "a/1", Version: 5, Origin: "o", Seq: 2, Entry: &cache.Entry{Key: "a/1", Version: 5, Value: []byte(`"v"`)}}.AppendBinary(nil)
	for name, b := range map[string][]byte{
		"empty":            nil,
		"other format":     append([]byte{9}, good[1:]...),
		"truncated":        good[:len(good)-2],
		"trailing bytes":   append(append([]byte{}, good...), 0),
		"unknown flag":     append([]byte{good[0], good[1] | 0x80}, good[2:]...),
		"deleted w/ entry": append([]byte{good[0], good[1] | 1}, good[2:]...),
		"huge length":      {1, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		_, err := cache.ParseChange(b)
		assert.True(t, errors.Is(err, cache.ErrBadChange), "%s: %v", name, err)
	}
}

// FuzzParseChange: whatever arrives on the bus, parsing never panics, and
// what parses encodes back to the same bytes.
func FuzzParseChange(f *testing.F) {
	f.Add(cache.Change{Key: "a/1", Version: 5, Origin: "o", Seq: 2, Entry: &cache.Entry{Key: "a/1", Version: 5, Value: []byte(`"v"`)}}.AppendBinary(nil))
	f.Add(cache.Change{Key: "k", Deleted: true, Version: 1, Origin: "x", Seq: 1}.AppendBinary(nil))
	f.Add([]byte{1, 8, 1, 0, 0, 0, 1, 'o'})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := cache.ParseChange(b)
		if err != nil {
			return
		}
		again, err := cache.ParseChange(ch.AppendBinary(nil))
		if err != nil {
			t.Fatalf("a parsed change does not parse again: %v", err)
		}
		if again.Key != ch.Key || again.Version != ch.Version || again.Seq != ch.Seq || (again.Entry == nil) != (ch.Entry == nil) {
			t.Fatalf("round trip changed %+v into %+v", ch, again)
		}
	})
}
