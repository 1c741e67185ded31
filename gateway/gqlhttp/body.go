package gqlhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kck-go/kck/apierror"
)

// checkBody answers a POST body that is not one GraphQL request (empty, not
// JSON, not an object, a batch) with a client error, before gqlgen sees it:
// gqlgen echoes an undecodable body whole in its error. It reports whether
// the request may go on; its body is put back for gqlgen to read.
//
// With maxBatch positive, a batch of at most maxBatch requests is returned
// as its items for serveBatch, and a larger one is refused.
func checkBody(w http.ResponseWriter, r *http.Request, onRefused func(string), maxBatch int) (ok bool, batch []json.RawMessage) {
	if r.Method != http.MethodPost || r.Body == nil {
		return true, nil
	}
	if !apierror.IsJSON(r) {
		// A form or text/plain POST is a request a page on another site
		// may make a browser send without a CORS preflight: never run.
		writeGraphQLError(w, http.StatusUnsupportedMediaType, apierror.BadUserInput, "", UnsupportedMediaMessage)
		return false, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeGraphQLError(w, http.StatusRequestEntityTooLarge, apierror.BadUserInput, "", "request body too large")
			return false, nil
		}
		writeGraphQLError(w, http.StatusBadRequest, apierror.BadUserInput, "", "could not read request body")
		return false, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		writeGraphQLError(w, http.StatusBadRequest, apierror.BadUserInput, "", `empty body: send {"query": "..."}`)
	case trimmed[0] == '[' && batchItems(trimmed) != nil:
		items := batchItems(trimmed)
		if maxBatch > 0 && len(items) <= maxBatch {
			return true, items
		}
		// Unbounded batching would let one request carry any number of
		// operations past the per-operation limits.
		if onRefused != nil {
			onRefused(LimitBatch)
		}
		if maxBatch <= 0 {
			writeGraphQLError(w, http.StatusBadRequest, apierror.LimitExceeded, LimitBatch, "batched requests are not accepted: send one operation per request")
		} else {
			writeGraphQLError(w, http.StatusBadRequest, apierror.LimitExceeded, LimitBatch,
				"a batch may hold at most "+strconv.Itoa(maxBatch)+" requests, this one holds "+strconv.Itoa(len(items)))
		}
	case trimmed[0] != '{' || !json.Valid(trimmed):
		writeGraphQLError(w, http.StatusBadRequest, apierror.BadUserInput, "", `the body must be one JSON object: {"query": "...", "variables": {...}}`)
	default:
		return true, nil
	}
	return false, nil
}

// batchItems returns the requests of b when it is a JSON array of objects
// (a batch of requests), and nil for any other array, which is simply
// malformed.
func batchItems(b []byte) []json.RawMessage {
	var items []json.RawMessage
	if json.Unmarshal(b, &items) != nil || len(items) == 0 {
		return nil
	}
	for _, it := range items {
		if len(it) == 0 || it[0] != '{' {
			return nil
		}
	}
	return items
}

func writeGraphQLError(w http.ResponseWriter, status int, code, limit, msg string) {
	e := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
	if limit != "" {
		e.Extensions["limit"] = limit
	}
	b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{e}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// UnsupportedMediaMessage is the message of a 415 answer to a POST whose
// body is not application/json.
const UnsupportedMediaMessage = "Content-Type must be application/json (charset utf-8, or none)"

// maxMessage bounds an error message: gqlgen's own messages may quote the
// request (a body that does not decode, a huge argument).
const maxMessage = 512

func shortMessage(m string) string {
	if i := strings.Index(m, " body:"); i >= 0 && strings.HasPrefix(m, "json request body could not be decoded") {
		m = m[:i]
	}
	if len(m) <= maxMessage {
		return m
	}
	cut := maxMessage
	for cut > 0 && m[cut]&0xC0 == 0x80 {
		cut--
	}
	return m[:cut] + "... (" + strconv.Itoa(len(m)) + " bytes)"
}
