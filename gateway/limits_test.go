package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/gateway"
	"github.com/kck-go/kck/gateway/gqlhttp"
	"github.com/kck-go/kck/internal/metrictest"
)

func repeat(s string, n int) string { return strings.Repeat(s, n) }

func aliased(n int, field string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d: %s ", i, field)
	}
	return b.String()
}

// Every limit refuses its document before gqlgen validates it (the
// validation counter does not move) with LIMIT_EXCEEDED naming the limit,
// and counts the refusal. The bound is on work (the document never reaches
// the validator, whose cost grows with the square of repeated fields), not
// on the machine's speed.
func TestLimitsRefuseBeforeValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.MaxBodyBytes = 2 << 20 })
	// Fragments that double at each level: 2^20 fields once expanded.
	var bomb strings.Builder
	bomb.WriteString("{ author(authorId: 1) { ...F0 } } fragment F20 on Author { id name } ")
	for i := 19; i >= 0; i-- {
		fmt.Fprintf(&bomb, "fragment F%d on Author { ...F%d ...F%d } ", i, i+1, i+1)
	}
	for _, tc := range []struct {
		name, query, limit string
	}{
		// 1 MB of __typename: 100,000 tokens. Counting stops at 15,000.
		{"1 MB of repeated fields", "{ " + repeat("__typename ", 1<<20/11) + "}", gqlhttp.LimitTokens},
		// The attack's 110 KB document (10,000 repeats, under the token limit).
		{"10,000 root fields", "{ " + repeat("__typename ", 10000) + "}", gqlhttp.LimitRootFields},
		{"repeated nested fields", "{ author(authorId: 1) { " + repeat("id ", 2000) + "} }", gqlhttp.LimitFields},
		// Under the fields limit, but the validator's pairwise work on one
		// name repeated 400 times is what the repeat limit refuses.
		{"one field repeated", "{ author(authorId: 1) { " + repeat("id ", 400) + "} }", gqlhttp.LimitRepeats},
		{"a fragment cycle", "{ ...F } fragment F on Query { __typename ...G } fragment G on Query { ...F }", ""},
		{"fragments that multiply", bomb.String(), gqlhttp.LimitFields},
		{"deep", repeat("{ a ", 13) + repeat("} ", 13), gqlhttp.LimitDepth},
		{"aliases", "{ " + aliased(31, "__typename") + "}", gqlhttp.LimitAliases},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metrictest.Value(t, e.metrics, "kck_graphql_validations_total")
			refused := metrictest.Value(t, e.metrics, "kck_refused_total", tc.limit)
			// 200 with application/json (the GraphQL over HTTP spec: a
			// request error is in the body), 400 with
			// application/graphql-response+json.
			r := e.do(t, "POST", "/graphql", gqlBody(tc.query), "Accept", "application/graphql-response+json")
			assert.Equal(t, 400, r.status, r.body)
			got := decode[gqlReply](t, r.body)
			require.Len(t, got.Errors, 1, r.body)
			assert.Less(t, len(r.body), 1000, "the refusal does not echo the document")
			assert.Equal(t, before, metrictest.Value(t, e.metrics, "kck_graphql_validations_total"), "the document reached validation")
			if tc.limit == "" {
				assert.Equal(t, "GRAPHQL_VALIDATION_FAILED", got.Errors[0].Extensions["code"])
				return
			}
			assert.Equal(t, "LIMIT_EXCEEDED", got.Errors[0].Extensions["code"])
			assert.Equal(t, tc.limit, got.Errors[0].Extensions["limit"])
			assert.Equal(t, refused+1, metrictest.Value(t, e.metrics, "kck_refused_total", tc.limit))

			// The same over GET.
			if len(tc.query) < 32<<10 && tc.limit != "" {
				r = e.do(t, "GET", "/graphql?query="+url.QueryEscape(tc.query), "")
				assert.Equal(t, 200, r.status, r.body)
				assert.Contains(t, r.body, `"limit":"`+tc.limit+`"`)
			}
		})
	}
	// Just under each limit, a document is validated and runs.
	for _, q := range []string{
		"{ " + repeat("__typename ", 20) + aliased(30, "__typename") + "}",
		"{ author(authorId: 1) { " + repeat("id ", 20) + "} }",
	} {
		before := metrictest.Value(t, e.metrics, "kck_graphql_validations_total")
		r := e.do(t, "POST", "/graphql", gqlBody(q))
		assert.Equal(t, 200, r.status, r.body)
		assert.Equal(t, before+1, metrictest.Value(t, e.metrics, "kck_graphql_validations_total"))
	}
}

