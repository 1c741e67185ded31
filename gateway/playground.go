package gateway

import (
	"embed"
	"net/http"

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
func playgroundPage() http.Handler {
	return playground.Handler("KCK", "/graphql",
		playground.WithGraphiqlVersion(playgroundPrefix+"graphiql.min.js", playgroundPrefix+"graphiql.min.css", graphiqlJSSRI, graphiqlCSSSRI),
		playground.WithGraphiqlReactVersion(playgroundPrefix+"react.production.min.js", playgroundPrefix+"react-dom.production.min.js", reactSRI, reactDOMSRI),
	)
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
