package gateway

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/graph"
)

// qvalue is RFC 9110's grammar of a weight.
var qvalue = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// referenceNegotiate is negotiate written the plain way (strings.Split,
// strconv), as the fuzz target's oracle.
func referenceNegotiate(lines []string) coding {
	weights := map[string]int{}
	for _, line := range lines {
		for _, elem := range strings.Split(line, ",") {
			parts := strings.Split(elem, ";")
			name := strings.ToLower(strings.Trim(parts[0], " \t"))
			if name == "" {
				continue
			}
			if name == "x-gzip" {
				name = "gzip"
			}
			w, ok := 1000, true
			for _, p := range parts[1:] {
				p = strings.Trim(p, " \t")
				if len(p) < 2 || !strings.EqualFold(p[:2], "q=") {
					continue
				}
				v := p[2:]
				if ok = qvalue.MatchString(v); !ok {
					break
				}
				f, _ := strconv.ParseFloat(v, 64)
				w = int(f*1000 + 0.5)
			}
			if !ok {
				continue
			}
			if old, seen := weights[name]; !seen || w > old {
				weights[name] = w
			}
		}
	}
	star, hasStar := weights["*"]
	weight := func(name string) int {
		if w, ok := weights[name]; ok {
			return w
		}
		if hasStar {
			return star
		}
		return -1
	}
	best, bestW := identity, 0
	if w := weight("zstd"); w > bestW {
		best, bestW = zstdCoding, w
	}
	if w := weight("gzip"); w > bestW {
		best, bestW = gzipCoding, w
	}
	if w, ok := weights["identity"]; ok && w > bestW {
		return identity
	}
	return best
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lines []string
		want  coding
	}{
		{nil, identity},
		{[]string{""}, identity},
		{[]string{"gzip"}, gzipCoding},
		{[]string{"GZip"}, gzipCoding},
		{[]string{"x-gzip"}, gzipCoding},
		{[]string{"zstd"}, zstdCoding},
		{[]string{"gzip, deflate, br, zstd"}, zstdCoding},
		{[]string{"gzip;q=0, zstd"}, zstdCoding},
		{[]string{"zstd;q=0.5, gzip"}, gzipCoding},
		{[]string{"zstd; q=0.5 , gzip ;q=0.499"}, zstdCoding},
		{[]string{"gzip;q=0"}, identity},
		{[]string{"gzip;q=0.000"}, identity},
		{[]string{"*"}, zstdCoding},
		{[]string{"*;q=0.5, gzip;q=0.6"}, gzipCoding},
		{[]string{"gzip;q=0, zstd;q=0, *"}, identity},
		{[]string{"identity"}, identity},
		{[]string{"identity, gzip;q=0.5"}, identity},
		{[]string{"identity;q=0.5, gzip"}, gzipCoding},
		{[]string{"identity;q=0, *;q=0"}, identity},
		{[]string{"br"}, identity},
		{[]string{"gzip;q=abc"}, identity},
		{[]string{"gzip;q=1.5"}, identity},
		{[]string{"gzip;q=1.0000"}, identity},
		{[]string{"gzip;level=9;q=0.8"}, gzipCoding},
		{[]string{"br", "gzip"}, gzipCoding},
		{[]string{",,, ,gzip,"}, gzipCoding},
	} {
		assert.Equal(t, tc.want, negotiate(tc.lines), "%q", tc.lines)
		assert.Equal(t, tc.want, referenceNegotiate(tc.lines), "reference, %q", tc.lines)
	}
}

func TestNegotiateAllocatesNothing(t *testing.T) {
	lines := []string{"gzip, deflate, br, zstd;q=0.9, *;q=0.1"}
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = negotiate(lines) }))
}

// FuzzAcceptEncoding: whatever the field holds, negotiate does not panic and
// agrees with the plain implementation.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip, deflate, br, zstd", "zstd;q=0.5, gzip;q=0.6", "*;q=0",
		"identity;q=0, *;q=0", "gzip;q=1.000", "gzip;Q=0.5;x=y", "x-gzip;q=0.", "\tzstd\t;\tq=1"} {
		f.Add(s, "")
		f.Add(s, "br;q=0.9")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		lines := []string{a}
		if b != "" {
			lines = append(lines, b)
		}
		got := negotiate(lines)
		if got >= numCodings {
			t.Fatalf("coding %d for %q", got, lines)
		}
		if want := referenceNegotiate(lines); got != want {
			t.Fatalf("%q: negotiate %q, reference %q", lines, codingNames[got], codingNames[want])
		}
	})
}

// compressible is a JSON body of about n bytes that compresses as the
// gateway's responses do (repeated keys, varied values).
func compressible(n, seed int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":{"titleList":[`)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"title":"Title %d of %d","year":%d},`, i, i*7919%1000, seed, 1900+i%120)
	}
	b.WriteString(`{}]}}`)
	return b.Bytes()
}

func decompress(t *testing.T, c coding, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case gzipCoding:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		r = zr
	case zstdCoding:
		zr, err := zstd.NewReader(bytes.NewReader(body))
		require.NoError(t, err)
		defer zr.Close()
		r = zr
	default:
		return body
	}
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	return out
}

// The compressed codings weigh against the response cache's byte budget:
// an entry weighs more once compressed, and the cache never holds more than
// its budget, codings included.
func TestCompressedCodingsCountAgainstTheBudget(t *testing.T) {
	t.Parallel()
	comp, err := newCompressor()
	require.NoError(t, err)
	var counts [numCodings]prometheus.Counter
	for c := range counts {
		counts[c] = prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	}
	const budget = 256 << 10
	rc, err := newResponseCache(nil, budget, comp, 512, counts)
	require.NoError(t, err)
	reads := []graph.Read{{Key: "title_list/1", Version: 1}}

	body := compressible(20<<10, 0)
	e := rc.put(rc.hash([]byte("one")), []byte("one"), true, true, jsonHeader(), body, reads)
	require.NotNil(t, e)
	rc.entries.CleanUp()
	before := rc.entries.WeightedSize()
	var coded int
	for _, c := range []coding{gzipCoding, zstdCoding} {
		rp := rc.rep(e, c)
		require.Equal(t, c, rp.coding)
		assert.Less(t, len(rp.body), len(body)/3)
		assert.Equal(t, body, decompress(t, c, rp.body))
		assert.Same(t, rp, rc.rep(e, c), "compressed once, then stored")
		coded += len(rp.body)
	}
	rc.entries.CleanUp()
	assert.Equal(t, before+uint64(coded+2*64), rc.entries.WeightedSize())

	// Fill far past the budget, every entry compressed both ways.
	for i := range 200 {
		ident := []byte(fmt.Sprint("entry ", i))
		if e := rc.put(rc.hash(ident), ident, true, true, jsonHeader(), compressible(8<<10, i), reads); e != nil {
			rc.rep(e, gzipCoding)
			rc.rep(e, zstdCoding)
		}
		rc.entries.CleanUp()
		require.LessOrEqual(t, rc.entries.WeightedSize(), uint64(budget))
	}
	var held uint64
	for _, e := range rc.entries.All() {
		held += uint64(e.weight())
	}
	assert.LessOrEqual(t, held, uint64(budget), "the entries' own weights, codings included")
	assert.Greater(t, held, uint64(budget/2), "the budget is used")
}

func jsonHeader() map[string][]string {
	return map[string][]string{"Content-Type": {"application/json"}}
}
