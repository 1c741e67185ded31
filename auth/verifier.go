package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/maypok86/otter/v2"
)

// The algorithms a Verifier accepts, each with its one key type.
const (
	HS256 = "HS256" // an HMAC secret of at least 32 bytes
	RS256 = "RS256" // an RSA public key of at least 2048 bits
	ES256 = "ES256" // an ECDSA P-256 public key
	EdDSA = "EdDSA" // an Ed25519 public key
)

// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 3.2: at
// least the hash's size).
const MinSecretBytes = 32

// MaxLeeway bounds Config.Leeway.
const MaxLeeway = time.Minute

// Config configures a Verifier. At least one key source is required.
type Config struct {
	// HMACSecret verifies HS256 tokens; at least MinSecretBytes long.
	HMACSecret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey), ES256 (*ecdsa.PublicKey on
	// P-256) and EdDSA (ed25519.PublicKey) tokens, whatever their kid.
	PublicKeys []crypto.PublicKey
	// JWKSURL is fetched at start, every JWKSRefresh (default 15 min), and
	// when a token names a kid it does not hold, at most once per
	// JWKSUnknownKIDInterval (default 1 min). Symmetric (oct) keys in it are
	// ignored: a secret never comes from a URL.
	JWKSURL                             string
	JWKSRefresh, JWKSUnknownKIDInterval time.Duration
	// HTTPClient fetches the JWKS; default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Issuer, when set, must be the iss claim; Audience, when set, must be
	// in the aud claim.
	Issuer   string
	Audience []string
	// Leeway is the clock skew allowed on exp, nbf and iat: 0 to MaxLeeway.
	// (The serve command's default is 30 s.)
	Leeway time.Duration
	// ScopeClaims name the claims holding scopes, a space-separated string
	// or an array of strings; default scope and scp.
	ScopeClaims []string
	// MaxTokenBytes refuses longer tokens before parsing; default 8 KiB.
	MaxTokenBytes int
	// CacheBytes bounds the memory of remembered verified tokens; default
	// 16 MiB. Negative disables remembering. A quarter of it goes to a table
	// of recent tokens (up to 1 KiB each) that answers without a lock or a
	// clock read; the rest to a cache that holds tokens until their exp.
	CacheBytes int64
	// Clock defaults to time.Now; tests inject one to expire tokens.
	Clock  func() time.Time
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = 15 * time.Minute
	}
	if c.JWKSUnknownKIDInterval == 0 {
		c.JWKSUnknownKIDInterval = time.Minute
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if len(c.ScopeClaims) == 0 {
		c.ScopeClaims = []string{"scope", "scp"}
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = 8 << 10
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 16 << 20
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if len(c.HMACSecret) == 0 && len(c.PublicKeys) == 0 && c.JWKSURL == "" {
		return errors.New("auth: no key: give an HS256 secret, public keys or a JWKS URL")
	}
	if len(c.HMACSecret) > 0 && len(c.HMACSecret) < MinSecretBytes {
		return fmt.Errorf("auth: the HS256 secret is %d bytes; at least %d are needed", len(c.HMACSecret), MinSecretBytes)
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return fmt.Errorf("auth: leeway %v is outside 0 to %v", c.Leeway, MaxLeeway)
	}
	if c.JWKSRefresh < 0 || c.JWKSUnknownKIDInterval < 0 {
		return errors.New("auth: negative JWKS interval")
	}
	for i, k := range c.PublicKeys {
		if _, err := algOf(k); err != nil {
			return fmt.Errorf("auth: public key %d: %w", i+1, err)
		}
	}
	return nil
}

// algOf returns the one algorithm a public key verifies.
func algOf(k crypto.PublicKey) (string, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits; at least 2048 are needed", k.N.BitLen())
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return ES256, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", errors.New("bad Ed25519 key size")
		}
		return EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T (RSA, ECDSA P-256 or Ed25519)", k)
}

// ParsePublicKeysPEM reads the public keys of PEM data: PUBLIC KEY (PKIX),
// RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks. A private key is refused:
// a gateway needs only the public half.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var k crypto.PublicKey
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				k = cert.PublicKey
			}
		default:
			if strings.Contains(b.Type, "PRIVATE") {
				return nil, fmt.Errorf("a %s block: give the public key only", b.Type)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", b.Type, err)
		}
		if _, err := algOf(k); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return out, nil
}

type pubKey struct {
	kid, alg string
	key      crypto.PublicKey
}

