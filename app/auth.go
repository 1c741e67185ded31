package app

import (
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/kck-go/kck/auth"
)

// verifier builds the token verifier, or nil with auth off.
// cacheBytes bounds the remembered verified tokens (its share of MemoryMB).
func (c AuthConfig) verifier(ctx context.Context, log *slog.Logger, cacheBytes uint64) (*auth.Verifier, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cfg := auth.Config{
		JWKSURL: c.JWKSURL, JWKSRefresh: c.JWKSRefresh, Issuer: c.Issuer, Audience: c.Audience,
		Leeway: c.Leeway, ScopeClaims: c.ScopeClaims, Logger: log, CacheBytes: int64(max(cacheBytes, 1)),
	}
	if c.Secret != "" {
		cfg.HMACSecret = []byte(c.Secret)
	}
	for _, path := range c.PublicKeys {
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