// Complexity is checked after validation, before any resolver: a product
// field costs ProductCost.
func TestComplexityLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.Limits.MaxComplexity = 50 })
	// 5 product fields of cost 10 plus a field each: 55.
	q := "{ " + aliased(5, `product(key: "counted/1") { key }`) + "}"
	r := e.do(t, "POST", "/graphql", gqlBody(q))
	assert.Equal(t, 200, r.status, r.body)
	got := decode[gqlReply](t, r.body)
	require.Len(t, got.Errors, 1)
	assert.NotContains(t, r.body, `"data"`)
	assert.Equal(t, "complexity", got.Errors[0].Extensions["limit"])
	assert.EqualValues(t, 55, got.Errors[0].Extensions["got"])
	assert.Zero(t, e.runs.Load(), "a primer ran")
	assert.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_refused_total", "complexity"))

	// Four cost 44 and run.
	q = "{ " + aliased(4, `product(key: "counted/1") { key }`) + "}"
	r = e.do(t, "POST", "/graphql", gqlBody(q))
	assert.Equal(t, 200, r.status, r.body)
}

func TestLimitsConfigurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) {
		o.Limits = gqlhttp.Limits{MaxDepth: 2, MaxAliases: -1, MaxRootFields: 3}
	})
	r := e.do(t, "POST", "/graphql", gqlBody("{ author(authorId: 1) { id } }"))
	assert.Equal(t, 200, r.status, r.body)
	r = e.do(t, "POST", "/graphql", gqlBody("{ titleList(authorId: 1) { id } a: __typename b: __typename c: __typename }"))
	assert.Contains(t, r.body, `"limit":"root_fields"`)
	r = e.do(t, "POST", "/graphql", gqlBody("{ a { b { c } } }"))
	assert.Contains(t, r.body, `"limit":"depth"`)
	// Aliases off: 40 aliases pass that limit (and meet root_fields).
	r = e.do(t, "POST", "/graphql", gqlBody("{ "+aliased(40, "__typename")+"}"))
	assert.Contains(t, r.body, `"limit":"root_fields"`)
}

func TestBatchAndMalformedBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ body, code string }{
		{`[{"query":"{ author(authorId: 1) { id } }"},{"query":"{ __typename }"}]`, "LIMIT_EXCEEDED"},
		{`[1]`, "BAD_USER_INPUT"},
		{`[]`, "BAD_USER_INPUT"},
		{``, "BAD_USER_INPUT"},
		{`   `, "BAD_USER_INPUT"},
		{`not json`, "BAD_USER_INPUT"},
		{`{"query":`, "BAD_USER_INPUT"},
		{`"x"`, "BAD_USER_INPUT"},
		{`{"query":1}`, "BAD_USER_INPUT"},
		{`{"query":"{ __typename }","variables":[]}`, "BAD_USER_INPUT"},
		{`{"query":1,"pad":"` + repeat("x", 30000) + `"}`, "BAD_USER_INPUT"},
	} {
		r := e.do(t, "POST", "/graphql", tc.body, "Content-Type", "application/json")
		assert.Equal(t, 400, r.status, "%.60s: %s", tc.body, r.body)
		got := decode[gqlReply](t, r.body)
		require.NotEmpty(t, got.Errors, r.body)
		assert.Equal(t, tc.code, got.Errors[0].Extensions["code"], "%.60s: %s", tc.body, r.body)
		assert.Less(t, len(r.body), 1200, "the error echoes the body")
	}
	n, errs := e.logs.Errors()
	assert.Zero(t, n, "errors logged: %v", errs)
	assert.Zero(t, e.logs.Count("panic"))
	assert.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_refused_total", "batch"))
}

