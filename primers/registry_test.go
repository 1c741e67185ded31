package primers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

func intParam(name string) primers.Param     { return primers.Param{Name: name, Kind: primers.Int} }
func kindParam(k primers.Kind) primers.Param { return primers.Param{Name: "p", Kind: k} }

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	fInt := primers.Func1(func(context.Context, int64) (int, error) { return 0, nil })
	fStr := primers.Func1(func(context.Context, string) (int, error) { return 0, nil })
	fTime := primers.Func1(func(context.Context, time.Time) (int, error) { return 0, nil })
	fIntStr := primers.Func2(func(context.Context, int64, string) (int, error) { return 0, nil })

	tests := []struct {
		name     string
		existing []primers.Product // registered first, must succeed
		product  primers.Product
		wantErr  string // "" means Register succeeds
	}{
		{name: "minimal", product: primers.Product{Name: "a"}},
		{name: "underscore name", product: primers.Product{Name: "_a_1"}},
		{name: "every kind", product: primers.Product{Name: "a", Params: testProducts[7].Params}},
		{name: "typed nil primer", product: primers.Product{Name: "a", Primer: primers.PrimerFunc(nil)},
			wantErr: `register product "a": primer is a nil primers.PrimerFunc`},
		{name: "empty name", product: primers.Product{Name: ""},
			wantErr: `register product "": name must match [A-Za-z_][A-Za-z0-9_]*`},
		{name: "name starts with digit", product: primers.Product{Name: "1a"},
			wantErr: `register product "1a": name must match`},
		{name: "name with slash", product: primers.Product{Name: "a/b"},
			wantErr: `register product "a/b": name must match`},
		{name: "name with dash", product: primers.Product{Name: "a-b"},
			wantErr: `register product "a-b": name must match`},
		{name: "name non-ascii", product: primers.Product{Name: "héllo"},
			wantErr: `register product "héllo": name must match`},
		{name: "name too long", product: primers.Product{Name: strings.Repeat("x", 201)},
			wantErr: "name must match"},
		{name: "duplicate name", existing: []primers.Product{{Name: "a"}}, product: primers.Product{Name: "a"},
			wantErr: `register product "a": already registered`},
		{name: "duplicate name, other params", existing: []primers.Product{{Name: "a"}},
			product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")}},
			wantErr: `register product "a": already registered`},
		{name: "empty param name", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "", Kind: primers.Int}}},
			wantErr: `register product "a": parameter 1: bad name ""`},
		{name: "bad param name", product: primers.Product{Name: "a", Params: []primers.Param{intParam("ok"), {Name: "x-y", Kind: primers.Int}}},
			wantErr: `register product "a": parameter 2: bad name "x-y"`},
		{name: "param name with slash", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "x/y", Kind: primers.String}}},
			wantErr: `parameter 1: bad name "x/y"`},
		{name: "duplicate param", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id"), {Name: "id", Kind: primers.String}}},
			wantErr: `register product "a": parameter "id" declared twice`},
		{name: "kind zero", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "x"}}},
			wantErr: `register product "a": parameter "x": unknown kind 0`},
		{name: "kind past timestamp", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "x", Kind: primers.Timestamp + 1}}},
			wantErr: `parameter "x": unknown kind 7`},
		// 255 is the internal "date or timestamp" marker of typed primers; it
		// is not a kind a product may declare.
		{name: "kind 255", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "x", Kind: 255}}},
			wantErr: `parameter "x": unknown kind 255`},
		{name: "negative TTL", product: primers.Product{Name: "a", TTL: -time.Second},
			wantErr: `register product "a": negative TTL`},
		{name: "negative SoftTTL", product: primers.Product{Name: "a", TTL: time.Minute, SoftTTL: -time.Second},
			wantErr: `register product "a": negative TTL`},
		{name: "negative FreshnessTarget", product: primers.Product{Name: "a", FreshnessTarget: -time.Second},
			wantErr: `FreshnessTarget`},
		{name: "SoftTTL equals TTL", product: primers.Product{Name: "a", TTL: time.Minute, SoftTTL: time.Minute},
			wantErr: `register product "a": SoftTTL (1m0s) must be shorter than TTL (1m0s)`},
		{name: "SoftTTL beyond TTL", product: primers.Product{Name: "a", TTL: time.Minute, SoftTTL: time.Hour},
			wantErr: `SoftTTL (1h0m0s) must be shorter than TTL (1m0s)`},
		{name: "SoftTTL below TTL", product: primers.Product{Name: "a", TTL: time.Hour, SoftTTL: time.Minute}},
		{name: "SoftTTL without TTL", product: primers.Product{Name: "a", SoftTTL: time.Minute}},
		{name: "TTL without SoftTTL", product: primers.Product{Name: "a", TTL: time.Minute}},

		// warming, refresh, domain and sources
		{name: "warm, refresh, domain, sources", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")},
			Warm: []string{"a/1", "a/02"}, Refresh: primers.Every(time.Minute),
			Domain:  primers.Domain{Key: "ids", Schedule: primers.Cron("@hourly")},
			Sources: []primers.Source{{Table: "titles", Columns: []string{"author_id"}}, {Table: "sales", All: true}}}},
		{name: "warm key of another product", existing: []primers.Product{{Name: "b", Params: []primers.Param{intParam("id")}}},
			product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")}, Warm: []string{"b/1"}},
			wantErr: `register product "a": warm key "b/1": not a key of a`},
		{name: "warm key with a bad parameter", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")}, Warm: []string{"a/1", "a/x"}},
			wantErr: `register product "a": warm key "a/x": `},
		{name: "bad refresh", product: primers.Product{Name: "a", Refresh: primers.Cron("61 * * * *")},
			wantErr: `register product "a": refresh: schedule "61 * * * *"`},
		{name: "refresh too often", product: primers.Product{Name: "a", Refresh: primers.Every(time.Microsecond)},
			wantErr: `register product "a": refresh: schedule: interval 1µs must be at least 1ms`},
		{name: "domain without a schedule", product: primers.Product{Name: "a", Domain: primers.Domain{Key: "ids"}},
			wantErr: `register product "a": domain ids: schedule: empty`},
		{name: "domain without a key", product: primers.Product{Name: "a", Domain: primers.Domain{Schedule: primers.Every(time.Minute)}},
			wantErr: `register product "a": domain: `},
		{name: "source with a bad table", product: primers.Product{Name: "a", Sources: []primers.Source{{Table: "x-y", All: true}}},
			wantErr: `register product "a": source 1: table "x-y" must match`},
		{name: "source without a column per key parameter", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")},
			Auth: primers.Auth{KeyBy: []string{"sub"}}, Sources: []primers.Source{{Table: "t", Columns: []string{"id"}}}},
			wantErr: `register product "a": source t: 1 columns for 2 key parameters (id int, sub string) (or All)`},
		{name: "source with a bad column", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")}, Sources: []primers.Source{{Table: "t", Columns: []string{"a b"}}}},
			wantErr: `register product "a": source t: column "a b" must match`},

		// typed primers
		{name: "Func1 matches", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")}, Primer: fInt}},
		{name: "Func1 time matches date", product: primers.Product{Name: "a", Params: []primers.Param{kindParam(primers.Date)}, Primer: fTime}},
		{name: "Func1 time matches timestamp", product: primers.Product{Name: "a", Params: []primers.Param{kindParam(primers.Timestamp)}, Primer: fTime}},
		{name: "Func1 without params", product: primers.Product{Name: "a", Primer: fInt},
			wantErr: `register product "a": primer takes 1 parameters, declaration has 0`},
		{name: "Func1 with two params", product: primers.Product{Name: "a", Params: []primers.Param{intParam("x"), intParam("y")}, Primer: fInt},
			wantErr: `register product "a": primer takes 1 parameters, declaration has 2`},
		{name: "Func1 string for int", product: primers.Product{Name: "a", Params: []primers.Param{intParam("id")}, Primer: fStr},
			wantErr: `register product "a": parameter "id" is declared int but the primer takes string`},
		{name: "Func1 int for float", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "x", Kind: primers.Float}}, Primer: fInt},
			wantErr: `parameter "x" is declared float but the primer takes int`},
		{name: "Func1 time for string", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "x", Kind: primers.String}}, Primer: fTime},
			wantErr: `parameter "x" is declared string but the primer takes date or timestamp`},
		{name: "Func1 int for date", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "d", Kind: primers.Date}}, Primer: fInt},
			wantErr: `parameter "d" is declared date but the primer takes int`},
		{name: "Func2 matches", product: primers.Product{Name: "a", Params: []primers.Param{intParam("x"), {Name: "y", Kind: primers.String}}, Primer: fIntStr}},
		{name: "Func2 with one param", product: primers.Product{Name: "a", Params: []primers.Param{intParam("x")}, Primer: fIntStr},
			wantErr: `primer takes 2 parameters, declaration has 1`},
		{name: "Func2 swapped", product: primers.Product{Name: "a", Params: []primers.Param{{Name: "y", Kind: primers.String}, intParam("x")}, Primer: fIntStr},
			wantErr: `parameter "y" is declared string but the primer takes int`},
		{name: "Func2 second wrong", product: primers.Product{Name: "a", Params: []primers.Param{intParam("x"), {Name: "y", Kind: primers.Bool}}, Primer: fIntStr},
			wantErr: `parameter "y" is declared bool but the primer takes string`},
		{name: "untyped primer takes anything", product: primers.Product{Name: "a", Params: []primers.Param{intParam("x"), intParam("y"), intParam("z")},
			Primer: primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return nil, nil })}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := primers.NewRegistry()
			for _, p := range tt.existing {
				require.NoError(t, reg.Register(p))
			}
			before := reg.Product(tt.product.Name)

			err := reg.Register(tt.product)
			if tt.wantErr == "" {
				require.NoError(t, err)
				got := reg.Product(tt.product.Name)
				require.NotNil(t, got)
				assert.Equal(t, tt.product.Params, got.Params)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Same(t, before, reg.Product(tt.product.Name), "a failed Register must leave the registry as it was")
			assert.Len(t, reg.Products(), len(tt.existing))
		})
	}
}

