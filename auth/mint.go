package auth

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintHS256 signs an HS256 token for trying a gateway (kck token): sub,
// scope (space-separated), iat and exp from now and ttl, and iss and aud
// when given. Production tokens come from an identity provider.
func MintHS256(secret []byte, sub, scope, iss string, aud []string, now time.Time, ttl time.Duration) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", fmt.Errorf("the HS256 secret is %d bytes; at least %d are needed", len(secret), MinSecretBytes)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("ttl must be positive, got %v", ttl)
	}
	claims := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if sub != "" {
		claims["sub"] = sub
	}
	if scope != "" {
		claims["scope"] = scope
	}
	if iss != "" {
		claims["iss"] = iss
	}
	switch len(aud) {
	case 0:
	case 1:
		claims["aud"] = aud[0]
	default:
		claims["aud"] = aud
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
