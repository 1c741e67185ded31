package cli

import (
	"github.com/kck-go/kck/app"
)

// authFlags adds the auth flags of serve; secretFlags those kck token shares.
func authFlags(f *flags, c *app.AuthConfig) {
	d := app.Defaults().Auth
	secretFlags(f, &c.Secret, &c.Issuer, &c.Audience)
	c.PublicKeys = envList("KCK_AUTH_PUBLIC_KEYS")
	f.value(&repeatList{vals: &c.PublicKeys, fromEnv: true}, "auth-public-key", "KCK_AUTH_PUBLIC_KEYS", "PEM file of a public key verifying RS256, ES256 (P-256) or EdDSA tokens; repeatable, comma-separated in the variable")
	f.str(&c.JWKSURL, "auth-jwks-url", "KCK_AUTH_JWKS_URL", "", "JWKS URL of the token issuer's public keys; refreshed on an interval and on an unknown kid, at most once a minute")
	f.dur(&c.JWKSRefresh, "auth-jwks-refresh", "KCK_AUTH_JWKS_REFRESH", d.JWKSRefresh, "how often the JWKS is fetched again")
	f.dur(&c.Leeway, "auth-leeway", "KCK_AUTH_LEEWAY", d.Leeway, "clock skew allowed on exp, nbf and iat, at most 60s")
	c.ScopeClaims = envList("KCK_AUTH_SCOPE_CLAIMS")
	if len(c.ScopeClaims) == 0 {
		c.ScopeClaims = d.ScopeClaims
	}
	f.value((*hostList)(&c.ScopeClaims), "auth-scope-claims", "KCK_AUTH_SCOPE_CLAIMS", "claims holding the token's scopes, a space-separated string or an array")
}

func secretFlags(f *flags, secret, issuer *string, audience *[]string) {
	f.str(secret, "auth-jwt-secret", "KCK_AUTH_JWT_SECRET", "", "HS256 secret, at least 32 bytes; turns auth on")
	f.str(issuer, "auth-issuer", "KCK_AUTH_ISSUER", "", "required iss claim, when set")
	*audience = envList("KCK_AUTH_AUDIENCE")
	f.value((*hostList)(audience), "auth-audience", "KCK_AUTH_AUDIENCE", "accepted aud claims, comma-separated; one is required when set")
}
