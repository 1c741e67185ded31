package sqlproduct_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/pgtest"
	"github.com/kck-go/kck/source/sqlproduct"
)

// apiSchema is a table with a column of every type the mapping knows.
const apiSchema = `
CREATE TYPE mood AS ENUM ('ok', 'meh');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE things (
	id    int4 PRIMARY KEY,
	small int2,
	big   int8 NOT NULL,
	n     numeric,
	f     float8 NOT NULL,
	s     text NOT NULL,
	v     varchar(10),
	b     bool NOT NULL,
	d     date,
	ts    timestamptz NOT NULL,
	t     timestamp,
	j     jsonb,
	arr   int4[] NOT NULL,
	tags  text[],
	u     uuid NOT NULL,
	m     mood,
	dom   posint,
	iv    interval,
	owner_id int4
);
CREATE TABLE owners (id int4 PRIMARY KEY, name text NOT NULL);
`

func describeAPI(t *testing.T, conn *pgx.Conn, files map[string]string) (*sqlproduct.API, error) {
	t.Helper()
	d, err := sqlproduct.Load(writeFiles(t, files))
	require.NoError(t, err)
	return sqlproduct.DescribeAPI(ctx(t), conn, d)
}

func apiConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx(t), pgtest.Database(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx(t)) })
	_, err = conn.Exec(ctx(t), apiSchema)
	require.NoError(t, err)
	return conn
}

func fieldTypes(o *sqlproduct.APIObject) map[string]string {
	out := map[string]string{}
	for _, f := range o.Fields {
		out[f.Name] = f.Type
	}
	return out
}

// Every PostgreSQL type maps to its GraphQL scalar, NOT NULL columns are
// non-null, and names are camelCased.
func TestDescribeAPITypes(t *testing.T) {
	t.Parallel()
	conn := apiConn(t)
	api, err := describeAPI(t, conn, map[string]string{
		"all_things.sql": "-- kck:product all_things(owner_id int)\nSELECT * FROM things WHERE owner_id = :owner_id",
		"one_thing.sql":  "-- kck:product one_thing(id int)\n-- kck:result row\n-- kck:type Thing\nSELECT id, s AS \"label\", big FROM things WHERE id = :id",
		"joined.sql": "-- kck:product joined()\nSELECT o.name, t.id AS thing_id FROM owners o\n" +
			"LEFT JOIN things t ON t.owner_id = o.id",
		"counted.sql": "-- kck:product counted()\n-- kck:result value\nSELECT count(*) FROM things",
		"overridden.sql": "-- kck:product overridden(big_one int)\n-- kck:field big Int!\n-- kck:field n String\n" +
			"SELECT big, n, max(f) AS top FROM things WHERE big = :big_one GROUP BY big, n",
		"first.sql":  "-- kck:product first()\n-- kck:filter $[0].s\nSELECT s FROM things",
		"labels.sql": "-- kck:product labels()\n-- kck:filter $[*].s\nSELECT s FROM things",
		"top.sql":    "-- kck:product top()\n-- kck:filter $[0]\nSELECT id FROM things",
		"add_thing.sql": "-- kck:updater add_thing(id int, s string, note string?)\n-- kck:type Thing\n" +
			"INSERT INTO things (id, big, f, s, b, ts, arr, u) VALUES (:id, 1, 1, :s, true, now(), '{}', gen_random_uuid())\n" +
			"RETURNING id, s AS \"label\", big",
		"touch.sql": "-- kck:updater touch(id int)\nUPDATE things SET b = NOT b WHERE id = :id",
	})
	require.NoError(t, err)
	products := map[string]sqlproduct.APIProduct{}
	for _, p := range api.Products {
		products[p.Product.Name] = p
	}

	all := products["all_things"]
	assert.Equal(t, "allThings", all.Field)
	assert.Equal(t, []sqlproduct.APIArg{{Name: "ownerId", Type: "Int!"}}, all.Args)
	assert.Equal(t, "[AllThingsRow!]", all.Type)
	require.NotNil(t, all.Object)
	assert.Equal(t, map[string]string{
		"id": "Int!", "small": "Int", "big": "BigInt!", "n": "Float", "f": "Float!", "s": "String!",
		"v": "String", "b": "Boolean!", "d": "Date", "ts": "Time!", "t": "Time", "j": "JSON",
		"arr": "[Int]!", "tags": "[String]", "u": "String!", "m": "String", "dom": "Int", "iv": "JSON",
		"ownerId": "Int",
	}, fieldTypes(all.Object))
	assert.Equal(t, "owner_id", all.Object.Fields[len(all.Object.Fields)-1].Column, "the JSON key stays the column's")

	one := products["one_thing"]
	assert.Equal(t, "Thing", one.Type, "kck:result row: the object, named by kck:type")
	assert.Equal(t, 3, one.Object.Line)
	assert.Equal(t, map[string]string{"id": "Int!", "label": "String!", "big": "BigInt!"}, fieldTypes(one.Object))

	assert.Equal(t, map[string]string{"name": "String", "thingId": "Int"}, fieldTypes(products["joined"].Object),
		"an outer join makes every column nullable")
	assert.Equal(t, "BigInt", products["counted"].Type, "count(*) is an int8")
	assert.Nil(t, products["counted"].Object)
	ov := products["overridden"]
	assert.Equal(t, map[string]string{"big": "Int!", "n": "String", "top": "Float"}, fieldTypes(ov.Object))
	assert.Equal(t, []sqlproduct.APIArg{{Name: "bigOne", Type: "Int!"}}, ov.Args)
	assert.Equal(t, "String", products["first"].Type, "$[0].col: one value, nullable")
	assert.Equal(t, "[String!]", products["labels"].Type, "$[*].col: the column of every row")
	assert.Equal(t, "TopRow", products["top"].Type, "$[0]: one row")

	require.Len(t, api.Updaters, 2)
	add := api.Updaters[0]
	assert.Equal(t, "addThing", add.Field)
	assert.Equal(t, []sqlproduct.APIArg{{Name: "id", Type: "Int!"}, {Name: "s", Type: "String!"}, {Name: "note", Type: "String"}}, add.Args)
	require.NotNil(t, add.Result)
	assert.Equal(t, "Thing", add.Result.Name)
	assert.Equal(t, map[string]string{"id": "Int!", "label": "String!", "big": "BigInt!"}, fieldTypes(add.Result))
	assert.Nil(t, api.Updaters[1].Result, "no RETURNING: no result")
}

