package auth_test

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
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/primers"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestConfigIsChecked(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		cfg  auth.Config
		want string
	}{
		{auth.Config{}, "no key"},
		{auth.Config{HMACSecret: []byte("short")}, "at least 32"},
		{auth.Config{HMACSecret: secret, Leeway: 61 * time.Second}, "leeway"},
		{auth.Config{HMACSecret: secret, Leeway: -time.Second}, "leeway"},
		{auth.Config{PublicKeys: []crypto.PublicKey{&small.PublicKey}}, "2048"},
		{auth.Config{PublicKeys: []crypto.PublicKey{&p384.PublicKey}}, "P-256"},
		{auth.Config{PublicKeys: []crypto.PublicKey{secret}}, "unsupported key type"},
	} {
		_, err := auth.NewVerifier(context.Background(), tc.cfg)
		assert.ErrorContains(t, err, tc.want)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, Leeway: time.Minute})
	require.NoError(t, err)
	v.Close()
}

func TestParsePublicKeysPEM(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	keys, err := auth.ParsePublicKeysPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	require.NoError(t, err)
	require.Len(t, keys, 1)
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	_, err = auth.ParsePublicKeysPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	assert.ErrorContains(t, err, "public key only")
	_, err = auth.ParsePublicKeysPEM([]byte("not pem"))
	assert.Error(t, err)
}

func TestJWKSKeysAreCheckedAgainstTheirType(t *testing.T) {
	t.Parallel()
	ed, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	edX := base64.RawURLEncoding.EncodeToString(ed)
	// oct (a secret from a URL), an EdDSA alg on an OKP key written as
	// RS256, a P-384 key and an encryption key are all skipped; the good
	// Ed25519 key is used.
	body := `{"keys":[
		{"kty":"oct","kid":"s","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `"},
		{"kty":"OKP","kid":"wrongalg","crv":"Ed25519","alg":"RS256","x":"` + edX + `"},
		{"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},
		{"kty":"OKP","kid":"enc","use":"enc","crv":"Ed25519","x":"` + edX + `"},
		{"kty":"OKP","kid":"good","crv":"Ed25519","x":"` + edX + `"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
	defer srv.Close()
	v, err := auth.NewVerifier(context.Background(), auth.Config{JWKSURL: srv.URL})
	require.NoError(t, err)
	defer v.Close()
	claims := jwt.MapClaims{"sub": "1", "exp": time.Now().Add(time.Hour).Unix()}
	for kid, ok := range map[string]bool{"good": true, "wrongalg": false, "enc": false, "s": false} {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(edPriv)
		require.NoError(t, err)
		_, err = v.Verify(context.Background(), s)
		assert.Equal(t, ok, err == nil, "kid %s: %v", kid, err)
	}
	// An HS256 token signed with the set's oct key: no HS256 key is configured.
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), tok)
	assert.ErrorIs(t, err, auth.ErrInvalidToken)
}

func TestPrincipalScopesAndClaims(t *testing.T) {
	t.Parallel()
	p := auth.NewPrincipal(map[string]any{"sub": "5", "scope": " b  a\tc ", "scp": []any{"d", 1, "a"}, "n": 7.0, "ok": true, "arr": []any{"x"}},
		[]string{"scope", "scp"})
	assert.Equal(t, []string{"a", "b", "c", "d"}, p.Scopes())
	assert.True(t, p.HasScope("d"))
	assert.False(t, p.HasScope("e"))
	for claim, want := range map[string]string{"sub": "5", "n": "7", "ok": "true"} {
		got, ok := p.Claim(claim)
		assert.True(t, ok, claim)
		assert.Equal(t, want, got, claim)
	}
	_, ok := p.Claim("arr")
	assert.False(t, ok)
	// Times and the token id do not change the identity; other claims do.
	a := auth.NewPrincipal(map[string]any{"sub": "5", "exp": 1.0, "jti": "x"}, nil)
	b := auth.NewPrincipal(map[string]any{"sub": "5", "exp": 2.0, "jti": "y"}, nil)
	c := auth.NewPrincipal(map[string]any{"sub": "6", "exp": 2.0}, nil)
	assert.Equal(t, a.Identity(), b.Identity())
	assert.NotEqual(t, a.Identity(), c.Identity())
}

