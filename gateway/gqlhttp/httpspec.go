package gqlhttp

import (
	"bytes"
	"net/http"
)

// A request that fails before execution (it does not parse or validate, a
// persisted query is unknown, a limit refuses it) has no data entry in its
// response, as the GraphQL over HTTP specification says; gqlgen's executor
// writes "data": null. specWriter removes it on the way out (the transport
// writes a response with one Write, after WriteHeader; see transport.go for
// the rest of the specification).
type specWriter struct {
	http.ResponseWriter
	col    *Collector
	status int
}

func (w *specWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
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
