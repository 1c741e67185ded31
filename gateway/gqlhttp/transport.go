package gqlhttp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kck-go/kck/apierror"
)

// GraphQL over HTTP (POST with application/json, and GET), as the GraphQL
// over HTTP specification says, where gqlgen's POST and GET transports
// depart from it:
//
//   - The response's media type follows Accept with its q-values:
//     application/graphql-response+json or application/json (also for */*,
//     application/* and no Accept at all); an Accept that allows neither
//     is 406.
//   - A request whose parameters are not what the specification says
//     (query not a string, variables or extensions not an object,
//     operationName not a string, no query and no persisted query) is 400
//     whatever Accept says; gqlgen answers 422 or runs it.
//   - A document that does not parse, validate or coerce its variables (or
//     that a limit refuses) is 200 with application/json, where legacy
//     clients expect a GraphQL response on 200 whatever went wrong, and 400
//     with application/graphql-response+json; gqlgen answers 422 to the
//     first.
//   - A mutation (or subscription) over GET is 405 with Allow: POST.
//
// The body was read and found to be one JSON object by checkBody; a POST
// of another media type never gets here (415).

// The response media types.
const (
	MediaJSON            = "application/json"
	MediaGraphQLResponse = "application/graphql-response+json"
)

// ResponseType returns the media type of a GraphQL response to a request
// with this Accept header: the one of application/graphql-response+json and
// application/json the client prefers by q-value, the more specific range
// deciding a tie, then the earlier one; application/json for a wildcard
// alone and for no Accept. ok is false when Accept allows neither (406).
func ResponseType(accept string) (mediaType string, ok bool) {
	if accept == "" {
		return MediaJSON, true
	}
	// Each candidate's quality is that of the most specific range that
	// matches it (RFC 9110 section 12.5.1); its position breaks ties.
	type grade struct {
		q, spec, pos int // q in thousandths; spec 3 exact, 2 type/*, 1 */*
	}
	var gj, gr grade // application/json, application/graphql-response+json
	for pos, part := range strings.Split(accept, ",") {
		if pos >= 64 {
			break // a longer list is not a browser's or a client library's
		}
		rng, params, _ := strings.Cut(part, ";")
		rng = strings.ToLower(strings.TrimSpace(rng))
		q := 1000
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				q = parseQ(strings.TrimSpace(v))
			}
		}
		switch rng {
		case MediaJSON:
			better(&gj.q, &gj.spec, &gj.pos, q, 3, pos)
		case MediaGraphQLResponse:
			better(&gr.q, &gr.spec, &gr.pos, q, 3, pos)
		case "application/*":
			better(&gj.q, &gj.spec, &gj.pos, q, 2, pos)
			better(&gr.q, &gr.spec, &gr.pos, q, 2, pos)
		case "*/*":
			better(&gj.q, &gj.spec, &gj.pos, q, 1, pos)
			better(&gr.q, &gr.spec, &gr.pos, q, 1, pos)
		}
	}
	switch {
	case gj.q == 0 && gr.q == 0:
		return "", false
	case gr.q > gj.q:
		return MediaGraphQLResponse, true
	case gj.q > gr.q:
		return MediaJSON, true
	case gr.spec > gj.spec || (gr.spec == gj.spec && gr.spec == 3 && gr.pos < gj.pos):
		return MediaGraphQLResponse, true
	}
	return MediaJSON, true
}

// better records a match of quality q, specificity spec at position pos
// when it is more specific than the one recorded (or the first).
func better(q, spec, pos *int, nq, nspec, npos int) {
	if nspec > *spec {
		*q, *spec, *pos = nq, nspec, npos
	}
}

// parseQ parses a q-value ("0.8") into thousandths; a malformed one is 0.
func parseQ(v string) int {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return 0
	}
	return int(f*1000 + 0.5)
}

// httpTransport is the POST and GET transport (see above).
type httpTransport struct{}

var _ graphql.Transport = httpTransport{}

func (httpTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && (r.Method == http.MethodPost || r.Method == http.MethodGet)
}

