package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
)

// handleFetch serves KCK's /fetch: one product (GET /fetch/title_list/42 or
// /fetch?key=title_list/42) with its freshness, or several in order
// (?key=a&key=b) with an error per item. A single product carries its version
// as ETag and answers If-None-Match with 304.
func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request) {
	var keys []string
	if r.PathValue("key") != "" {
		// The raw path keeps %2F inside a value escaped, as keys spell it.
		keys = []string{strings.TrimPrefix(r.URL.EscapedPath(), "/fetch/")}
	} else {
		keys = r.URL.Query()["key"]
	}
	switch {
	case len(keys) == 0:
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "give a key: /fetch?key=name/param or /fetch/name/param")
		return
	case len(keys) > 100:
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "at most 100 keys per request")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	ctx = s.missBudget(ctx, r, auth.PrincipalFrom(r.Context()))
	if len(keys) == 1 {
		key, err := s.guard.ReadKey(ctx, keys[0])
		if err != nil {
			s.writeClassified(ctx, w, err)
			return
		}
		res, err := s.cache.Get(ctx, key)
		if err != nil {
			s.writeClassified(ctx, w, err)
			return
		}
		etag := `"` + strconv.FormatUint(res.Version, 10) + `"`
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "no-cache")
		if match := r.Header.Get("If-None-Match"); match != "" && match == etag && !res.Stale {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header()["Content-Type"] = jsonContentType
		_, _ = w.Write(appendProduct(make([]byte, 0, len(res.Value)+160), res))
		return
	}
	items := s.readable(ctx, keys)
	out := make([]byte, 0, 1024)
	out = append(out, `{"products":[`...)
	for i, it := range items {
		if i > 0 {
			out = append(out, ',')
		}
		out = s.appendItem(ctx, out, it)
	}
	out = append(out, "]}"...)
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(out)
}

// appendProduct writes {"key","version","computedAt","stale","value"}; the
// value's JSON is copied as is, never decoded.
func appendProduct(out []byte, r cache.Result) []byte {
	out = append(out, `{"key":`...)
	out = appendJSONString(out, r.Key)
	out = append(out, `,"version":"`...)
	out = strconv.AppendUint(out, r.Version, 10)
	out = append(out, `","computedAt":"`...)
	out = r.ComputedAt.UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, `","stale":`...)
	out = strconv.AppendBool(out, r.Stale)
	out = append(out, `,"value":`...)
	out = append(out, r.Value...)
	return append(out, '}')
}

// appendItem writes one product of a list, or its error.
func (s *Server) appendItem(ctx context.Context, out []byte, it cache.ItemResult) []byte {
	if it.Err == nil {
		return appendProduct(out, it.Result)
	}
	cls := s.classify(ctx, it.Err)
	out = append(out, `{"key":`...)
	out = appendJSONString(out, it.Key)
	out = append(out, `,"error":{"code":`...)
	out = appendJSONString(out, cls.Code)
	out = append(out, `,"message":`...)
	out = appendJSONString(out, cls.Message)
	return append(out, "}}"...)
}

func appendJSONString(out []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return append(out, b...)
}

// updateRequest is the body of POST /update.
type updateRequest struct {
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// handleUpdate runs a named updater (KCK's /update) and returns its result
// and the affected products, refreshed.
func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	if !apierror.IsJSON(r) {
		writeError(w, http.StatusUnsupportedMediaType, apierror.BadUserInput, "Content-Type must be application/json")
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	dec.DisallowUnknownFields()
	var req updateRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, apierror.BadUserInput, "request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "body must be JSON {\"name\": ..., \"input\": {...}}: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "body must hold one JSON object")
		return
	}
	if req.Name == "" {
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "name is required")
		return
	}
	if len(bytes.TrimSpace(req.Input)) == 0 || string(bytes.TrimSpace(req.Input)) == "null" {
		writeError(w, http.StatusBadRequest, apierror.BadUserInput, "input is required")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	if err := s.guard.Update(ctx, req.Name, req.Input); err != nil {
		s.writeClassified(ctx, w, err)
		return
	}
	outcome, err := s.cache.Update(ctx, req.Name, req.Input)
	if err != nil {
		s.writeClassified(ctx, w, err)
		return
	}
	s.hideUnreadable(ctx, outcome.Products)
	result, err := json.Marshal(outcome.Result)
	if err != nil {
		s.writeClassified(ctx, w, err)
		return
	}
	out := make([]byte, 0, 1024)
	out = append(out, `{"name":`...)
	out = appendJSONString(out, req.Name)
	out = append(out, `,"result":`...)
	out = append(out, result...)
	out = append(out, `,"products":[`...)
	for i, it := range outcome.Products {
		if i > 0 {
			out = append(out, ',')
		}
		out = s.appendItem(ctx, out, it)
	}
	out = append(out, "]}"...)
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(out)
}

func (s *Server) classify(ctx context.Context, err error) apierror.Class {
	cls := apierror.Classify(err)
	if cls.Code == apierror.Internal {
		s.log.ErrorContext(ctx, "request failed", "err", err)
	}
	if cls.Limit != "" {
		s.limits.onRefused(cls.Limit)
	}
	return cls
}

func (s *Server) writeClassified(ctx context.Context, w http.ResponseWriter, err error) {
	challenge(w, err)
	retryAfter(w, err)
	cls := s.classify(ctx, err)
	writeError(w, cls.Status, cls.Code, cls.Message)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	apierror.Write(w, status, code, msg)
}