func TestProductionTurnsOffIntrospectionAndPlayground(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.DisableIntrospection, o.DisablePlayground = true, true })
	before := metrictest.Value(t, e.metrics, "kck_graphql_validations_total")
	for _, q := range []string{`{ __schema { types { name } } }`, `{ __type(name: "Query") { name } }`, `query { ...F } fragment F on Query { __schema { queryType { name } } }`} {
		r := e.do(t, "POST", "/graphql", gqlBody(q))
		assert.Equal(t, 200, r.status, r.body)
		assert.Contains(t, r.body, `"limit":"introspection"`)
	}
	assert.Equal(t, before, metrictest.Value(t, e.metrics, "kck_graphql_validations_total"))
	assert.Equal(t, 200, e.do(t, "POST", "/graphql", gqlBody(`{ __typename }`)).status)
	assert.Equal(t, 404, e.do(t, "GET", "/", "").status)

	on := newEnv(t)
	r := on.do(t, "POST", "/graphql", gqlBody(`{ __schema { queryType { name } } }`))
	assert.Equal(t, 200, r.status)
	assert.Contains(t, r.body, `"Query"`)
}

// Anonymous invalidate of an unregistered product's key writes nothing: the
// attack grew the store file from 1 MB to 192 MB with tombstones.
func TestInvalidateUnknownProductWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := e.storeDir
	size := func() int64 {
		var n int64
		require.NoError(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				n += fi.Size()
			}
			return err
		}))
		return n
	}
	before := size()
	long := repeat("k", 15000)
	for i := range 300 {
		key := fmt.Sprintf("nosuch/%d/%s", i, repeat("v", 900))
		r := e.do(t, "POST", "/graphql", gqlBody(fmt.Sprintf(`mutation { invalidate(key: %q) }`, key)))
		got := decode[gqlReply](t, r.body)
		require.Len(t, got.Errors, 1, r.body)
		assert.Equal(t, "NOT_FOUND", got.Errors[0].Extensions["code"])
	}
	r := e.do(t, "POST", "/graphql", gqlBody(fmt.Sprintf(`mutation { invalidate(key: "nosuch/%s") }`, long)))
	got := decode[gqlReply](t, r.body)
	require.Len(t, got.Errors, 1, r.body)
	assert.Equal(t, "BAD_USER_INPUT", got.Errors[0].Extensions["code"])
	assert.Less(t, len(got.Errors[0].Message), 300, "the key is echoed whole")
	r = e.do(t, "POST", "/graphql", gqlBody(fmt.Sprintf(`mutation { invalidate(key: "title_list/%s") }`, long)))
	assert.Contains(t, r.body, "BAD_USER_INPUT")
	assert.Equal(t, before, size(), "the store grew")

	// A value Set under a plain key can still be invalidated.
	ctx := context.Background()
	_, err := e.cache.Set(ctx, "plain/1", map[string]int{"a": 1})
	require.NoError(t, err)
	r = e.do(t, "POST", "/graphql", gqlBody(`mutation { invalidate(key: "plain/1") }`))
	assert.JSONEq(t, `{"data":{"invalidate":true}}`, r.body)
}

// Declared parameter ranges are checked when the key is parsed: the primer
// of top_authors never runs for n out of 1..100.
func TestParameterRangeBeforePrimer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(t, "POST", "/graphql", gqlBody(`{ topAuthors(n: 101) { name } }`))
	got := decode[gqlReply](t, r.body)
	require.Len(t, got.Errors, 1, r.body)
	assert.Equal(t, "BAD_USER_INPUT", got.Errors[0].Extensions["code"])
	assert.Contains(t, got.Errors[0].Message, "between 1 and 100")
	for _, k := range []string{"top_authors/101", "top_authors/0"} {
		assert.Equal(t, 400, e.do(t, "GET", "/fetch?key="+k, "").status)
	}
	assert.Zero(t, metrictest.Value(t, e.metrics, "kck_primer_runs_total", "top_authors"))
	assert.Equal(t, 200, e.do(t, "GET", "/fetch?key=top_authors/100", "").status)
	assert.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_primer_runs_total", "top_authors"))
}

