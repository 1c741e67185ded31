package gqlhttp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/primers"
	"github.com/kck-go/kck/trusted"
)

// Trusted documents (Options.Trusted; package trusted). Before anything
// else is done with a document, it is looked up in the manifest in force:
// by the id a request names (Apollo's persistedQuery.sha256Hash, or a
// documentId, with no query: the manifest's text is run, so a GET of a
// trusted document's id is all a CDN needs to cache it), or by its text's
// SHA-256. A document not found runs in log mode (counted, logged once) and
// is refused with PERSISTED_QUERY_NOT_ALLOWED in enforce mode, unless the
// caller has kck:admin and ad hoc documents are allowed to admins; the
// response of such an exception is never kept in the response cache.
// Subscriptions and mutations are held to it as queries are.

// CodePersistedQueryNotAllowed (apierror.PersistedQueryNotAllowed) is the code of a document refused in
// enforce mode.
const CodePersistedQueryNotAllowed = apierror.PersistedQueryNotAllowed

// DocumentIDKey is where the transport puts a request's documentId (the
// GraphQL over HTTP persisted documents appendix) among its extensions.
const DocumentIDKey = "documentId"

func init() {
	// A refusal of the document itself, like a validation failure: 400
	// with application/graphql-response+json (see transport.go).
	errcode.RegisterErrorType(CodePersistedQueryNotAllowed, errcode.KindProtocol)
}

func (l *limiter) trust(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	t := l.trusted
	m := t.Current()
	enforce := t.Mode() == trusted.Enforce
	if id := documentID(params); id != "" {
		if d, ok := m.Lookup(id); ok && (params.Query == "" || params.Query == d.Body) {
			params.Query = d.Body
			// The manifest's id need not be the text's SHA-256 (Code
			// Generator may use SHA-1): APQ has nothing left to check.
			delete(params.Extensions, "persistedQuery")
			t.Trusted()
			return nil
		}
		if params.Query == "" {
			admin := l.adminAdHoc(ctx)
			if enforce && !admin {
				t.Refused()
				return notAllowed("no trusted document has this id; this gateway runs only its trusted documents")
			}
			// Log mode, or an admin: APQ fills in a query it keeps (else
			// answers PERSISTED_QUERY_NOT_FOUND); not a trusted one.
			t.Unknown(id, params.OperationName, admin)
			if enforce {
				collectorFrom(ctx).setAdHoc()
			}
			return nil
		}
	}
	if params.Query == "" {
		return nil // nothing to run: the executor says so
	}
	if _, ok := m.LookupBody(params.Query); ok {
		t.Trusted()
		return nil
	}
	admin := l.adminAdHoc(ctx)
	if enforce && !admin {
		t.Refused()
		return notAllowed("this document is not one of the gateway's trusted documents")
	}
	sum := sha256.Sum256([]byte(params.Query))
	t.Unknown(hex.EncodeToString(sum[:]), params.OperationName, admin)
	if enforce {
		collectorFrom(ctx).setAdHoc()
	}
	return nil
}

// adminAdHoc reports whether the caller may run documents that are not
// trusted: kck:admin, when the store allows it.
func (l *limiter) adminAdHoc(ctx context.Context) bool {
	if !l.trusted.AdminAdHoc() {
		return false
	}
	p := auth.PrincipalFrom(ctx)
	return p != nil && p.HasScope(primers.AdminScope)
}

// documentID is the id a request names its document by.
func documentID(params *graphql.RawParams) string {
	if id, ok := params.Extensions[DocumentIDKey].(string); ok {
		return id
	}
	if pq, ok := params.Extensions["persistedQuery"].(map[string]any); ok {
		if h, ok := pq["sha256Hash"].(string); ok {
			return h
		}
	}
	return ""
}

func notAllowed(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": CodePersistedQueryNotAllowed}}
}