func (httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	mediaType, ok := ResponseType(strings.Join(r.Header.Values("Accept"), ","))
	if !ok {
		writeGraphQLError(w, http.StatusNotAcceptable, apierror.BadUserInput, "",
			"Accept allows neither application/graphql-response+json nor application/json")
		return
	}
	start := graphql.Now()
	params, msg := requestParams(r)
	if msg != "" {
		w.Header().Set("Content-Type", mediaType)
		writeGraphQLErrorBody(w, http.StatusBadRequest, apierror.BadUserInput, msg)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	w.Header().Set("Content-Type", mediaType)
	ctx := r.Context()
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if mediaType == MediaGraphQLResponse && errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		return
	}
	if r.Method == http.MethodGet {
		if op := rc.Doc.Operations.ForName(rc.OperationName); op == nil || op.Operation != ast.Query {
			w.Header().Set("Allow", http.MethodPost)
			writeGraphQLErrorBody(w, http.StatusMethodNotAllowed, apierror.BadUserInput, "GET runs queries only: send a mutation or subscription with POST")
			return
		}
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

// requestParams reads a request's GraphQL parameters, or says what is wrong
// with them.
func requestParams(r *http.Request) (*graphql.RawParams, string) {
	var raw struct {
		Query         json.RawMessage `json:"query"`
		OperationName json.RawMessage `json:"operationName"`
		Variables     json.RawMessage `json:"variables"`
		Extensions    json.RawMessage `json:"extensions"`
		DocumentID    json.RawMessage `json:"documentId"`
	}
	if r.Method == http.MethodGet {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, "the query string does not parse: " + shortMessage(err.Error())
		}
		quote := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
		if v, ok := q["query"]; ok {
			raw.Query = quote(v[0])
		}
		if v, ok := q["operationName"]; ok {
			raw.OperationName = quote(v[0])
		}
		if v, ok := q["documentId"]; ok {
			raw.DocumentID = quote(v[0])
		}
		// variables and extensions are JSON in the URL.
		if v, ok := q["variables"]; ok && v[0] != "" {
			raw.Variables = json.RawMessage(v[0])
		}
		if v, ok := q["extensions"]; ok && v[0] != "" {
			raw.Extensions = json.RawMessage(v[0])
		}
	} else {
		var body bytes.Buffer
		if r.Body != nil {
			if _, err := body.ReadFrom(r.Body); err != nil {
				return nil, "could not read request body"
			}
		}
		if b := bytes.TrimSpace(body.Bytes()); len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &raw) != nil {
			return nil, `the body must be one JSON object: {"query": "...", "variables": {...}}`
		}
	}
	p := &graphql.RawParams{}
	if !isNull(raw.Query) {
		if json.Unmarshal(raw.Query, &p.Query) != nil {
			return nil, "query must be a string"
		}
	}
	if !isNull(raw.OperationName) {
		if json.Unmarshal(raw.OperationName, &p.OperationName) != nil {
			return nil, "operationName must be a string"
		}
	}
	if !isNull(raw.Variables) {
		if !isObject(raw.Variables) || decodeNumbers(raw.Variables, &p.Variables) != nil {
			return nil, "variables must be a JSON object"
		}
	}
	if !isNull(raw.Extensions) {
		if !isObject(raw.Extensions) || decodeNumbers(raw.Extensions, &p.Extensions) != nil {
			return nil, "extensions must be a JSON object"
		}
	}
	if !isNull(raw.DocumentID) {
		// A trusted document's id (the GraphQL over HTTP persisted
		// documents appendix); the trusted documents look it up.
		var id string
		if json.Unmarshal(raw.DocumentID, &id) != nil || id == "" {
			return nil, "documentId must be a string"
		}
		if p.Extensions == nil {
			p.Extensions = map[string]any{}
		}
		p.Extensions[DocumentIDKey] = id
	}
	if p.Query == "" {
		_, pq := p.Extensions["persistedQuery"]
		_, doc := p.Extensions[DocumentIDKey]
		if !pq && !doc {
			return nil, `no query: send {"query": "..."} (or a persisted query's hash in extensions, or a documentId)`
		}
	}
	return p, ""
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

func isObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}

// decodeNumbers decodes JSON keeping numbers as json.Number, as gqlgen's
// own transports do (an Int variable must not pass through a float64).
func decodeNumbers(b json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func writeResponse(w http.ResponseWriter, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		writeGraphQLErrorBody(w, http.StatusInternalServerError, apierror.Internal, "internal error")
		return
	}
	_, _ = w.Write(b)
}

// writeGraphQLErrorBody writes a GraphQL error response with the content
// type already set.
func writeGraphQLErrorBody(w http.ResponseWriter, status int, code, msg string) {
	e := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
	b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{e}})
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