func TestGuard(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	id := []primers.Param{{Name: "id", Kind: primers.Int}}
	value := primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return 1, nil })
	reg.MustRegister(
		primers.Product{Name: "pub", Params: id, Primer: value, Auth: primers.Auth{Public: true}},
		primers.Product{Name: "any", Params: id, Primer: value},
		primers.Product{Name: "scoped", Params: id, Primer: value, Auth: primers.Auth{Scopes: []string{"r", "s"}}},
		primers.Product{Name: "bound", Params: id, Primer: value, Auth: primers.Auth{Bind: map[string]string{"id": "sub"}}},
		primers.Product{Name: "mine", Primer: value, Auth: primers.Auth{KeyBy: []string{"sub", "org"}}},
	)
	require.NoError(t, reg.RegisterUpdaterAuth("up", primers.UpdaterFunc(func(context.Context, json.RawMessage) (primers.UpdateResult, error) {
		return primers.UpdateResult{}, nil
	}), primers.Auth{Scopes: []string{"w"}, Bind: map[string]string{"id": "sub"}}))
	on, off := auth.NewGuard(reg, true), auth.NewGuard(reg, false)
	anon := context.Background()
	user := auth.WithPrincipal(anon, auth.NewPrincipal(map[string]any{"sub": "5", "org": "acme", "scope": "r w"}, []string{"scope"}))
	full := auth.WithPrincipal(anon, auth.NewPrincipal(map[string]any{"sub": "5", "scope": "r s kck:admin"}, []string{"scope"}))
	for _, tc := range []struct {
		g    *auth.Guard
		ctx  context.Context
		key  string
		want error
	}{
		{on, anon, "pub/1", nil},
		{on, anon, "any/1", auth.ErrUnauthenticated},
		{on, user, "any/1", nil},
		{on, user, "scoped/1", auth.ErrForbidden},
		{on, full, "scoped/1", nil},
		{on, user, "bound/5", nil},
		{on, user, "bound/05", nil}, // the same key, canonical
		{on, user, "bound/6", auth.ErrForbidden},
		{on, full, "bound/6", auth.ErrForbidden}, // kck:admin does not bypass a binding
		{on, user, "mine/5/acme", nil},
		{on, user, "mine/5/other", auth.ErrForbidden},
		{on, full, "mine/5/acme", auth.ErrForbidden}, // no org claim
		{on, anon, "mine/5/acme", auth.ErrUnauthenticated},
		{on, anon, "unregistered/1", auth.ErrUnauthenticated},
		{on, user, "unregistered/1", auth.ErrForbidden},
		{on, full, "unregistered/1", nil},
		{off, anon, "any/1", nil},
		{off, anon, "bound/6", nil},
		{off, anon, "mine/5/acme", auth.ErrUnauthenticated},
	} {
		_, err := tc.g.ReadKey(tc.ctx, tc.key)
		if tc.want == nil {
			assert.NoError(t, err, "%s on=%v", tc.key, tc.g.On())
		} else {
			assert.ErrorIs(t, err, tc.want, "%s on=%v", tc.key, tc.g.On())
		}
	}
	key, err := on.FieldKey(user, "mine")
	require.NoError(t, err)
	assert.Equal(t, "mine/5/acme", key.String())
	assert.True(t, key.Checked(), "built by the registry")
	_, err = on.FieldKey(full, "mine")
	assert.ErrorIs(t, err, auth.ErrForbidden)
	_, err = off.FieldKey(anon, "mine")
	assert.ErrorIs(t, err, auth.ErrUnauthenticated)
	_, err = on.FieldKey(user, "bound", 6)
	assert.ErrorIs(t, err, auth.ErrForbidden)

	assert.NoError(t, on.Update(user, "up", []byte(`{"id": 5}`)))
	assert.NoError(t, on.Update(user, "up", []byte(`{"id": "5"}`)))
	assert.ErrorIs(t, on.Update(user, "up", []byte(`{"id": 6}`)), auth.ErrForbidden)
	assert.ErrorIs(t, on.Update(user, "up", []byte(`{"other": 5}`)), auth.ErrForbidden)
	assert.ErrorIs(t, on.Update(full, "up", []byte(`{"id": 5}`)), auth.ErrForbidden)
	assert.ErrorIs(t, on.Update(anon, "up", []byte(`{"id": 5}`)), auth.ErrUnauthenticated)
	assert.ErrorIs(t, on.Update(user, "up", []byte(`[5]`)), primers.ErrBadInput)
	assert.NoError(t, off.Update(anon, "up", []byte(`{"id": 6}`)))
	assert.ErrorIs(t, on.Admin(user), auth.ErrForbidden)
	assert.NoError(t, on.Admin(full))
	assert.NoError(t, off.Admin(anon))
	assert.Equal(t, []string{"any"}, on.Undeclared())
}