// Verifier turns bearer tokens into Principals. Safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	hmac   []byte
	static []pubKey
	jwks   *jwks // nil without a JWKS URL

	// tokens remembers verified tokens by their exact bytes. gen counts key
	// set changes: a verification that began under an older key set is not
	// remembered, and a change forgets every remembered token (under mu).
	tokens *otter.Cache[string, *Principal]
	front  *tokenFront // nil with an injected clock or no cache
	mu     sync.RWMutex
	gen    atomic.Uint64

	clockSet bool // Config.Clock was given (tests)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewVerifier checks cfg and, with a JWKS URL, fetches the key set (failing
// when it cannot) and starts refreshing it; Close stops that.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	clockSet := cfg.Clock != nil
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, hmac: cfg.HMACSecret, clockSet: clockSet}
	var methods []string
	if len(v.hmac) > 0 {
		methods = append(methods, HS256)
	}
	for _, k := range cfg.PublicKeys {
		alg, _ := algOf(k)
		v.static = append(v.static, pubKey{alg: alg, key: k})
		methods = append(methods, alg)
	}
	if cfg.JWKSURL != "" {
		// The set's key types are not known in advance; each key still
		// verifies only its own algorithm (see keyfunc).
		methods = append(methods, RS256, ES256, EdDSA)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(dedupe(methods)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Clock),
		jwt.WithJSONNumber(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	v.parser = jwt.NewParser(opts...)
	if cfg.CacheBytes > 0 {
		cacheBytes := cfg.CacheBytes
		if n := frontSlots(cacheBytes); n > 0 && !clockSet {
			v.front = newTokenFront(n)
			cacheBytes -= int64(n) * frontSlotBytes // the cache has the rest
		}
		var err error
		v.tokens, err = otter.New(&otter.Options[string, *Principal]{
			MaximumWeight: uint64(cacheBytes),
			Weigher: func(tok string, p *Principal) uint32 {
				return uint32(min(len(tok)+len(p.identity)+16*len(p.scopes)+256, 1<<31))
			},
			// Dropped at exp (plus the leeway); Verify checks exp on its own
			// clock as well.
			ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[string, *Principal]) time.Duration {
				return max(time.Until(e.Value.Expires.Add(cfg.Leeway)), time.Millisecond)
			}),
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.JWKSURL != "" {
		v.jwks = &jwks{url: cfg.JWKSURL, client: cfg.HTTPClient, clock: cfg.Clock, log: cfg.Logger,
			minGap: cfg.JWKSUnknownKIDInterval, onChange: v.forgetTokens}
		if err := v.jwks.refresh(ctx); err != nil {
			v.Close()
			return nil, fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
		}
		var lctx context.Context
		lctx, v.cancel = context.WithCancel(context.WithoutCancel(ctx))
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			v.jwks.loop(lctx, cfg.JWKSRefresh)
		}()
	}
	return v, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Close stops the JWKS refresh and the remembered tokens' clock.
func (v *Verifier) Close() {
	if v.cancel != nil {
		v.cancel()
	}
	v.wg.Wait()
	if v.front != nil {
		v.front.close()
	}
	if v.tokens != nil {
		v.tokens.StopAllGoroutines() // its expiry's clean-up
	}
}

// RefreshKeys fetches the JWKS now (a no-op without one). The refresh loop
// calls it; so may an operator or a test.
func (v *Verifier) RefreshKeys(ctx context.Context) error {
	if v.jwks == nil {
		return nil
	}
	v.jwks.mu.Lock()
	defer v.jwks.mu.Unlock()
	return v.jwks.refreshLocked(ctx)
}

// JWKSFetches counts the JWKS fetches made, for tests and metrics.
func (v *Verifier) JWKSFetches() int64 {
	if v.jwks == nil {
		return 0
	}
	return v.jwks.fetches.Load()
}

func (v *Verifier) forgetTokens() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen.Add(1)
	if v.tokens != nil {
		v.tokens.InvalidateAll()
	}
	if v.front != nil {
		v.front.clear()
	}
}

// Leeway is the clock skew allowed on exp, nbf and iat.
func (v *Verifier) Leeway() time.Duration { return v.cfg.Leeway }

// Now is the time on the verifier's clock (Config.Clock).
func (v *Verifier) Now() time.Time { return v.cfg.Clock() }

// ScopeClaims returns the claims scopes are read from.
func (v *Verifier) ScopeClaims() []string { return v.cfg.ScopeClaims }

// Authenticate reads the request's Authorization header: no header (or an
// empty one) is an anonymous caller (nil, nil); anything else must be
// "Bearer <token>" with a valid token.
func (v *Verifier) Authenticate(r *http.Request) (*Principal, error) {
	h := r.Header["Authorization"]
	if len(h) == 0 || (len(h) == 1 && h[0] == "") {
		return nil, nil
	}
	if len(h) > 1 {
		return nil, invalid("more than one Authorization header")
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, invalid("want Authorization: Bearer <token>")
	}
	return v.Verify(r.Context(), strings.TrimSpace(tok))
}

// Verify checks a token's signature and claims and returns its principal.
// A token verified before is answered from memory until its exp.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, invalid("empty token")
	}
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, invalid("token too large")
	}
	if v.front != nil {
		if p, ok := v.front.get(token); ok {
			return p, nil
		}
	}
	gen := v.gen.Load()
	if v.tokens != nil {
		if p, ok := v.tokens.GetIfPresent(token); ok {
			// The cache drops a token at its exp (plus the leeway) on the
			// real clock; an injected clock is checked here.
			if !v.clockSet || v.cfg.Clock().Before(p.Expires.Add(v.cfg.Leeway)) {
				v.remember(gen, token, p, false)
				return p, nil
			}
			v.tokens.Invalidate(token)
			return nil, invalid("token is expired")
		}
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx)); err != nil {
		return nil, classify(err)
	}
	p := NewPrincipal(claims, v.cfg.ScopeClaims)
	v.remember(gen, token, p, true)
	return p, nil
}

