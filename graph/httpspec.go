package graph

import (
	"bytes"
	"net/http"
)

// The GraphQL over HTTP specification where gqlgen departs from it:
//
//   - A request that fails before execution (it does not parse or validate,
//     a persisted query is unknown, a limit refuses it) has no data entry
//     in its response; gqlgen writes "data": null.
//   - A mutation sent with GET is 405 Method Not Allowed with Allow: POST;
//     gqlgen answers 406.
//
// specWriter corrects both on the way out. gqlgen writes a response with
// one Write, after WriteHeader.
type specWriter struct {
	http.ResponseWriter
	col    *Collector
	get    bool
	status int
}

func (w *specWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if w.get && code == http.StatusNotAcceptable {
		// gqlgen's GET transport answers 406 only to an operation that is
		// not a query.
		w.Header().Set("Allow", http.MethodPost)
		code = http.StatusMethodNotAllowed
	}
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

var dataNull = []byte(`,"data":null}`)

func (w *specWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n := len(p)
	if !w.col.executed() {
		p = stripDataNull(p)
	}
	if _, err := w.ResponseWriter.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

func (w *specWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// stripDataNull removes the data entry of a response that never executed:
// {"errors":[...],"data":null}.
func stripDataNull(p []byte) []byte {
	t := bytes.TrimRight(p, " \r\n")
	if !bytes.HasPrefix(t, []byte(`{"errors":`)) || !bytes.HasSuffix(t, dataNull) {
		return p
	}
	out := make([]byte, 0, len(t))
	out = append(out, t[:len(t)-len(dataNull)]...)
	return append(out, '}')
}