func TestRegisterCopiesParams(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	params := []primers.Param{intParam("id")}
	require.NoError(t, reg.Register(primers.Product{Name: "a", Params: params}))
	params[0] = primers.Param{Name: "changed", Kind: primers.String}

	assert.Equal(t, []primers.Param{intParam("id")}, reg.Product("a").Params)
	k, err := reg.ParseKey("a/7")
	require.NoError(t, err)
	assert.Equal(t, int64(7), k.Int(0))
}

// Register copies the declaration's slices, which the caller may change
// later, as it copies the parameters.
func TestRegisterCopiesTheDeclaration(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	p := primers.Product{Name: "a", Params: []primers.Param{intParam("id")}, Warm: []string{"a/1"},
		Sources: []primers.Source{{Table: "t", Columns: []string{"id"}}}, AfterPrimes: []string{"b/:id"}, AfterUpdates: []string{"u"}}
	require.NoError(t, reg.Register(p))
	p.Warm[0], p.Sources[0].Columns[0], p.Sources[0].Table, p.AfterPrimes[0], p.AfterUpdates[0] = "a/2", "x", "y", "c/:id", "v"
	got := reg.Product("a")
	assert.Equal(t, []string{"a/1"}, got.Warm)
	assert.Equal(t, []primers.Source{{Table: "t", Columns: []string{"id"}}}, got.Sources)
	assert.Equal(t, []string{"b/:id"}, got.AfterPrimes)
	assert.Equal(t, []string{"u"}, got.AfterUpdates)
}