func TestMintHS256(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tok, err := auth.MintHS256(secret, "5", "stats:read titles:write", "iss", []string{"aud"}, now, time.Hour)
	require.NoError(t, err)
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, Issuer: "iss", Audience: []string{"aud"}})
	require.NoError(t, err)
	p, err := v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "5", p.Subject)
	assert.Equal(t, []string{"stats:read", "titles:write"}, p.Scopes())
	assert.Equal(t, now.Add(time.Hour).Unix(), p.Expires.Unix())
	_, err = auth.MintHS256([]byte("short"), "5", "", "", nil, now, time.Hour)
	assert.Error(t, err)
}

// On the real clock a remembered token is not re-checked against exp by
// Verify: the cache drops it at exp plus the leeway. Every acceptance must
// come before that instant (t0 is taken before the call, so a busy machine
// can only make it earlier), and the token must stop being accepted.
func TestRememberedTokenExpiresOnTheRealClock(t *testing.T) {
	t.Parallel()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, Leeway: time.Second})
	require.NoError(t, err)
	// JWT times are whole seconds: exp is 2 to 3 s away.
	exp := time.Unix(time.Now().Add(3*time.Second).Unix(), 0)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "5", "exp": exp.Unix()}).SignedString(secret)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), tok)
	require.NoError(t, err, "verified, and remembered: more than a second is left")
	deadline := exp.Add(time.Second) // exp plus the leeway
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		t0 := time.Now()
		_, err := v.Verify(context.Background(), tok)
		if err != nil {
			require.ErrorIs(t, err, auth.ErrInvalidToken)
			return
		}
		require.True(t, t0.Before(deadline.Add(10*time.Millisecond)), "accepted %v after exp plus leeway", t0.Sub(deadline))
		require.Less(t, time.Since(start), time.Minute, "never refused")
	}
}

// Many callers' remembered tokens share the small table in front of the
// cache and replace each other there: each must still get its own
// principal, from several goroutines at once.
func TestRememberedTokensNeverCross(t *testing.T) {
	t.Parallel()
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, CacheBytes: 1 << 20})
	require.NoError(t, err)
	defer v.Close()
	toks := make([]string, 3000)
	for i := range toks {
		toks[i], err = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": strconv.Itoa(i), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for k := range toks {
					i := (k*7 + g*911 + round*13) % len(toks)
					p, err := v.Verify(context.Background(), toks[i])
					if !assert.NoError(t, err) || !assert.Equal(t, strconv.Itoa(i), p.Subject) {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzVerify feeds arbitrary Authorization headers to a verifier holding an
// HS256 secret and an Ed25519 key: it must never panic, and whatever it
// accepts must carry the claims of a token the test signed (base64 allows a
// few spellings of the same bytes).
func FuzzVerify(f *testing.F) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{HMACSecret: secret, PublicKeys: []crypto.PublicKey{ed.Public()}, CacheBytes: -1})
	if err != nil {
		f.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "5", "scope": "a b", "exp": time.Now().Add(time.Hour).Unix()}
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	eds, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(ed)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, s := range []string{"Bearer " + hs, "Bearer " + eds, "Bearer " + none, "Bearer", "", "Basic x", "Bearer a.b.c", "bearer " + hs + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", header)
		p, err := v.Authenticate(req)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if p == nil {
			return // no token
		}
		if p.Subject != "5" || !p.HasScope("a") || !p.HasScope("b") {
			t.Fatalf("accepted a token the test did not sign: %q", header)
		}
	})
}

// The JWKS is fetched again on its interval; a key it no longer holds stops
// verifying, though tokens it signed were remembered.
func TestJWKSIntervalRefresh(t *testing.T) {
	t.Parallel()
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	x := base64.RawURLEncoding.EncodeToString(edPriv.Public().(ed25519.PublicKey))
	var body atomic.Pointer[string]
	set := `{"keys":[{"kty":"OKP","kid":"k","crv":"Ed25519","x":"` + x + `"}]}`
	body.Store(&set)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(*body.Load())) }))
	defer srv.Close()
	v, err := auth.NewVerifier(context.Background(), auth.Config{JWKSURL: srv.URL, JWKSRefresh: 20 * time.Millisecond})
	require.NoError(t, err)
	defer v.Close()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "1", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k"
	s, err := tok.SignedString(edPriv)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), s)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return v.JWKSFetches() >= 3 }, 2*time.Minute, 5*time.Millisecond, "refreshed on its interval")

	empty := `{"keys":[]}`
	body.Store(&empty)
	require.Eventually(t, func() bool {
		_, err := v.Verify(context.Background(), s)
		return errors.Is(err, auth.ErrInvalidToken)
	}, 2*time.Minute, 5*time.Millisecond, "a removed key is refused after a refresh")
}