// What the statement or the headers get wrong is refused with the file and
// the line.
func TestDescribeAPIErrors(t *testing.T) {
	t.Parallel()
	conn := apiConn(t)
	for _, tc := range []struct{ body, want string }{
		{"-- kck:product p()\nSELECT id,\n  nope\nFROM things", `p.sql:3: the statement does not prepare: column "nope" does not exist (SQLSTATE 42703)`},
		{"-- kck:product p()\n-- kck:field s Int\nSELECT s FROM things", "p.sql:2: kck:field s: column s is String, which cannot be served as Int"},
		{"-- kck:product p()\n-- kck:field b String\nSELECT b FROM things", "p.sql:2: kck:field b: column b is Boolean"},
		{"-- kck:product p()\n-- kck:field x Int\nSELECT id, s FROM things", "p.sql:2: kck:field x: the statement returns no column x (it returns id, s)"},
		{"-- kck:product p()\nSELECT 1 + 1", `p.sql:2: column 1 ("?column?") has no name GraphQL can take: name it with AS`},
		{"-- kck:product p()\nSELECT owner_id, 1 AS \"ownerId\" FROM things", `p.sql:2: columns "owner_id" and "ownerId" are both the GraphQL field ownerId`},
		{"-- kck:product p()\n-- kck:result value\nSELECT id, s FROM things", "p.sql:1: kck:result value needs one column; the statement returns 2"},
		{"-- kck:product p()\n-- kck:result value\n-- kck:type T\nSELECT id FROM things", "p.sql:3: kck:type names a row's type"},
		{"-- kck:product p()\n-- kck:filter $.s\nSELECT s FROM things", "p.sql:1: kck:filter $.s picks a column of one row"},
		{"-- kck:product p()\n-- kck:filter $[0].x\nSELECT s FROM things", "p.sql:1: kck:filter $[0].x: the statement returns no column x"},
		{"-- kck:updater u(id int)\nUPDATE things SET b = true WHERE id = :id;\nSELECT nope FROM things", `p.sql:3: the statement does not prepare: column "nope" does not exist`},
		{"-- kck:updater u(id int)\n-- kck:field x Int\nDELETE FROM things WHERE id = :id", "p.sql:2: kck:field x: the statement returns no column x"},
	} {
		_, err := describeAPI(t, conn, map[string]string{"p.sql": tc.body})
		require.Error(t, err, tc.body)
		assert.Contains(t, err.Error(), tc.want, tc.body)
	}
	// Every file's errors, not the first one's only.
	_, err := describeAPI(t, conn, map[string]string{
		"a.sql": "-- kck:product a()\nSELECT nope", "b.sql": "-- kck:product b()\nSELECT id FROM nowhere"})
	require.Error(t, err)
	assert.Equal(t, 2, strings.Count(err.Error(), "does not prepare"), err.Error())
}