// A key with no data is remembered for NegativeTTL: repeated misses do not
// run the primer again, and the warning is logged once per interval.
func TestNegativeCacheAndQuietLog(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(e *env, o *cache.Options) { o.Clock = e.clock })
	for range 5 {
		r := e.do(t, "GET", "/fetch?key=sparse/1", "")
		assert.Equal(t, 404, r.status, r.body)
		assert.Contains(t, r.body, "NOT_FOUND")
	}
	assert.EqualValues(t, 1, e.sparse.Load(), "the primer ran again within the negative TTL")
	e.clock.Advance(5 * time.Second)
	assert.Equal(t, 404, e.do(t, "GET", "/fetch?key=sparse/1", "").status)
	assert.EqualValues(t, 2, e.sparse.Load(), "the answer outlived the negative TTL")

	// 40 distinct absent keys in one request: 40 runs, one log line.
	before := e.logs.Count("primer failed")
	var keys []string
	for i := range 40 {
		keys = append(keys, "key=sparse/"+fmt.Sprint(100+i))
	}
	for i := 0; i < 40; i += 10 {
		r := e.do(t, "GET", "/fetch?"+strings.Join(keys[i:i+10], "&"), "")
		assert.Equal(t, 200, r.status)
	}
	assert.EqualValues(t, 42, e.sparse.Load())
	assert.LessOrEqual(t, e.logs.Count("primer failed")-before, 1)

	// A value stored for the key ends the remembered absence at once.
	_, err := e.cache.Set(context.Background(), "sparse/1", 7)
	require.NoError(t, err)
	r := e.do(t, "GET", "/fetch?key=sparse/1", "")
	assert.Equal(t, 200, r.status, r.body)
}

// One request may cause at most MaxMissesPerRequest primer runs; the keys
// beyond are refused (LIMIT_EXCEEDED, misses) without running a primer, and
// a later request, with those keys warm, gets them all.
func TestMissesPerRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) { o.MaxMissesPerRequest = 5 })
	var fields []string
	for i := range 8 {
		fields = append(fields, fmt.Sprintf(`k%d: product(key: "counted/%d") { key }`, i, i))
	}
	q := "{ " + strings.Join(fields, " ") + " }"
	r := e.do(t, "POST", "/graphql", gqlBody(q))
	require.Equal(t, 200, r.status, r.body)
	got := decode[gqlReply](t, r.body)
	assert.EqualValues(t, 5, e.runs.Load())
	require.Len(t, got.Errors, 3, r.body)
	for _, er := range got.Errors {
		assert.Equal(t, "LIMIT_EXCEEDED", er.Extensions["code"])
		assert.Equal(t, "misses", er.Extensions["limit"])
	}
	assert.Equal(t, 3.0, metrictest.Value(t, e.metrics, "kck_refused_total", "misses"))

	// The 5 are warm now: the next request computes the other 3.
	r = e.do(t, "POST", "/graphql", gqlBody(q))
	assert.NotContains(t, r.body, "errors")
	assert.EqualValues(t, 8, e.runs.Load())

	// One absent key read by 30 fields is one miss: every field is
	// NOT_FOUND, none is refused.
	r = e.do(t, "POST", "/graphql", gqlBody("{ "+aliased(30, `product(key: "sparse/5") { key }`)+"}"))
	got = decode[gqlReply](t, r.body)
	require.Len(t, got.Errors, 30, r.body)
	for _, er := range got.Errors {
		assert.Equal(t, "NOT_FOUND", er.Extensions["code"], r.body)
	}
	assert.EqualValues(t, 1, e.sparse.Load())

	// /fetch: the same bound per request.
	var keys []string
	for i := range 8 {
		keys = append(keys, fmt.Sprintf("key=counted/%d", 100+i))
	}
	r = e.do(t, "GET", "/fetch?"+strings.Join(keys, "&"), "")
	assert.Equal(t, 200, r.status)
	assert.Equal(t, 3, strings.Count(r.body, "LIMIT_EXCEEDED"), r.body)
	assert.EqualValues(t, 13, e.runs.Load())
	r = e.do(t, "GET", "/fetch?key=counted/100", "")
	assert.Equal(t, 200, r.status)
}

// The introspection query GraphiQL and the playground send (graphql-js's
// getIntrospectionQuery) passes the default limits.
func TestPlaygroundIntrospectionWithinLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	typeRef := "kind name " + repeat("ofType { kind name ", 7) + repeat("} ", 7)
	q := `query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name }
		types { ...FullType } directives { name description locations args { ...InputValue } } } }
	fragment FullType on __Type { kind name description
		fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
		inputFields { ...InputValue } interfaces { ...TypeRef }
		enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
	fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
	fragment TypeRef on __Type { ` + typeRef + ` }`
	r := e.do(t, "POST", "/graphql", gqlBody(q))
	require.Equal(t, 200, r.status, r.body)
	assert.Contains(t, r.body, `"queryType":{"name":"Query"}`)
	assert.NotContains(t, r.body, `"errors"`)
}