func TestMustRegister(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	assert.NotPanics(t, func() {
		reg.MustRegister(primers.Product{Name: "a"}, primers.Product{Name: "b"})
	})
	assert.PanicsWithError(t, `register product "a": already registered`, func() {
		reg.MustRegister(primers.Product{Name: "c"}, primers.Product{Name: "a"})
	})
	assert.NotNil(t, reg.Product("c"), "products before the failing one stay registered")
}

func TestProducts(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	assert.Empty(t, reg.Products())
	assert.Nil(t, reg.Product("a"))
	for _, n := range []string{"zeta", "alpha", "Mid", "beta"} {
		require.NoError(t, reg.Register(primers.Product{Name: n, TTL: time.Hour}))
	}
	var names []string
	for _, p := range reg.Products() {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"Mid", "alpha", "beta", "zeta"}, names)
	assert.Equal(t, time.Hour, reg.Product("alpha").TTL)
	assert.Nil(t, reg.Product("ALPHA"))
}

type boolFloat struct {
	B bool
	X float64
}

// TestTypedPrimers checks that Func1 and Func2 get their arguments with the
// right Go types when called through the Primer interface.
func TestTypedPrimers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	errBoom := errors.New("boom")

	tests := []struct {
		name   string
		params []primers.Param
		primer primers.Primer
		key    string
		want   any
	}{
		{
			"int64", []primers.Param{intParam("id")},
			primers.Func1(func(_ context.Context, n int64) (int64, error) { return n * 2, nil }),
			"p/21", int64(42),
		},
		{
			"float64", []primers.Param{{Name: "x", Kind: primers.Float}},
			primers.Func1(func(_ context.Context, x float64) (float64, error) { return x / 2, nil }),
			"p/1.5", 0.75,
		},
		{
			"string", []primers.Param{{Name: "s", Kind: primers.String}},
			primers.Func1(func(_ context.Context, s string) (string, error) { return "<" + s + ">", nil }),
			"p/a%2Fb", "<a/b>",
		},
		{
			"bool", []primers.Param{{Name: "b", Kind: primers.Bool}},
			primers.Func1(func(_ context.Context, b bool) (bool, error) { return !b, nil }),
			"p/false", true,
		},
		{
			"date", []primers.Param{{Name: "d", Kind: primers.Date}},
			primers.Func1(func(_ context.Context, d time.Time) (string, error) { return d.Weekday().String(), nil }),
			"p/2024-02-29", "Thursday",
		},
		{
			"timestamp", []primers.Param{{Name: "at", Kind: primers.Timestamp}},
			primers.Func1(func(_ context.Context, at time.Time) (string, error) {
				return at.Location().String() + " " + at.Format(time.Kitchen), nil
			}),
			"p/2024-02-29T10:30:00-02:00", "UTC 12:30PM",
		},
		{
			"int64 and string", []primers.Param{intParam("n"), {Name: "s", Kind: primers.String}},
			primers.Func2(func(_ context.Context, n int64, s string) (string, error) { return strings.Repeat(s, int(n)), nil }),
			"p/3/ab", "ababab",
		},
		{
			"date and timestamp", []primers.Param{{Name: "d", Kind: primers.Date}, {Name: "at", Kind: primers.Timestamp}},
			primers.Func2(func(_ context.Context, d, at time.Time) (time.Duration, error) { return at.Sub(d), nil }),
			"p/2024-01-01/2024-01-01T01:00:00%2B01:00", time.Duration(0),
		},
		{
			"bool and float64 returning a struct", []primers.Param{{Name: "b", Kind: primers.Bool}, {Name: "x", Kind: primers.Float}},
			primers.Func2(func(_ context.Context, b bool, x float64) (boolFloat, error) { return boolFloat{b, x}, nil }),
			"p/true/-1", boolFloat{true, -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := primers.NewRegistry()
			require.NoError(t, reg.Register(primers.Product{Name: "p", Params: tt.params, Primer: tt.primer}))
			k, err := reg.ParseKey(tt.key)
			require.NoError(t, err)
			got, err := reg.Product("p").Primer.Prime(ctx, k)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("error and context pass through", func(t *testing.T) {
		t.Parallel()
		type ctxKey struct{}
		ctx := context.WithValue(ctx, ctxKey{}, "v")
		reg := primers.NewRegistry()
		require.NoError(t, reg.Register(primers.Product{
			Name:   "p",
			Params: []primers.Param{intParam("id")},
			Primer: primers.Func1(func(ctx context.Context, n int64) (any, error) {
				return ctx.Value(ctxKey{}), fmt.Errorf("prime %d: %w", n, errBoom)
			}),
		}))
		k, err := reg.Key("p", 5)
		require.NoError(t, err)
		got, err := reg.Product("p").Primer.Prime(ctx, k)
		assert.ErrorIs(t, err, errBoom)
		assert.EqualError(t, err, "prime 5: boom")
		assert.Equal(t, "v", got)
	})
}

func TestPrimerFunc(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	k, err := reg.ParseKey("t/9")
	require.NoError(t, err)
	var got primers.Key
	p := primers.PrimerFunc(func(_ context.Context, k primers.Key) (any, error) {
		got = k
		return k.Int(0) + 1, nil
	})
	v, err := p.Prime(context.Background(), k)
	require.NoError(t, err)
	assert.Equal(t, int64(10), v)
	assert.Equal(t, "t/9", got.String())
}

func TestUpdaters(t *testing.T) {
	t.Parallel()
	ok := primers.UpdaterFunc(func(context.Context, json.RawMessage) (primers.UpdateResult, error) {
		return primers.UpdateResult{}, nil
	})

	tests := []struct {
		name     string
		existing []string
		updName  string
		upd      primers.Updater
		wantErr  string
	}{
		{name: "ok", updName: "add_title", upd: ok},
		{name: "empty name", updName: "", upd: ok, wantErr: `register updater "": name must match`},
		{name: "bad name", updName: "add-title", upd: ok, wantErr: `register updater "add-title": name must match`},
		{name: "name with slash", updName: "a/b", upd: ok, wantErr: `register updater "a/b": name must match`},
		{name: "duplicate", existing: []string{"x"}, updName: "x", upd: ok, wantErr: `register updater "x": already registered`},
		{name: "nil", updName: "x", upd: nil, wantErr: `register updater "x": nil updater`},
		{name: "typed nil", updName: "x", upd: primers.UpdaterFunc(nil), wantErr: `register updater "x": nil updater`},
		{name: "products and updaters are apart", updName: "t", upd: ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newTestRegistry(t)
			for _, n := range tt.existing {
				require.NoError(t, reg.RegisterUpdater(n, ok))
			}
			err := reg.RegisterUpdater(tt.updName, tt.upd)
			if tt.wantErr == "" {
				require.NoError(t, err)
				u, err := reg.Updater(tt.updName)
				require.NoError(t, err)
				assert.NotNil(t, u)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			if len(tt.existing) == 0 {
				_, err := reg.Updater(tt.updName)
				assert.ErrorIs(t, err, primers.ErrUnknownUpdater, "a failed registration adds nothing")
			}
		})
	}
}

func TestUpdaterLookup(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	var gotInput json.RawMessage
	require.NoError(t, reg.RegisterUpdater("add_title", primers.UpdaterFunc(
		func(_ context.Context, in json.RawMessage) (primers.UpdateResult, error) {
			gotInput = in
			var v struct{ Year int }
			if err := json.Unmarshal(in, &v); err != nil {
				return primers.UpdateResult{}, fmt.Errorf("%w: %v", primers.ErrBadInput, err)
			}
			if v.Year <= 0 {
				return primers.UpdateResult{}, fmt.Errorf("%w: year must be positive", primers.ErrBadInput)
			}
			return primers.UpdateResult{
				Affected: []string{fmt.Sprintf("title_list/%d", v.Year)},
				Changes:  map[string]any{fmt.Sprintf("title_list/%d", v.Year): "new"},
				Result:   17,
			}, nil
		})))

	u, err := reg.Updater("add_title")
	require.NoError(t, err)
	res, err := u.Update(context.Background(), json.RawMessage(`{"Year":1999}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"Year":1999}`, string(gotInput))
	assert.Equal(t, primers.UpdateResult{
		Affected: []string{"title_list/1999"},
		Changes:  map[string]any{"title_list/1999": "new"},
		Result:   17,
	}, res)

	_, err = u.Update(context.Background(), json.RawMessage(`{"Year":-1}`))
	assert.ErrorIs(t, err, primers.ErrBadInput)
	_, err = u.Update(context.Background(), json.RawMessage(`nope`))
	assert.ErrorIs(t, err, primers.ErrBadInput)

	for _, name := range []string{"nope", "", "ADD_TITLE"} {
		u, err := reg.Updater(name)
		assert.Nil(t, u)
		require.ErrorIs(t, err, primers.ErrUnknownUpdater)
		assert.Equal(t, fmt.Sprintf("unknown updater %q", name), err.Error())
	}
}

func TestAuthDeclarations(t *testing.T) {
	t.Parallel()
	v := primers.PrimerFunc(func(context.Context, primers.Key) (any, error) { return 1, nil })
	id := []primers.Param{intParam("id")}
	for _, tc := range []struct {
		p    primers.Product
		want string
	}{
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{Public: true, Scopes: []string{"r"}}}, "public Auth takes no scopes"},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{Public: true, KeyBy: []string{"sub"}}}, "public Auth"},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{Scopes: []string{"a b"}}}, "bad scope"},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{Bind: map[string]string{"nope": "sub"}}}, `binds "nope", which is not a parameter`},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{Bind: map[string]string{"id": ""}}}, "names no claim"},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{KeyBy: []string{"id"}}}, "has the name of a parameter"},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{KeyBy: []string{"https://x/claim"}}}, "must match"},
		{primers.Product{Name: "a", Params: id, Auth: primers.Auth{KeyBy: []string{"sub", "sub"}}}, "given twice"},
		{primers.Product{Name: "a", Params: id, Primer: primers.Func1(func(context.Context, int64) (int, error) { return 0, nil }),
			Auth: primers.Auth{KeyBy: []string{"sub"}}}, "primer takes 1 parameters, declaration has 2"},
	} {
		err := primers.NewRegistry().Register(tc.p)
		assert.ErrorContains(t, err, tc.want)
	}
	reg := primers.NewRegistry()
	reg.MustRegister(primers.Product{Name: "mine", Params: id, Primer: v, Auth: primers.Auth{KeyBy: []string{"sub"}}})
	p := reg.Product("mine")
	assert.Equal(t, id, p.Params, "the field's parameters stay as declared")
	assert.Equal(t, []primers.Param{intParam("id"), {Name: "sub", Kind: primers.String}}, p.KeyParams())
	k, err := reg.ParseKey("mine/7/user%2F5")
	require.NoError(t, err)
	assert.Equal(t, []any{int64(7), "user/5"}, k.Args)
	assert.Equal(t, "user/5", k.Segment(1))
	_, err = reg.ParseKey("mine/7")
	assert.ErrorIs(t, err, primers.ErrBadParams)

	u := primers.UpdaterFunc(func(context.Context, json.RawMessage) (primers.UpdateResult, error) {
		return primers.UpdateResult{}, nil
	})
	assert.ErrorContains(t, reg.RegisterUpdaterAuth("u", u, primers.Auth{KeyBy: []string{"sub"}}), "key_by is for products")
	require.NoError(t, reg.RegisterUpdaterAuth("u", u, primers.Auth{Scopes: []string{"w"}, Bind: map[string]string{"authorId": "sub"}}))
	assert.Equal(t, []string{"w"}, reg.UpdaterAuth("u").Scopes)
	require.NoError(t, reg.RegisterUpdater("v", u))
	assert.True(t, reg.UpdaterAuth("v").IsZero())
	assert.Equal(t, []string{"u", "v"}, reg.UpdaterNames())
}
