package gateway

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"

	"github.com/99designs/gqlgen/graphql/playground"
)

// The playground's assets, embedded so that the page loads nothing from a
// CDN (gateways run air-gapped too): GraphiQL 4.1.2, React and ReactDOM
// 18.2.0, the UMD builds from npm, byte for byte the files gqlgen's own
// page pins by their SRI hashes below (licences beside them).
//
//go:embed playground/*.js playground/*.css playground/LICENSE.*
var playgroundAssets embed.FS

// The assets' paths under the gateway, and their subresource-integrity
// hashes (sha256 of the embedded bytes; TestPlaygroundLoadsNothingFromOutside
// checks them).
const (
	playgroundPrefix = "/playground/"
	graphiqlJSSRI    = "sha256-hnImuor1znlJkD/FOTL3jayfS/xsyNoP04abi8bFJWs="
	graphiqlCSSSRI   = "sha256-MEh+B2NdMSpj9kexQNN3QKc8UzMrCXW/Sx/phcpuyIU="
	reactSRI         = "sha256-S0lp+k7zWUMk2ixteM6HZvu8L9Eh//OVrt+ZfbCpmgY="
	reactDOMSRI      = "sha256-IXWO0ITNDjfnNXIu5POVfqlgYoop36bDzhodR6LW5Pc="
)

// playgroundPage is GraphiQL, as gqlgen renders it, with every asset from
// this gateway. It runs subscriptions too: gqlgen's page gives GraphiQL's
// fetcher a subscriptionUrl (ws(s)://host/graphql), and GraphiQL 4.1.2's
// UMD build carries graphql-ws's client inside it (so inside the file
// pinned above: no further asset); the fetcher sends the headers pane's
// headers as connection_init's payload, which is where the gateway reads
// a token ({"Authorization": "Bearer ..."}).
//
// The page opens with query in its editor (GraphiQL's defaultQuery, used
// when the browser has none stored): GraphiQL's own welcome text is a
// comment, and running it is a syntax error. It names /favicon.ico, which
// the gateway serves, so that no page of it logs a 404.
func playgroundPage(query string) (http.Handler, error) {
	h := playground.Handler("KCK", "/graphql",
		playground.WithGraphiqlVersion(playgroundPrefix+"graphiql.min.js", playgroundPrefix+"graphiql.min.css", graphiqlJSSRI, graphiqlCSSSRI),
		playground.WithGraphiqlReactVersion(playgroundPrefix+"react.production.min.js", playgroundPrefix+"react-dom.production.min.js", reactSRI, reactDOMSRI),
	)
	// gqlgen renders a fixed template: rendered once, with the two
	// additions made where its text allows them.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.Bytes()
	q, err := json.Marshal(query)
	if err != nil {
		return nil, err
	}
	for _, edit := range []struct{ at, add string }{
		{"inputValueDeprecation: true", ",\n          defaultQuery: " + string(q)},
		{"<title>KCK</title>", "\n    <link rel=\"icon\" href=\"/favicon.ico\">"},
	} {
		i := bytes.Index(page, []byte(edit.at))
		if i < 0 {
			return nil, errPlaygroundTemplate
		}
		i += len(edit.at)
		page = append(page[:i:i], append([]byte(edit.add), page[i:]...)...)
	}
	hdr := rec.Header().Clone()
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range hdr {
			w.Header()[k] = v
		}
		_, _ = w.Write(page)
	}), nil
}

// errPlaygroundTemplate says gqlgen's page changed where it is edited
// (caught by the playground tests on an upgrade).
var errPlaygroundTemplate = errors.New("gateway: gqlgen's playground page is not the one expected; see playground.go")

// demoQuery is the playground's first query on KCK's own schema (the
// demo's products): it runs as it is, with auth on too (public products).
const demoQuery = `# KCK's demo: press Run (Ctrl-Enter). Each product is served from the
# cache; extensions.kck.products tells its version and freshness.
{
  titleList(authorId: 42) {
    id
    title
    year
  }
  topAuthors(n: 3) {
    authorId
    name
    totalSales
  }
}
`

// schemaQuery is the first query on an application's own schema.
const schemaQuery = `# Write a query, then press Run (Ctrl-Enter).
{
  __typename
}
`

//go:embed favicon.ico
var favicon []byte

// serveFavicon answers /favicon.ico, which browsers ask for on every page
// (the playground's and the console's would log a 404 otherwise).
func serveFavicon(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/x-icon")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(favicon)
}

// playgroundFiles serves the embedded assets; they never change within a
// build, so browsers may keep them.
func playgroundFiles() http.Handler {
	fs := http.FileServerFS(playgroundAssets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fs.ServeHTTP(w, r)
	})
}
