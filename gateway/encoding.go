package gateway

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// GraphQL responses kept in the response cache are served in the content
// coding the client prefers among zstd, gzip and identity (Accept-Encoding,
// RFC 9110 section 12.5.3). Each coding of an entry is compressed once, by
// the first request that asks for it, and kept beside the identity bytes
// (and weighed with them against the cache's byte budget): later hits write
// stored bytes. Responses that are not kept (errors, mutations, refusals)
// and bodies under Options.CompressMinBytes go out as they are: compressing
// them would be work per request.

// coding is a content coding the gateway can serve.
type coding uint8

const (
	identity coding = iota
	zstdCoding
	gzipCoding
	numCodings
)

// codingNames are the Content-Encoding values; identity sends none.
var codingNames = [numCodings]string{"", "zstd", "gzip"}

// contentEncoding holds the header values, shared by every response (never
// appended to: each has its capacity full).
var contentEncoding = [numCodings][]string{nil, {"zstd"}, {"gzip"}}

// negotiate picks the coding of a response from the request's
// Accept-Encoding field lines. No field, or an empty one: identity. Else the
// acceptable coding with the highest weight, ties going to zstd, then gzip
// (smaller and, for zstd, faster to decode), then identity. identity is
// acceptable unless "identity;q=0", or "*;q=0" without identity named; when
// nothing is acceptable it is served all the same (RFC 9110 lets a server
// send an uncoded response rather than 406, and a client that refuses
// everything is better served than refused). An element whose weight does
// not parse is ignored, as if absent. "x-gzip" is gzip (RFC 9110 section
// 8.4.1.3). Codings are matched without regard to case.
func negotiate(lines []string) coding {
	// Weights in thousandths; -1: not named.
	q := [numCodings]int{-1, -1, -1}
	star := -1
	for _, line := range lines {
		for len(line) > 0 {
			var elem string
			if i := indexByte(line, ','); i >= 0 {
				elem, line = line[:i], line[i+1:]
			} else {
				elem, line = line, ""
			}
			name, w, ok := parseElement(elem)
			if !ok {
				continue
			}
			var slot *int
			switch {
			case name == "*":
				slot = &star
			case equalFold(name, "zstd"):
				slot = &q[zstdCoding]
			case equalFold(name, "gzip"), equalFold(name, "x-gzip"):
				slot = &q[gzipCoding]
			case equalFold(name, "identity"):
				slot = &q[identity]
			default:
				continue
			}
			*slot = max(*slot, w)
		}
	}
	best, bestQ := identity, 0
	for c := zstdCoding; c < numCodings; c++ {
		w := q[c]
		if w < 0 {
			w = star // "*" stands for the codings not named
		}
		if w > bestQ { // strictly: a tie keeps the earlier (preferred) coding
			best, bestQ = c, w
		}
	}
	// identity wins only when named with a higher weight than every coding
	// (unnamed, it is acceptable but comes last).
	if q[identity] > bestQ {
		return identity
	}
	return best
}

// parseElement splits one element of Accept-Encoding, `coding *( OWS ";"
// OWS param )`, into its coding and weight (q, in thousandths, default
// 1000). ok is false for an empty element or a malformed weight.
func parseElement(elem string) (name string, weight int, ok bool) {
	elem = trimOWS(elem)
	if elem == "" {
		return "", 0, false
	}
	weight = 1000
	name = elem
	if i := indexByte(elem, ';'); i >= 0 {
		name, elem = trimOWS(elem[:i]), elem[i+1:]
		for elem != "" {
			var param string
			if j := indexByte(elem, ';'); j >= 0 {
				param, elem = trimOWS(elem[:j]), elem[j+1:]
			} else {
				param, elem = trimOWS(elem), ""
			}
			if len(param) < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=' {
				continue // another parameter: no meaning here
			}
			if weight, ok = parseQ(param[2:]); !ok {
				return "", 0, false
			}
		}
	}
	return name, weight, name != ""
}

// parseQ parses a qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ].
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	v := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return v, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, d := range []byte(s[2:]) {
		if d < '0' || d > '9' {
			return 0, false
		}
		v += int(d-'0') * scale
		scale /= 10
	}
	if v > 1000 {
		return 0, false
	}
	return v, true
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// equalFold compares s with lower, an ASCII lower-case name.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// compressor compresses response bodies. Levels favour size over speed a
// little (gzip's default, zstd's "better"): a body is compressed once per
// version and served many times.
type compressor struct {
	zstd *zstd.Encoder
	gzip sync.Pool // *gzip.Writer
}

func newCompressor() (*compressor, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	c := &compressor{zstd: enc}
	c.gzip.New = func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression) // a valid level cannot fail
		return w
	}
	return c, nil
}

// compress returns body in coding c.
func (c *compressor) compress(cd coding, body []byte) []byte {
	switch cd {
	case zstdCoding:
		// EncodeAll is safe for concurrent use; with concurrency 1 the
		// encoder's state is one, and compressions take turns.
		return c.zstd.EncodeAll(body, make([]byte, 0, len(body)/4))
	case gzipCoding:
		var out bytes.Buffer
		out.Grow(len(body) / 4)
		w := c.gzip.Get().(*gzip.Writer)
		w.Reset(&out)
		_, _ = w.Write(body) // a bytes.Buffer does not fail
		_ = w.Close()
		c.gzip.Put(w)
		return out.Bytes()
	}
	return body
}
