// `kck schema` against introspection, as graphql-js (what GraphQL Code
// Generator loads schemas with) reads them: the SDL file and the gateway's
// introspection answer must describe one schema, printed alike (types,
// fields, arguments, defaults, descriptions, deprecations, directive
// definitions), each sorted by name.
// Usage: node schema-sdl.mjs http://GATEWAY SCHEMA.graphql
import { readFileSync } from 'node:fs';
import {
  buildClientSchema, buildSchema, getIntrospectionQuery, lexicographicSortSchema, printSchema,
} from 'graphql';
import { check } from './lib.mjs';

const [base, file] = process.argv.slice(2);
const query = getIntrospectionQuery({
  descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true,
  inputValueDeprecation: true, oneOf: true,
});
const r = await fetch(base + '/graphql', {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }),
});
const body = await r.json();
check(r.ok && !body.errors, `introspection answers (${r.status} ${JSON.stringify(body.errors ?? [])})`);

const print = (s) => printSchema(lexicographicSortSchema(s));
const served = print(buildClientSchema(body.data));
const printed = print(buildSchema(readFileSync(file, 'utf8')));
if (served !== printed) {
  const a = served.split('\n'), b = printed.split('\n');
  const i = a.findIndex((l, n) => l !== b[n]);
  console.log(`first difference at line ${i + 1}:\n  introspection: ${a[i]}\n  kck schema:    ${b[i]}`);
}
check(served === printed, `kck schema prints what introspection shows (${served.split('\n').length} lines)`);
check(/type Subscription \{[^}]*titleList\(authorId: Int!\): \[Title!\]/s.test(printed), 'the generated subscription fields are in it');