// With MaxBatch set, a batch of at most that many requests is answered with
// the array of their responses; each item meets every document limit on its
// own, and the whole batch shares one miss budget.
func TestBatchWhenEnabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *gateway.Options) {
		o.Limits = gqlhttp.Limits{MaxBatch: 3, MaxDepth: 3}
		o.MaxMissesPerRequest = 4
	})
	r := e.do(t, "POST", "/graphql", `[{"query":"{ author(authorId: 1) { id } }"},{"query":"{ a { b { c { d } } } }"}]`, "Content-Type", "application/json")
	require.Equal(t, 200, r.status, r.body)
	var items []gqlReply
	require.NoError(t, json.Unmarshal([]byte(r.body), &items), r.body)
	require.Len(t, items, 2)
	assert.Empty(t, items[0].Errors)
	assert.JSONEq(t, `{"id":1}`, string(items[0].Data["author"]))
	require.NotEmpty(t, items[1].Errors, r.body)
	assert.Equal(t, "depth", items[1].Errors[0].Extensions["limit"], "each item meets the limits")

	// Four items: over the batch limit, refused whole before any runs.
	runs := e.runs.Load()
	four := `[` + strings.Repeat(`{"query":"{ product(key: \"counted/900\") { key } }"},`, 3) + `{"query":"{ __typename }"}]`
	r = e.do(t, "POST", "/graphql", four, "Content-Type", "application/json")
	assert.Equal(t, 400, r.status, r.body)
	assert.Contains(t, r.body, `"limit":"batch"`)
	assert.Equal(t, runs, e.runs.Load())

	// The miss budget is the batch's: three items of two cold keys each run
	// four primers, and the last two fields are refused.
	var batch []string
	for i := range 3 {
		batch = append(batch, fmt.Sprintf(`{"query":"{ a: product(key: \"counted/%d\") { key } b: product(key: \"counted/%d\") { key } }"}`, 200+2*i, 201+2*i))
	}
	r = e.do(t, "POST", "/graphql", "["+strings.Join(batch, ",")+"]", "Content-Type", "application/json")
	require.Equal(t, 200, r.status, r.body)
	assert.EqualValues(t, runs+4, e.runs.Load())
	assert.Equal(t, 2, strings.Count(r.body, `"limit":"misses"`), r.body)

	// A batch of hits is replayed from the response cache while its
	// products keep their versions.
	hit := `[{"query":"{ author(authorId: 1) { id } }"},{"query":"{ author(authorId: 2) { id } }"}]`
	first := e.do(t, "POST", "/graphql", hit, "Content-Type", "application/json")
	hits := metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", "hit")
	again := e.do(t, "POST", "/graphql", hit, "Content-Type", "application/json")
	assert.Equal(t, first.body, again.body)
	assert.Equal(t, hits+1, metrictest.Value(t, e.metrics, "kck_graphql_response_cache_total", "hit"))
	assert.Contains(t, first.body, `"kck":{"products"`)
}

// "No data" is a primer's answer, not its failure: it is not counted in
// kck_primer_errors_total (which the console shows as the product's
// errors), so asking for ids that do not exist sets off no error alert. A
// failing primer still counts.
func TestNotFoundIsNotAPrimerError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 3 {
		assert.Equal(t, 404, e.do(t, "GET", fmt.Sprintf("/fetch?key=sparse/%d", i), "").status)
	}
	assert.Equal(t, 404, e.do(t, "GET", "/fetch?key=author/99999", "").status)
	assert.Equal(t, 3.0, metrictest.Value(t, e.metrics, "kck_primer_runs_total", "sparse"))
	assert.Zero(t, metrictest.Value(t, e.metrics, "kck_primer_errors_total", "sparse"))
	assert.Zero(t, metrictest.Value(t, e.metrics, "kck_primer_errors_total", "author"))
	assert.Zero(t, e.logs.Count("primer failed"))
	assert.Equal(t, 502, e.do(t, "GET", "/fetch?key=failing/1", "").status)
	assert.Equal(t, 1.0, metrictest.Value(t, e.metrics, "kck_primer_errors_total", "failing"))
}
