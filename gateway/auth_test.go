package gateway_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/cache/cachetest"
	"github.com/kck-go/kck/cache/memory"
	"github.com/kck-go/kck/demo"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/primers"
)

// The keys of the auth tests, made once: RSA generation is slow.
type testKeys struct {
	secret           []byte
	rsa, jwksA       *rsa.PrivateKey // static PEM key; JWKS kid "a"
	jwksB, attacker  *rsa.PrivateKey // JWKS kid "b" (added later); never configured
	ec, ecAttacker   *ecdsa.PrivateKey
	ed               ed25519.PrivateKey
	rsaPublicKeyPEM  []byte
	attackerJWKSBody []byte
}

var keysOnce = sync.OnceValue(func() *testKeys {
	k := &testKeys{secret: []byte("test-secret-of-at-least-32-bytes!!")}
	gen := func() *rsa.PrivateKey {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return key
	}
	k.rsa, k.jwksA, k.jwksB, k.attacker = gen(), gen(), gen(), gen()
	var err error
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ecAttacker, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		panic(err)
	}
	k.rsaPublicKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	k.attackerJWKSBody = jwksBody(map[string]*rsa.PublicKey{"evil": &k.attacker.PublicKey})
	return k
})

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func jwksBody(keys map[string]*rsa.PublicKey) []byte {
	var ks []any
	for kid, k := range keys {
		ks = append(ks, rsaJWK(kid, k))
	}
	b, _ := json.Marshal(map[string]any{"keys": ks})
	return b
}

// newClock is the verifier's clock (a cachetest.Clock), from now:
// tests move it instead of sleeping.
func newClock() *cachetest.Clock { return cachetest.NewClock(time.Now()) }

// keyServer serves a JWKS (or anything) and counts its requests.
type keyServer struct {
	url  string
	body atomic.Pointer[[]byte]
	hits atomic.Int64
}

func newKeyServer(t *testing.T, body []byte) *keyServer {
	ks := &keyServer{}
	ks.body.Store(&body)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ks.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*ks.body.Load())
	}))
	t.Cleanup(hs.Close)
	ks.url = hs.URL
	return ks
}

func (ks *keyServer) serve(body []byte) { ks.body.Store(&body) }

type authEnv struct {
	*env
	keys     *testKeys
	clock    *cachetest.Clock
	verifier *auth.Verifier
	jwks     *keyServer
	// slowMine's primer waits until mineWant calls are running at once.
	mineCalls atomic.Int64
	mineWant  int64
	mineAll   chan struct{}
}

