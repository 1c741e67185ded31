package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kck-go/kck/auth"
)

// authConfig is the gateway's token verification: off unless a key is
// given (an HS256 secret, PEM public keys or a JWKS URL).
type authConfig struct {
	Secret      string
	PublicKeys  repeatList
	JWKSURL     string
	JWKSRefresh time.Duration
	Issuer      string
	Audience    hostList
	Leeway      time.Duration
	ScopeClaims hostList
}

// repeatList is a flag given several times (or comma-separated): its first
// use replaces the value from the environment, later ones add to it. (So
// the command line adds to a config file's list: both arrive through Set.)
type repeatList struct {
	vals    []string
	fromEnv bool
}

func (l *repeatList) String() string { return strings.Join(l.vals, ",") }
func (l *repeatList) Set(s string) error {
	if l.fromEnv {
		l.vals, l.fromEnv = nil, false
	}
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l.vals = append(l.vals, p)
		}
	}
	return nil
}

func envList(name string) []string {
	var h hostList
	_ = h.Set(envOr(name, ""))
	return h
}

// authFlags adds the auth flags of serve; secretFlags those kck token shares.
func authFlags(fs *flag.FlagSet, c *authConfig) {
	secretFlags(fs, &c.Secret, &c.Issuer, &c.Audience)
	c.PublicKeys = repeatList{vals: envList("KCK_AUTH_PUBLIC_KEYS"), fromEnv: true}
	fs.Var(&c.PublicKeys, "auth-public-key", "PEM file of a public key verifying RS256, ES256 (P-256) or EdDSA tokens; repeatable, comma-separated in the variable (KCK_AUTH_PUBLIC_KEYS)")
	fs.StringVar(&c.JWKSURL, "auth-jwks-url", envOr("KCK_AUTH_JWKS_URL", ""), "JWKS URL of the token issuer's public keys; refreshed on an interval and on an unknown kid, at most once a minute (KCK_AUTH_JWKS_URL)")
	fs.DurationVar(&c.JWKSRefresh, "auth-jwks-refresh", envDuration("KCK_AUTH_JWKS_REFRESH", 15*time.Minute), "how often the JWKS is fetched again (KCK_AUTH_JWKS_REFRESH)")
	fs.DurationVar(&c.Leeway, "auth-leeway", envDuration("KCK_AUTH_LEEWAY", 30*time.Second), "clock skew allowed on exp, nbf and iat, at most 60s (KCK_AUTH_LEEWAY)")
	c.ScopeClaims = envList("KCK_AUTH_SCOPE_CLAIMS")
	if len(c.ScopeClaims) == 0 {
		c.ScopeClaims = hostList{"scope", "scp"}
	}
	fs.Var(&c.ScopeClaims, "auth-scope-claims", "claims holding the token's scopes, a space-separated string or an array (KCK_AUTH_SCOPE_CLAIMS)")
}

func secretFlags(fs *flag.FlagSet, secret, issuer *string, audience *hostList) {
	fs.StringVar(secret, "auth-jwt-secret", envOr("KCK_AUTH_JWT_SECRET", ""), "HS256 secret, at least 32 bytes; turns auth on (KCK_AUTH_JWT_SECRET)")
	fs.StringVar(issuer, "auth-issuer", envOr("KCK_AUTH_ISSUER", ""), "required iss claim, when set (KCK_AUTH_ISSUER)")
	*audience = envList("KCK_AUTH_AUDIENCE")
	fs.Var(audience, "auth-audience", "accepted aud claims, comma-separated; one is required when set (KCK_AUTH_AUDIENCE)")
}

func (c authConfig) enabled() bool {
	return c.Secret != "" || len(c.PublicKeys.vals) > 0 || c.JWKSURL != ""
}

func (c authConfig) validate() error {
	if !c.enabled() {
		return nil
	}
	if c.Secret != "" && len(c.Secret) < auth.MinSecretBytes {
		return fmt.Errorf("serve: --auth-jwt-secret is %d bytes; at least %d are needed", len(c.Secret), auth.MinSecretBytes)
	}
	if c.Leeway < 0 || c.Leeway > auth.MaxLeeway {
		return fmt.Errorf("serve: --auth-leeway must be between 0 and %v", auth.MaxLeeway)
	}
	if c.JWKSRefresh <= 0 {
		return errors.New("serve: --auth-jwks-refresh must be positive")
	}
	return nil
}

// verifier builds the token verifier, or nil with auth off.
// cacheBytes bounds the remembered verified tokens (its share of --memory-mb).
func (c authConfig) verifier(ctx context.Context, log *slog.Logger, cacheBytes uint64) (*auth.Verifier, error) {
	if !c.enabled() {
		return nil, nil
	}
	cfg := auth.Config{
		JWKSURL: c.JWKSURL, JWKSRefresh: c.JWKSRefresh, Issuer: c.Issuer, Audience: c.Audience,
		Leeway: c.Leeway, ScopeClaims: c.ScopeClaims, Logger: log, CacheBytes: int64(max(cacheBytes, 1)),
	}
	if c.Secret != "" {
		cfg.HMACSecret = []byte(c.Secret)
	}
	for _, path := range c.PublicKeys.vals {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--auth-public-key: %w", err)
		}
		keys, err := auth.ParsePublicKeysPEM(b)
		if err != nil {
			return nil, fmt.Errorf("--auth-public-key %s: %w", path, err)
		}
		cfg.PublicKeys = append(cfg.PublicKeys, []crypto.PublicKey(keys)...)
	}
	v, err := auth.NewVerifier(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var kinds []string
	if c.Secret != "" {
		kinds = append(kinds, "HS256 secret")
	}
	if n := len(cfg.PublicKeys); n > 0 {
		kinds = append(kinds, fmt.Sprintf("%d public keys", n))
	}
	if c.JWKSURL != "" {
		kinds = append(kinds, "JWKS "+c.JWKSURL)
	}
	log.Info("auth on: bearer tokens verified", "keys", strings.Join(kinds, ", "), "issuer", c.Issuer,
		"audience", strings.Join(c.Audience, ","), "leeway", c.Leeway.String())
	return v, nil
}
