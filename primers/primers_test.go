package primers_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/primers"
)

// fakeReader serves products from a map and records what it was asked.
type fakeReader struct {
	values map[string]string
	err    error

	mu    sync.Mutex
	keys  []string
	ctxOK bool
}

type marker struct{}

func (r *fakeReader) ReadProduct(ctx context.Context, key string) (json.RawMessage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
	r.ctxOK = ctx.Value(marker{}) == "yes"
	if r.err != nil {
		return nil, r.err
	}
	v, ok := r.values[key]
	if !ok {
		return nil, errors.New("not found: " + key)
	}
	return json.RawMessage(v), nil
}

var _ primers.Reader = (*fakeReader)(nil)

type title struct {
	ID   int
	Name string
}

func TestReadWithoutReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  context.Context
	}{
		{"background", context.Background()},
		{"other values only", context.WithValue(context.Background(), marker{}, "yes")},
		{"nil reader", primers.WithReader(context.Background(), nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v any
			err := primers.Read(tt.ctx, "t/1", &v)
			require.ErrorIs(t, err, primers.ErrNoReader)
			assert.Nil(t, v)
		})
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	errDown := errors.New("store down")

	tests := []struct {
		name    string
		reader  *fakeReader
		key     string
		into    func() any
		want    any
		wantErr func(t *testing.T, err error)
	}{
		{
			name:   "decodes into a struct",
			reader: &fakeReader{values: map[string]string{"title/1": `{"id":1,"name":"Dune"}`}},
			key:    "title/1",
			into:   func() any { return &title{} },
			want:   &title{ID: 1, Name: "Dune"},
		},
		{
			name:   "decodes into a slice",
			reader: &fakeReader{values: map[string]string{"title_list/1999": `[1,2,3]`}},
			key:    "title_list/1999",
			into:   func() any { return new([]int) },
			want:   &[]int{1, 2, 3},
		},
		{
			name:   "raw message kept as is",
			reader: &fakeReader{values: map[string]string{"x": `{"a": [1, 2]}`}},
			key:    "x",
			into:   func() any { return new(json.RawMessage) },
			want:   ptr(json.RawMessage(`{"a": [1, 2]}`)),
		},
		{
			name:   "reader error passes through",
			reader: &fakeReader{err: errDown},
			key:    "t/1",
			into:   func() any { return new(any) },
			wantErr: func(t *testing.T, err error) {
				assert.ErrorIs(t, err, errDown)
			},
		},
		{
			name:   "bad JSON",
			reader: &fakeReader{values: map[string]string{"t/1": `{`}},
			key:    "t/1",
			into:   func() any { return new(any) },
			wantErr: func(t *testing.T, err error) {
				var se *json.SyntaxError
				assert.ErrorAs(t, err, &se)
			},
		},
		{
			name:   "JSON of the wrong shape",
			reader: &fakeReader{values: map[string]string{"t/1": `"text"`}},
			key:    "t/1",
			into:   func() any { return new(int) },
			wantErr: func(t *testing.T, err error) {
				var te *json.UnmarshalTypeError
				assert.ErrorAs(t, err, &te)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.WithValue(context.Background(), marker{}, "yes")
			ctx = primers.WithReader(ctx, tt.reader)
			v := tt.into()
			err := primers.Read(ctx, tt.key, v)

			tt.reader.mu.Lock()
			assert.Equal(t, []string{tt.key}, tt.reader.keys, "reads exactly the key asked for")
			assert.True(t, tt.reader.ctxOK, "the reader gets the caller's context")
			tt.reader.mu.Unlock()

			if tt.wantErr != nil {
				require.Error(t, err)
				assert.NotErrorIs(t, err, primers.ErrNoReader)
				tt.wantErr(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v)
		})
	}
}

// TestReadFromPrimer is the intended use: a primer reads another product
// through the Reader the cache put in its context.
func TestReadFromPrimer(t *testing.T) {
	t.Parallel()
	reg := primers.NewRegistry()
	require.NoError(t, reg.Register(primers.Product{
		Name:   "count",
		Params: []primers.Param{{Name: "year", Kind: primers.Int}},
		Primer: primers.Func1(func(ctx context.Context, year int64) (int, error) {
			k, err := reg.Key("title_list", year)
			if err != nil {
				return 0, err
			}
			var ids []int
			if err := primers.Read(ctx, k.String(), &ids); err != nil {
				return 0, err
			}
			return len(ids), nil
		}),
	}))
	require.NoError(t, reg.Register(primers.Product{Name: "title_list", Params: []primers.Param{{Name: "year", Kind: primers.Int}}}))

	k, err := reg.ParseKey("count/1999")
	require.NoError(t, err)
	p := reg.Product("count").Primer

	_, err = p.Prime(context.Background(), k)
	require.ErrorIs(t, err, primers.ErrNoReader)

	r := &fakeReader{values: map[string]string{"title_list/1999": `[4,5,6]`}}
	n, err := p.Prime(primers.WithReader(context.Background(), r), k)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []string{"title_list/1999"}, r.keys)
}

func ptr[T any](v T) *T { return &v }
