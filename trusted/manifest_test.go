package trusted_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/kck-go/kck/internal/logtest"
	"github.com/kck-go/kck/internal/metrictest"
	"github.com/kck-go/kck/trusted"
)

const schemaSDL = `type Query { titleList(authorId: Int!): [Title!] author(authorId: Int!): Author }
type Title { id: Int! title: String! }
type Author { id: Int! name: String! }`

func schema(t testing.TB) *ast.Schema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema", Input: schemaSDL})
	require.NoError(t, err)
	return s
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

const (
	titles = "query Titles($a: Int!) { titleList(authorId: $a) { id title } }"
	author = "query Author { author(authorId: 1) { name } }"
)

func apollo(ops ...[2]string) string {
	type op struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
		Body string `json:"body"`
	}
	m := struct {
		Format     string `json:"format"`
		Version    int    `json:"version"`
		Operations []op   `json:"operations"`
	}{Format: "apollo-persisted-query-manifest", Version: 1}
	for _, o := range ops {
		m.Operations = append(m.Operations, op{ID: sha(o[1]), Name: o[0], Type: "query", Body: o[1]})
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestParseBothFormats(t *testing.T) {
	t.Parallel()
	s := schema(t)
	codegen, _ := json.Marshal(map[string]string{"0123abcd": titles, "sha256:" + sha(author): author})
	for name, raw := range map[string]string{"apollo": apollo([2]string{"Titles", titles}, [2]string{"Author", author}), "codegen": string(codegen)} {
		m, err := trusted.Parse([]byte(raw))
		require.NoError(t, err, name)
		require.NoError(t, m.Validate(s), name)
		assert.Equal(t, 2, m.Len(), name)
		for _, id := range []string{sha(titles), "sha256:" + sha(titles), sha(author)} {
			d, ok := m.Lookup(id)
			require.True(t, ok, "%s: %s", name, id)
			assert.Contains(t, []string{titles, author}, d.Body)
		}
		d, ok := m.LookupBody(titles)
		require.True(t, ok, name)
		assert.Equal(t, "Titles", d.Name, "%s: the operation's name", name)
		_, ok = m.LookupBody(titles + " ")
		assert.False(t, ok, "%s: another text is another document", name)
		_, ok = m.Lookup("nope")
		assert.False(t, ok)
	}
	m, _ := trusted.Parse(codegen)
	_, ok := m.Lookup("0123abcd")
	assert.True(t, ok, "a manifest's own id (Code Generator's sha1 or its own)")
}

func TestParseErrorsNameTheDocument(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, says string }{
		{``, "want a JSON object"},
		{`[1]`, "want a JSON object"},
		{`{"a":`, "not a trusted documents manifest"},
		{`{"x": 1}`, `document "x": want a string`},
		{`{"x": ""}`, `document "x" has no body`},
		{`{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}`, "version 2"},
		{`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"name": "Q", "body": "{ a }"}]}`, `document "Q" has no id`},
		{`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "1", "name": "A", "body": "{ a }"}, {"id": "1", "name": "B", "body": "{ b }"}]}`, `id "1" is given to two documents`},
	} {
		_, err := trusted.Parse([]byte(tc.raw))
		require.ErrorIs(t, err, trusted.ErrFormat, tc.raw)
		assert.Contains(t, err.Error(), tc.says, tc.raw)
	}
	// Against the schema: each document that fails is named.
	m, err := trusted.Parse([]byte(apollo([2]string{"Titles", titles}, [2]string{"Broken", "query Broken { nope }"}, [2]string{"Unparsed", "query Unparsed {"})))
	require.NoError(t, err)
	err = m.Validate(schema(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `trusted document "Broken" (id `)
	assert.Contains(t, err.Error(), `does not validate against the schema: Cannot query field "nope"`)
	assert.Contains(t, err.Error(), `trusted document "Unparsed" does not parse`)
	assert.NotContains(t, err.Error(), "Titles")
}

func write(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path)) // as deploy tools replace a file
}

// The store reloads a changed file (polling) or on Reload (SIGHUP): the new
// manifest replaces the old whole, and one that does not parse or validate
// leaves the old one in force.
func TestStoreReloads(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manifest.json")
	write(t, path, apollo([2]string{"Titles", titles}))
	logs := &logtest.Capture{}
	reg := prometheus.NewRegistry()
	st, err := trusted.Open(trusted.Options{Path: path, Mode: trusted.Enforce, PollInterval: 10 * time.Millisecond, Logger: slog.New(logs), Registerer: reg})
	require.NoError(t, err)
	require.NoError(t, st.Bind(schema(t)))
	var changes atomic.Int64
	st.OnChange(func() { changes.Add(1) })
	st.Start()
	t.Cleanup(st.Stop)
	assert.Equal(t, 1, st.Current().Len())

	write(t, path, apollo([2]string{"Titles", titles}, [2]string{"Author", author}))
	require.Eventually(t, func() bool { return st.Current().Len() == 2 }, time.Minute, 5*time.Millisecond, "polled")
	assert.EqualValues(t, 1, changes.Load())

	before := st.Current()
	write(t, path, apollo([2]string{"Broken", "query Broken { nope }"}))
	require.Eventually(t, func() bool { return metrictest.Value(t, reg, "kck_trusted_documents_reloads_total", "failed") >= 1 }, time.Minute, 5*time.Millisecond)
	assert.Same(t, before, st.Current(), "the manifest in force stays")
	assert.GreaterOrEqual(t, logs.Count(`trusted document "Broken" (id `), 1)

	write(t, path, `{"`+sha(author)+`": "`+author+`"}`)
	require.NoError(t, st.Reload())
	assert.Equal(t, 1, st.Current().Len())
	_, ok := st.Current().LookupBody(author)
	assert.True(t, ok)
	assert.Equal(t, 1.0, metrictest.Value(t, reg, "kck_trusted_documents"))

	// A manifest that does not validate at start is an error naming it.
	bad := filepath.Join(t.TempDir(), "bad.json")
	write(t, bad, apollo([2]string{"Broken", "query Broken { nope }"}))
	st2, err := trusted.Open(trusted.Options{Path: bad, Mode: trusted.Log})
	require.NoError(t, err)
	err = st2.Bind(schema(t))
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "bad.json") && strings.Contains(err.Error(), `"Broken"`), err.Error())
	_, err = trusted.Open(trusted.Options{Path: filepath.Join(t.TempDir(), "missing.json"), Mode: trusted.Log})
	assert.Error(t, err)
}

// Unknown documents are counted every time and logged once each.
func TestUnknownLoggedOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.json")
	write(t, path, apollo([2]string{"Titles", titles}))
	logs := &logtest.Capture{}
	reg := prometheus.NewRegistry()
	st, err := trusted.Open(trusted.Options{Path: path, Mode: trusted.Log, Logger: slog.New(logs), Registerer: reg})
	require.NoError(t, err)
	for range 3 {
		st.Unknown("aaa", "A", false)
		st.Unknown("bbb", "B", false)
	}
	assert.Equal(t, 6.0, metrictest.Value(t, reg, "kck_trusted_documents_total", "unknown"))
	assert.Equal(t, 1, logs.Count("sha256=aaa"))
	assert.Equal(t, 1, logs.Count("sha256=bbb"))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
