package gqlhttp

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/kck-go/kck/apierror"
)

// serveBatch runs each request of a batch as its own operation through srv,
// with every per-operation limit, one after another, and answers with the
// JSON array of their responses, in order (status 200; each item carries its
// own errors). The items share r's context: its deadline and its miss
// budget bound the whole batch. Each item collects its own products (its
// extensions list what it read); parent, the request's collector, gets them
// all, and the batch may be replayed only when every item may be.
func serveBatch(w http.ResponseWriter, r *http.Request, items []json.RawMessage, srv http.Handler, parent *Collector) {
	var out bytes.Buffer
	out.WriteByte('[')
	cacheable := true
	for i, item := range items {
		if i > 0 {
			out.WriteByte(',')
		}
		ctx, col := withCollector(r.Context())
		sub := r.Clone(ctx)
		sub.Body = io.NopCloser(bytes.NewReader(item))
		sub.ContentLength = int64(len(item))
		rec := &itemWriter{header: http.Header{}}
		srv.ServeHTTP(rec, sub)
		body := bytes.TrimSpace(rec.body.Bytes())
		if !col.executed() {
			body = stripDataNull(body)
		}
		if len(body) == 0 || !json.Valid(body) {
			// Never expected from gqlgen; keep the array well formed.
			body = []byte(`{"errors":[{"message":"internal error","extensions":{"code":"` + apierror.Internal + `"}}]}`)
		}
		out.Write(body)
		cacheable = cacheable && col.Cacheable()
		if parent != nil {
			for _, rd := range col.Reads() {
				parent.reads.Add(rd)
			}
		}
	}
	out.WriteByte(']')
	if parent != nil {
		parent.setCacheable(cacheable)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out.Bytes())
}

// itemWriter keeps one batch item's response.
type itemWriter struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (w *itemWriter) Header() http.Header         { return w.header }
func (w *itemWriter) WriteHeader(code int)        { w.status = code }
func (w *itemWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