// remember keeps a token verified under key set gen, unless the set changed
// since: in the cache when it was just verified (a token about to expire is
// not: the cache keeps an entry at least a millisecond), and in the front.
func (v *Verifier) remember(gen uint64, token string, p *Principal, verified bool) {
	if v.tokens == nil {
		return
	}
	until := p.Expires.Add(v.cfg.Leeway)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.gen.Load() != gen {
		return
	}
	if verified && (v.clockSet || time.Until(until) > time.Second) {
		v.tokens.Set(token, p)
	}
	if v.front != nil {
		v.front.put(token, p, until)
	}
}

var (
	errUnknownKID = errors.New("unknown key id")
	errNoKey      = errors.New("no key for the token's algorithm")
	errCrit       = errors.New("critical header extensions")
)

// keyfunc picks the keys that may verify t: the HMAC secret for HS256 only,
// and for the others only public keys of the algorithm's own type. Header
// fields that point at keys elsewhere (jku, x5u, jwk, x5c) are never read.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 4.1.11: extensions we do not implement must be refused.
			return nil, errCrit
		}
		alg := t.Method.Alg()
		if alg == HS256 {
			if len(v.hmac) == 0 {
				return nil, errNoKey
			}
			return v.hmac, nil
		}
		kid, hasKID := t.Header["kid"].(string)
		var keys []jwt.VerificationKey
		if v.jwks != nil {
			if hasKID {
				if k, ok := v.jwks.lookup(ctx, kid); ok {
					if k.alg != alg {
						return nil, errNoKey
					}
					return k.key, nil
				}
			} else {
				for _, k := range v.jwks.current() {
					if k.alg == alg {
						keys = append(keys, k.key)
					}
				}
			}
		}
		for _, k := range v.static {
			if k.alg == alg {
				keys = append(keys, k.key)
			}
		}
		switch {
		case len(keys) == 0 && hasKID && v.jwks != nil:
			return nil, errUnknownKID
		case len(keys) == 0:
			return nil, errNoKey
		case len(keys) == 1:
			return keys[0], nil
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
}

func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }

// classify turns a parser error into fixed words: the parser's own messages
// are not shown, so nothing of the token can be echoed.
func classify(err error) error {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{errUnknownKID, "unknown key id"},
		{errNoKey, "no key for the token's algorithm"},
		{errCrit, "critical header extensions are not supported"},
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm"},
		{jwt.ErrTokenRequiredClaimMissing, "a required claim (exp, or the configured iss or aud) is missing"},
		{jwt.ErrTokenExpired, "token is expired"},
		{jwt.ErrTokenNotValidYet, "token is not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "token is issued in the future"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenUnverifiable, "token cannot be verified"},
		{jwt.ErrTokenInvalidClaims, "invalid claims"},
	} {
		if errors.Is(err, c.err) {
			return invalid(c.reason)
		}
	}
	return invalid("rejected")
}
