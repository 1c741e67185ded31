package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/kck-go/kck/auth"
)

// runToken mints an HS256 token with the configured secret, for trying a
// gateway with auth on. Real deployments get tokens from their identity
// provider; the gateway only verifies them.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("token", stderr)
	o := tokenFlags(fs)
	sub, scope, ttl := &o.sub, &o.scope, &o.ttl
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kck token [flags]\n\nPrints an HS256 token signed with --auth-jwt-secret (KCK_AUTH_JWT_SECRET), for\ntrying a gateway that verifies tokens with the same secret:\n\n  curl -H \"Authorization: Bearer $(kck token --sub 5 --scope stats:read)\" ...\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.parse(args); err != nil {
		return parseCode(err)
	}
	secret, issuer, audience := o.secret, o.issuer, o.audience
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kck token: unexpected arguments %v\n", fs.Args())
		return 2
	}
	if secret == "" {
		fmt.Fprintln(stderr, "kck token: give the gateway's secret: --auth-jwt-secret or KCK_AUTH_JWT_SECRET")
		return 2
	}
	tok, err := auth.MintHS256([]byte(secret), *sub, *scope, issuer, audience, time.Now(), *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "kck token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

type tokenOptions struct {
	secret, issuer, sub, scope string
	audience                   []string
	ttl                        time.Duration
}

func tokenFlags(f *flags) *tokenOptions {
	o := &tokenOptions{}
	secretFlags(f, &o.secret, &o.issuer, &o.audience)
	f.StringVar(&o.sub, "sub", "", "the sub claim (the demo's users are author ids)")
	f.StringVar(&o.scope, "scope", "", `space-separated scopes, e.g. "stats:read titles:write" or kck:admin`)
	f.DurationVar(&o.ttl, "ttl", time.Hour, "lifetime: exp is now plus ttl")
	return o
}
