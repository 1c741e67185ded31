package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// jwks is a key set fetched from one URL (RFC 7517). It is a small fetcher
// of our own rather than a library: it needs a clock tests can move (the
// unknown-kid refresh is rate-limited), it must refuse symmetric keys and
// keys whose alg does not fit their type, and it must never follow a URL
// from a token. That is about 150 lines over the standard library.
type jwks struct {
	url      string
	client   *http.Client
	clock    func() time.Time
	log      *slog.Logger
	minGap   time.Duration // between refreshes for an unknown kid
	onChange func()

	keys    atomic.Pointer[map[string]pubKey] // by kid ("" for keys without one: see byKID)
	list    atomic.Pointer[[]pubKey]
	fetches atomic.Int64

	mu          sync.Mutex // one fetch at a time
	lastUnknown time.Time
	lastBody    []byte
}

// MaxJWKSBytes bounds a JWKS response.
const MaxJWKSBytes = 1 << 20

func (j *jwks) current() []pubKey {
	if l := j.list.Load(); l != nil {
		return *l
	}
	return nil
}

// lookup returns the key with kid, fetching the set again when it is not
// there and no such refresh happened in the last minGap.
func (j *jwks) lookup(ctx context.Context, kid string) (pubKey, bool) {
	if m := j.keys.Load(); m != nil {
		if k, ok := (*m)[kid]; ok {
			return k, true
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if m := j.keys.Load(); m != nil {
		if k, ok := (*m)[kid]; ok {
			return k, true // another request's refresh brought it
		}
	}
	now := j.clock()
	if !j.lastUnknown.IsZero() && now.Sub(j.lastUnknown) < j.minGap {
		return pubKey{}, false
	}
	j.lastUnknown = now
	// The fetch serves every request waiting for it: one client giving up
	// does not cancel it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := j.refreshLocked(fctx); err != nil {
		j.log.Warn("JWKS refresh for an unknown kid failed", "url", j.url, "err", err)
		return pubKey{}, false
	}
	if m := j.keys.Load(); m != nil {
		k, ok := (*m)[kid]
		return k, ok
	}
	return pubKey{}, false
}

func (j *jwks) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		j.mu.Lock()
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := j.refreshLocked(fctx)
		cancel()
		j.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			j.log.Warn("JWKS refresh failed; keeping the keys we have", "url", j.url, "err", err)
		}
	}
}

func (j *jwks) refresh(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.refreshLocked(ctx)
}

// refreshLocked fetches and installs the set; on an error the old set stays.
func (j *jwks) refreshLocked(ctx context.Context) error {
	j.fetches.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > MaxJWKSBytes {
		return fmt.Errorf("larger than %d bytes", MaxJWKSBytes)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		j.log.Debug("JWKS key skipped", "url", j.url, "reason", s)
	}
	if j.lastBody != nil && bytes.Equal(body, j.lastBody) {
		return nil
	}
	m := make(map[string]pubKey, len(keys))
	for _, k := range keys {
		if k.kid != "" {
			m[k.kid] = k
		}
	}
	changed := j.lastBody != nil
	j.lastBody = body
	j.keys.Store(&m)
	j.list.Store(&keys)
	if changed && j.onChange != nil {
		j.onChange()
	}
	return nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads the usable signature keys of a JWK set: RSA (RS256), EC
// P-256 (ES256) and OKP Ed25519 (EdDSA). Keys of other types, curves or
// uses, symmetric keys, and keys whose alg is not their type's are skipped,
// each with a reason.
func parseJWKS(body []byte) (keys []pubKey, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWK set: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New("not a JWK set: no keys member")
	}
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		pk, err := k.public()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		keys = append(keys, pk)
	}
	return keys, skipped, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func (k jwk) public() (pubKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return pubKey{}, fmt.Errorf("use %q", k.Use)
	}
	want := map[string]string{"RSA": RS256, "EC": ES256, "OKP": EdDSA}[k.Kty]
	if want == "" {
		return pubKey{}, fmt.Errorf("kty %q is not RSA, EC or OKP", k.Kty)
	}
	if k.Alg != "" && k.Alg != want && !(want == EdDSA && k.Alg == "Ed25519") {
		return pubKey{}, fmt.Errorf("alg %q on a %s key", k.Alg, k.Kty)
	}
	out := pubKey{kid: k.Kid, alg: want}
	switch k.Kty {
	case "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return pubKey{}, errors.New("bad RSA n or e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.E < 3 || pub.E%2 == 0 {
			return pubKey{}, errors.New("bad RSA exponent")
		}
		out.key = pub
	case "EC":
		if k.Crv != "P-256" {
			return pubKey{}, fmt.Errorf("curve %q (ES256 needs P-256)", k.Crv)
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return pubKey{}, errors.New("bad EC x or y")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return pubKey{}, fmt.Errorf("EC point: %w", err)
		}
		out.key = pub
	case "OKP":
		x, err := b64(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return pubKey{}, errors.New("OKP key is not an Ed25519 key")
		}
		out.key = ed25519.PublicKey(x)
	}
	if _, err := algOf(out.key); err != nil {
		return pubKey{}, err
	}
	return out, nil
}