// newAuthEnv starts the real gateway, auth on, over a real cache and
// embedded store: the demo products (with their declared policies) and
// slow_mine, a per-user product whose primer waits for company. Tokens
// verify with an HS256 secret, a static RSA key, an ES256 and an EdDSA key,
// and a JWKS served by the test (kid "a"); iss kck-test, aud kck.
func newAuthEnv(t *testing.T, mod ...func(*gateway.Options)) *authEnv {
	t.Helper()
	k := keysOnce()
	e := &authEnv{env: &env{ds: demo.NewDataset(), metrics: prometheus.NewRegistry()}, keys: k, clock: newClock(),
		mineWant: 2, mineAll: make(chan struct{})}
	e.jwks = newKeyServer(t, jwksBody(map[string]*rsa.PublicKey{"a": &k.jwksA.PublicKey}))
	var err error
	e.store = memory.New()
	t.Cleanup(func() { _ = e.store.Close() })
	reg := primers.NewRegistry()
	require.NoError(t, demo.Register(reg, e.ds))
	var once sync.Once
	reg.MustRegister(primers.Product{
		Name: "slow_mine",
		Auth: primers.Auth{KeyBy: []string{"sub"}},
		Primer: primers.Func1(func(ctx context.Context, sub string) (string, error) {
			if e.mineCalls.Add(1) == e.mineWant {
				once.Do(func() { close(e.mineAll) })
			}
			select {
			case <-e.mineAll:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			return "value of " + sub, nil
		}),
	})
	e.cache, err = cache.New(cache.Options{Registry: reg, Store: e.store, Registerer: e.metrics})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	e.verifier, err = auth.NewVerifier(context.Background(), auth.Config{
		HMACSecret: k.secret,
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey, k.ed.Public()},
		JWKSURL:    e.jwks.url,
		Issuer:     "kck-test", Audience: []string{"kck"},
		Leeway: 30 * time.Second,
		Clock:  e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(e.verifier.Close)
	o := gateway.Options{
		Cache: e.cache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: e.metrics, Gatherer: e.metrics, Auth: e.verifier, RequestTimeout: 20 * time.Second,
	}
	for _, m := range mod {
		m(&o)
	}
	e.srv, err = gateway.New(o)
	require.NoError(t, err)
	hs := httptest.NewServer(e.srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

// claims are a valid token's: sub, scopes, iss, aud, iat and exp.
func (e *authEnv) claims(sub, scope string) jwt.MapClaims {
	now := e.clock.Now()
	return jwt.MapClaims{"sub": sub, "scope": scope, "iss": "kck-test", "aud": "kck",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims, hdr map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// hs is an HS256 token for sub with scope.
func (e *authEnv) hs(t *testing.T, sub, scope string) string {
	return sign(t, jwt.SigningMethodHS256, e.keys.secret, e.claims(sub, scope), nil)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

type authReply struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string                `json:"message"`
		Path       []any                 `json:"path"`
		Extensions struct{ Code string } `json:"extensions"`
	} `json:"errors"`
}

func (e *authEnv) gql(t *testing.T, body string, hdr ...string) (reply, authReply) {
	t.Helper()
	r := e.do(t, "POST", "/graphql", body, hdr...)
	return r, decode[authReply](t, r.body)
}

// codeAt returns the extensions.code of the error at a top-level field.
func codeAt(g authReply, field string) string {
	for _, er := range g.Errors {
		if len(er.Path) > 0 && er.Path[0] == field {
			return er.Extensions.Code
		}
	}
	return ""
}

const statsQuery = `{"query":"{ authorStats(authorId: 5) { authorId titleCount } }"}`

func TestBadTokenMatrix(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	k := e.keys
	now := e.clock.Now()
	with := func(c jwt.MapClaims, kv ...any) jwt.MapClaims {
		out := jwt.MapClaims{}
		for k, v := range c {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
				continue
			}
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	good := e.claims("5", "stats:read")
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, k.secret, c, nil) }
	valid := hs(good)
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(hs(with(good, "sub", "6")), ".")[1]
	flip := func(s string) string {
		b := []byte(s)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good, nil)
	jku := newKeyServer(t, k.attackerJWKSBody)
	evil := func(hdr map[string]any) string {
		return sign(t, jwt.SigningMethodRS256, k.attacker, good, hdr)
	}
	attackerJWK := rsaJWK("", &k.attacker.PublicKey)

	const (
		ok      = "ok"      // 200, the product served
		anon    = "anon"    // an anonymous caller: UNAUTHENTICATED field error (401 on /fetch)
		invalid = "invalid" // 401, UNAUTHENTICATED, invalid_token, on every route
		denied  = "denied"  // a valid token without scope or binding: FORBIDDEN (403 on /fetch)
	)
	cases := []struct {
		name string
		hdr  []string // the Authorization header (nil: none)
		want string
	}{
		{"no token", nil, anon},
		{"empty header", []string{"Authorization", ""}, anon},
		{"Bearer alone", []string{"Authorization", "Bearer"}, invalid},
		{"Bearer and spaces", []string{"Authorization", "Bearer    "}, invalid},
		{"Basic scheme", []string{"Authorization", "Basic dXNlcjpwYXNz"}, invalid},
		{"1 MB of dots", bearer(strings.Repeat(".", 1_000_000)), invalid},
		{"three segments of garbage", bearer("abc.def.ghi"), invalid},
		{"two segments", bearer(parts[0] + "." + parts[1]), invalid},
		{"alg none", bearer(noneTok), invalid},
		{"alg none, signature stripped", bearer(parts[0] + "." + parts[1] + "."), invalid},
		{"HS256 signed with the RS256 public key", bearer(sign(t, jwt.SigningMethodHS256, k.rsaPublicKeyPEM, good, nil)), invalid},
		{"RS512 (not an accepted algorithm)", bearer(sign(t, jwt.SigningMethodRS512, k.rsa, good, nil)), invalid},
		{"ES384 (not an accepted algorithm)", bearer(func() string {
			key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			require.NoError(t, err)
			return sign(t, jwt.SigningMethodES384, key, good, nil)
		}()), invalid},
		{"expired", bearer(hs(with(good, "exp", now.Add(-2*time.Minute).Unix()))), invalid},
		{"expired within the leeway", bearer(hs(with(good, "exp", now.Add(-10*time.Second).Unix()))), ok},
		{"no exp", bearer(hs(with(good, "exp", nil))), invalid},
		{"nbf in the future", bearer(hs(with(good, "nbf", now.Add(5*time.Minute).Unix()))), invalid},
		{"iat in the future beyond the leeway", bearer(hs(with(good, "iat", now.Add(5*time.Minute).Unix()))), invalid},
		{"iat in the future within the leeway", bearer(hs(with(good, "iat", now.Add(10*time.Second).Unix()))), ok},
		{"wrong iss", bearer(hs(with(good, "iss", "someone-else"))), invalid},
		{"no iss", bearer(hs(with(good, "iss", nil))), invalid},
		{"wrong aud", bearer(hs(with(good, "aud", "another-api"))), invalid},
		{"aud list without ours", bearer(hs(with(good, "aud", []string{"a", "b"}))), invalid},
		{"tampered payload", bearer(parts[0] + "." + otherPayload + "." + parts[2]), invalid},
		{"tampered signature", bearer(parts[0] + "." + parts[1] + "." + flip(parts[2])), invalid},
		{"RS256 by an unknown key", bearer(evil(nil)), invalid},
		{"unknown kid", bearer(evil(map[string]any{"kid": "nope"})), invalid},
		{"kid of a JWKS key, signed by another", bearer(evil(map[string]any{"kid": "a"})), invalid},
		{"jku pointing at a server the test runs", bearer(evil(map[string]any{"jku": jku.url, "kid": "evil"})), invalid},
		{"x5u pointing at a server the test runs", bearer(evil(map[string]any{"x5u": jku.url})), invalid},
		{"embedded jwk", bearer(evil(map[string]any{"jwk": attackerJWK})), invalid},
		{"crit header", bearer(sign(t, jwt.SigningMethodHS256, k.secret, good, map[string]any{"crit": []string{"exp"}})), invalid},
		{"ES256 by another key", bearer(sign(t, jwt.SigningMethodES256, k.ecAttacker, good, nil)), invalid},
		{"two Authorization headers", nil, invalid}, // set below
		{"HS256", bearer(valid), ok},
		{"RS256 (PEM key)", bearer(sign(t, jwt.SigningMethodRS256, k.rsa, good, nil)), ok},
		{"RS256 (JWKS kid a)", bearer(sign(t, jwt.SigningMethodRS256, k.jwksA, good, map[string]any{"kid": "a"})), ok},
		{"ES256", bearer(sign(t, jwt.SigningMethodES256, k.ec, good, nil)), ok},
		{"EdDSA", bearer(sign(t, jwt.SigningMethodEdDSA, k.ed, good, nil)), ok},
		{"scp array claim", bearer(hs(with(good, "scope", nil, "scp", []string{"x", "stats:read"}))), ok},
		{"no scope", bearer(hs(with(good, "scope", "titles:write"))), denied},
		{"another sub", bearer(hs(with(good, "sub", "6"))), denied},
		{"sub as a number", bearer(hs(with(good, "sub", 5))), ok},
		{"no sub", bearer(hs(with(good, "sub", nil))), denied},
	}
	require.GreaterOrEqual(t, len(cases), 25)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			do := func(method, path, body string) reply {
				req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				if tc.hdr != nil {
					req.Header.Set(tc.hdr[0], tc.hdr[1])
				}
				if tc.name == "two Authorization headers" {
					req.Header.Add("Authorization", "Bearer "+valid)
					req.Header.Add("Authorization", "Bearer "+valid)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return reply{resp.StatusCode, resp.Header, string(b)}
			}
			gr := do("POST", "/graphql", statsQuery)
			fr := do("GET", "/fetch?key=author_stats/5", "")
			ur := do("POST", "/update", `{"name":"add_title","input":{"authorId":5,"title":"x","year":2000}}`)
			if tc.hdr != nil && len(tc.hdr[1]) > 20 {
				tok := strings.TrimPrefix(tc.hdr[1], "Bearer ")
				for _, r := range []reply{gr, fr, ur} {
					assert.NotContains(t, r.body, tok, "a response echoes the token")
					assert.NotContains(t, r.body, tok[len(tok)-16:], "a response echoes part of the token")
				}
			}
			g := decode[authReply](t, gr.body)
			switch tc.want {
			case ok:
				require.Equal(t, 200, gr.status, gr.body)
				assert.Empty(t, g.Errors, gr.body)
				assert.JSONEq(t, `{"authorId":5,"titleCount":`+fmt.Sprint(len(e.ds.TitlesBy(5)))+`}`, string(g.Data["authorStats"]))
				assert.Equal(t, 200, fr.status, fr.body)
			case anon:
				assert.Equal(t, 200, gr.status, gr.body)
				assert.Equal(t, "UNAUTHENTICATED", codeAt(g, "authorStats"), gr.body)
				assert.Equal(t, 401, fr.status, fr.body)
				assert.Equal(t, `Bearer realm="kck"`, fr.header.Get("WWW-Authenticate"))
				assert.Equal(t, "UNAUTHENTICATED", decode[errorBody](t, fr.body).Error.Code)
				assert.Equal(t, 401, ur.status, ur.body)
			case invalid:
				for _, r := range []reply{gr, fr, ur} {
					assert.Equal(t, 401, r.status, r.body)
					assert.Equal(t, `Bearer realm="kck", error="invalid_token"`, r.header.Get("WWW-Authenticate"))
				}
				require.Len(t, g.Errors, 1, gr.body)
				assert.Equal(t, "UNAUTHENTICATED", g.Errors[0].Extensions.Code)
				assert.Equal(t, "UNAUTHENTICATED", decode[errorBody](t, fr.body).Error.Code)
			case denied:
				assert.Equal(t, 200, gr.status, gr.body)
				assert.Equal(t, "FORBIDDEN", codeAt(g, "authorStats"), gr.body)
				assert.Equal(t, 403, fr.status, fr.body)
				assert.Equal(t, `Bearer realm="kck", error="insufficient_scope"`, fr.header.Get("WWW-Authenticate"))
				assert.Equal(t, "FORBIDDEN", decode[errorBody](t, fr.body).Error.Code)
			}
		})
	}
	assert.Zero(t, jku.hits.Load(), "a jku or x5u header was followed")
}

func TestKidFloodRefreshesTheJWKSAtMostOncePerMinute(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	before := e.jwks.hits.Load()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := sign(t, jwt.SigningMethodRS256, e.keys.attacker, e.claims("5", "stats:read"), map[string]any{"kid": fmt.Sprintf("flood-%d", i)})
			r := e.do(t, "POST", "/graphql", statsQuery, bearer(tok)...)
			assert.Equal(t, 401, r.status)
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, e.jwks.hits.Load()-before, int64(1), "one refresh for the whole flood")
	// A minute later, an unknown kid may refresh once more.
	e.clock.Advance(61 * time.Second)
	tok := sign(t, jwt.SigningMethodRS256, e.keys.attacker, e.claims("5", "stats:read"), map[string]any{"kid": "later"})
	assert.Equal(t, 401, e.do(t, "POST", "/graphql", statsQuery, bearer(tok)...).status)
	assert.LessOrEqual(t, e.jwks.hits.Load()-before, int64(2))
}

func TestJWKSKeyRotation(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	k := e.keys
	tokA := sign(t, jwt.SigningMethodRS256, k.jwksA, e.claims("5", "stats:read"), map[string]any{"kid": "a"})
	tokB := sign(t, jwt.SigningMethodRS256, k.jwksB, e.claims("5", "stats:read"), map[string]any{"kid": "b"})
	r := e.do(t, "POST", "/graphql", statsQuery, bearer(tokA)...)
	require.Equal(t, 200, r.status, r.body)
	assert.Equal(t, 401, e.do(t, "POST", "/graphql", statsQuery, bearer(tokB)...).status, "b is not published yet")

	// The issuer publishes b beside a: b's unknown kid fetches the set again
	// (a minute after the last such refresh).
	e.jwks.serve(jwksBody(map[string]*rsa.PublicKey{"a": &k.jwksA.PublicKey, "b": &k.jwksB.PublicKey}))
	e.clock.Advance(61 * time.Second)
	r = e.do(t, "POST", "/graphql", statsQuery, bearer(tokB)...)
	assert.Equal(t, 200, r.status, r.body)
	assert.Equal(t, 200, e.do(t, "POST", "/graphql", statsQuery, bearer(tokA)...).status, "a still published")

	// Then it removes a: after the next refresh a's tokens are refused, even
	// those verified (and remembered) before.
	e.jwks.serve(jwksBody(map[string]*rsa.PublicKey{"b": &k.jwksB.PublicKey}))
	require.NoError(t, e.verifier.RefreshKeys(context.Background()))
	r = e.do(t, "POST", "/graphql", statsQuery, bearer(tokA)...)
	assert.Equal(t, 401, r.status, r.body)
	assert.Equal(t, `Bearer realm="kck", error="invalid_token"`, r.header.Get("WWW-Authenticate"))
	assert.Equal(t, 200, e.do(t, "POST", "/graphql", statsQuery, bearer(tokB)...).status)
}

func TestRememberedTokenExpiresOnTheInjectedClock(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	c := e.claims("5", "stats:read")
	c["exp"] = e.clock.Now().Add(time.Minute).Unix()
	tok := sign(t, jwt.SigningMethodHS256, e.keys.secret, c, nil)
	require.Equal(t, 200, e.do(t, "POST", "/graphql", statsQuery, bearer(tok)...).status)
	require.Equal(t, 200, e.do(t, "POST", "/graphql", statsQuery, bearer(tok)...).status, "remembered")
	e.clock.Advance(time.Minute + 31*time.Second) // past exp and the leeway
	r := e.do(t, "POST", "/graphql", statsQuery, bearer(tok)...)
	assert.Equal(t, 401, r.status, r.body)
	assert.Contains(t, r.body, "expired")
}

// myTitles decodes a myTitles response's titles (nil on an error).
func myTitles(t *testing.T, r reply) []demo.Title {
	t.Helper()
	g := decode[authReply](t, r.body)
	var ts []demo.Title
	if raw, ok := g.Data["myTitles"]; ok && string(raw) != "null" {
		require.NoError(t, json.Unmarshal(raw, &ts))
	}
	return ts
}

const myTitlesQuery = `{"query":"{ myTitles { id authorId title year } }"}`

func TestPerUserProductNeverCrossesUsers(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	t5, t6 := e.hs(t, "5", ""), e.hs(t, "6", "")
	want5, want6 := e.ds.TitlesBy(5), e.ds.TitlesBy(6)
	require.NotEqual(t, want5, want6)

	// The same request bytes from two users, several times: the first
	// computes, the next come from the in-process tier and then the
	// response cache, which must key them by user.
	for i := range 3 {
		assert.Equal(t, want5, myTitles(t, e.do(t, "POST", "/graphql", myTitlesQuery, bearer(t5)...)), "round %d", i)
		assert.Equal(t, want6, myTitles(t, e.do(t, "POST", "/graphql", myTitlesQuery, bearer(t6)...)), "round %d", i)
	}
	// GET requests (another response-cache identity) too.
	q := "/graphql?query=" + url.QueryEscape(`{ myTitles { id authorId title year } }`)
	for range 2 {
		assert.Equal(t, want5, myTitles(t, e.do(t, "GET", q, "", bearer(t5)...)))
		assert.Equal(t, want6, myTitles(t, e.do(t, "GET", q, "", bearer(t6)...)))
	}
	// A new token of the same user shares the user's values.
	e.clock.Advance(time.Second)
	assert.Equal(t, want5, myTitles(t, e.do(t, "POST", "/graphql", myTitlesQuery, bearer(e.hs(t, "5", ""))...)))
	// Stored keys carry the sub: my_titles/5, my_titles/6.
	for _, key := range []string{"my_titles/5", "my_titles/6"} {
		_, err := e.store.Get(context.Background(), key)
		assert.NoError(t, err, key)
	}
	// Anonymous callers get no one's.
	r := e.do(t, "POST", "/graphql", myTitlesQuery)
	assert.Equal(t, "UNAUTHENTICATED", codeAt(decode[authReply](t, r.body), "myTitles"), r.body)
	assert.Nil(t, myTitles(t, r))
}

func TestPerUserProductThroughTheStore(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	t5, t6 := e.hs(t, "5", ""), e.hs(t, "6", "")
	require.Equal(t, e.ds.TitlesBy(5), myTitles(t, e.do(t, "POST", "/graphql", myTitlesQuery, bearer(t5)...)))

	// A second gateway on the same store, with an empty in-process tier:
	// user 6 must not be served user 5's stored value, and user 5 gets it.
	c2, err := cache.New(cache.Options{Registry: e.cache.Registry(), Store: e.store, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	gw2, err := gateway.New(gateway.Options{Cache: c2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(), Auth: e.verifier})
	require.NoError(t, err)
	hs := httptest.NewServer(gw2)
	t.Cleanup(hs.Close)
	e2 := &env{url: hs.URL}
	assert.Equal(t, e.ds.TitlesBy(6), myTitles(t, e2.do(t, "POST", "/graphql", myTitlesQuery, bearer(t6)...)))
	r := e2.do(t, "POST", "/graphql", myTitlesQuery, bearer(t5)...)
	assert.Equal(t, e.ds.TitlesBy(5), myTitles(t, r))
	assert.Contains(t, r.body, `"key":"my_titles/5"`)
}

func TestPerUserInFlightComputationsStayApart(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	// slow_mine's primer returns only once two computations run at the
	// same time: were the users' keys one key, the second caller would
	// join the first's flight and the primer would wait out the timeout.
	q := `{"query":"{ product(key: \"slow_mine/%s\") { key value } }"}`
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, sub := range []string{"5", "6"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do(t, "POST", "/graphql", fmt.Sprintf(q, sub), bearer(e.hs(t, sub, ""))...)
			got[i] = r.body
		}()
	}
	wg.Wait()
	assert.Contains(t, got[0], `"value":"value of 5"`)
	assert.Contains(t, got[1], `"value":"value of 6"`)
	assert.Equal(t, int64(2), e.mineCalls.Load())
}

func TestPerUserConcurrentReadsNeverCross(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	tokens := map[string]string{"5": e.hs(t, "5", ""), "6": e.hs(t, "6", "")}
	want := map[string][]demo.Title{"5": e.ds.TitlesBy(5), "6": e.ds.TitlesBy(6)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 40 {
		sub := []string{"5", "6"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			assert.Equal(t, want[sub], myTitles(t, e.do(t, "POST", "/graphql", myTitlesQuery, bearer(tokens[sub])...)), "sub %s", sub)
		}()
	}
	close(start) // both users at the same instant, on a cold cache
	wg.Wait()
}

func TestBindingCannotBeBypassed(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	t5 := bearer(e.hs(t, "5", "stats:read"))
	for _, tc := range []struct{ name, body string }{
		{"alias", `{"query":"{ mine: authorStats(authorId: 5) { name } theirs: authorStats(authorId: 6) { name } }"}`},
		{"fragment", `{"query":"query { ...F } fragment F on Query { theirs: authorStats(authorId: 6) { name } }"}`},
		{"inline fragment", `{"query":"{ ... on Query { theirs: authorStats(authorId: 6) { name } } }"}`},
		{"variables", `{"query":"query($id: Int!) { theirs: authorStats(authorId: $id) { name } }","variables":{"id":6}}`},
		{"product(key)", `{"query":"{ theirs: product(key: \"author_stats/6\") { value } }"}`},
		{"product(key) spelled otherwise", `{"query":"{ theirs: product(key: \"author_stats/06\") { value } }"}`},
		{"product(key) of another's per-user product", `{"query":"{ theirs: product(key: \"my_titles/6\") { value } }"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, g := e.gql(t, tc.body, t5...)
			require.Equal(t, 200, r.status, r.body)
			assert.Equal(t, "FORBIDDEN", codeAt(g, "theirs"), r.body)
			assert.Equal(t, "null", string(g.Data["theirs"]), r.body)
			assert.NotContains(t, r.body, e.ds.Authors()[5].Name, "author 6's data leaked")
			if _, ok := g.Data["mine"]; ok {
				assert.Contains(t, string(g.Data["mine"]), e.ds.Authors()[4].Name, "the other fields are still served")
			}
		})
	}
	// /fetch: each key on its own.
	r := e.do(t, "GET", "/fetch?key=author_stats/5&key=author_stats/6&key=my_titles/6&key=my_titles/5&key=title_list/6", "", t5...)
	require.Equal(t, 200, r.status, r.body)
	items := decode[struct{ Products []product[json.RawMessage] }](t, r.body).Products
	require.Len(t, items, 5)
	codes := make([]string, len(items))
	for i, it := range items {
		if it.Error != nil {
			codes[i] = it.Error.Code
		}
	}
	assert.Equal(t, []string{"", "FORBIDDEN", "FORBIDDEN", "", ""}, codes, r.body)
	r = e.do(t, "GET", "/fetch/my_titles/6", "", t5...)
	assert.Equal(t, 403, r.status, r.body)
}

func TestUpdatersAndOperatorActions(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	n := len(e.ds.TitlesBy(5))
	add := func(author int, hdr ...string) reply {
		return e.do(t, "POST", "/update", fmt.Sprintf(`{"name":"add_title","input":{"authorId":%d,"title":"Mine","year":2026}}`, author), hdr...)
	}
	assert.Equal(t, 401, add(5).status)
	assert.Equal(t, 403, add(5, bearer(e.hs(t, "5", "stats:read"))...).status, "no titles:write")
	assert.Equal(t, 403, add(6, bearer(e.hs(t, "5", "titles:write"))...).status, "another author")
	r, g := e.gql(t, `{"query":"mutation { update(name: \"add_title\", input: {authorId: 6, title: \"x\", year: 2000}) { name } }"}`, bearer(e.hs(t, "5", "titles:write"))...)
	assert.Equal(t, "FORBIDDEN", codeAt(g, "update"), r.body)
	require.Len(t, e.ds.TitlesBy(5), n, "nothing written")
	require.Len(t, e.ds.TitlesBy(6), len(demo.NewDataset().TitlesBy(6)), "nothing written")

	// Allowed, but author_stats is not the caller's to read (no stats:read):
	// the write happens, the stats are refused in the answer.
	r = add(5, bearer(e.hs(t, "5", "titles:write"))...)
	require.Equal(t, 200, r.status, r.body)
	require.Len(t, e.ds.TitlesBy(5), n+1)
	out := decode[struct{ Products []product[json.RawMessage] }](t, r.body)
	var sawStats bool
	for _, p := range out.Products {
		if p.Key == "author_stats/5" {
			sawStats = true
			require.NotNil(t, p.Error, r.body)
			assert.Equal(t, "FORBIDDEN", p.Error.Code)
			assert.Empty(t, p.Value)
		}
	}
	assert.True(t, sawStats, r.body)

	// refresh, invalidate and /metrics need kck:admin.
	for _, hdr := range [][]string{nil, bearer(e.hs(t, "5", "stats:read titles:write"))} {
		r, g := e.gql(t, `{"query":"mutation { refresh(key: \"title_list/5\") { key } }"}`, hdr...)
		assert.Contains(t, []string{"UNAUTHENTICATED", "FORBIDDEN"}, codeAt(g, "refresh"), r.body)
		r, g = e.gql(t, `{"query":"mutation { invalidate(key: \"title_list/5\") }"}`, hdr...)
		assert.Contains(t, []string{"UNAUTHENTICATED", "FORBIDDEN"}, codeAt(g, "invalidate"), r.body)
		assert.Contains(t, []int{401, 403}, e.do(t, "GET", "/metrics", "", hdr...).status)
	}
	admin := bearer(e.hs(t, "1", "kck:admin"))
	r, g = e.gql(t, `{"query":"mutation { refresh(key: \"title_list/5\") { key } invalidate(key: \"author/5\") }"}`, admin...)
	assert.Empty(t, g.Errors, r.body)
	assert.Equal(t, 200, e.do(t, "GET", "/metrics", "", admin...).status)
	// Public products need no token; health needs none.
	assert.Equal(t, 200, e.do(t, "GET", "/fetch?key=title_list/5", "").status)
	assert.Equal(t, 200, e.do(t, "GET", "/healthz", "").status)
}

func TestAuthOffRefusesPerUserProducts(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // auth off
	assert.Equal(t, 1, e.logs.Count("auth is off: every client may read, update and invalidate everything"))
	r := e.do(t, "POST", "/graphql", myTitlesQuery)
	g := decode[authReply](t, r.body)
	assert.Equal(t, "UNAUTHENTICATED", codeAt(g, "myTitles"), r.body)
	assert.Equal(t, 401, e.do(t, "GET", "/fetch?key=my_titles/5", "").status)
	// Everything else is open, tokens or not.
	r = e.do(t, "POST", "/graphql", statsQuery, "Authorization", "Bearer garbage")
	assert.Empty(t, decode[authReply](t, r.body).Errors, r.body)
	assert.Equal(t, 200, e.do(t, "GET", "/metrics", "").status)
}

// A response that read only public products is the same for every caller,
// so it is kept once for all of them; one that read anything else is kept
// per caller, and another caller asking the same bytes gets its own answer
// (here: FORBIDDEN), never the first caller's.
func TestPublicResponsesAreSharedAcrossCallers(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t)
	t5, t6 := e.hs(t, "5", "stats:read"), e.hs(t, "6", "stats:read")
	rc := func(outcome string) float64 {
		return metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", outcome)
	}
	public := `{"query":"{ titleList(authorId: 3) { id title } }"}`
	first, g := e.gql(t, public, bearer(t5)...)
	require.Equal(t, 200, first.status, first.body)
	require.Empty(t, g.Errors)
	require.Equal(t, 1.0, rc("store"))
	for _, hdr := range [][]string{bearer(t6), nil} {
		r := e.do(t, "POST", "/graphql", public, hdr...)
		assert.Equal(t, first.body, r.body)
	}
	assert.Equal(t, 2.0, rc("hit"), "user 6 and an anonymous caller are served user 5's entry")
	assert.Equal(t, 1.0, rc("store"))

	// authorStats needs a token with stats:read bound to author 5.
	mixed := `{"query":"{ titleList(authorId: 5) { id } authorStats(authorId: 5) { authorId titleCount } }"}`
	r5, g5 := e.gql(t, mixed, bearer(t5)...)
	require.Empty(t, g5.Errors, r5.body)
	require.Equal(t, 2.0, rc("store"))
	again, _ := e.gql(t, mixed, bearer(t5)...)
	assert.Equal(t, r5.body, again.body)
	assert.Equal(t, 3.0, rc("hit"), "user 5's own entry")
	r6, g6 := e.gql(t, mixed, bearer(t6)...)
	assert.Equal(t, "FORBIDDEN", codeAt(g6, "authorStats"), r6.body)
	assert.JSONEq(t, string(g5.Data["titleList"]), string(g6.Data["titleList"]), "the public field is still served")
	anon, ga := e.gql(t, mixed)
	assert.Equal(t, "UNAUTHENTICATED", codeAt(ga, "authorStats"), anon.body)
	assert.Equal(t, 3.0, rc("hit"), "neither was served user 5's entry")
}
