// graphql-http's audits of a GraphQL over HTTP server (serverAudits: the
// specification's MUST, SHOULD and MAY, each one request) against the real
// gateway. Every MUST and SHOULD must pass; the MAYs that pass are printed,
// and at least MIN_MAY of them must.
// Usage: node graphql-http-audit.mjs http://127.0.0.1:PORT/graphql MIN_MAY
import { serverAudits } from 'graphql-http';
import { check } from './lib.mjs';

const [url, minMay] = process.argv.slice(2);
const results = [];
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const r = await audit.fn();
  results.push(r);
  const why = r.status === 'ok' ? '' : ' -- ' + r.reason;
  console.log(`${r.status.padEnd(5)} ${r.id} ${r.name}${why}`);
}
const tally = (level) => {
  const of = results.filter((r) => r.name.startsWith(level + ' '));
  return { ok: of.filter((r) => r.status === 'ok').length, all: of.length, failed: of.filter((r) => r.status !== 'ok').map((r) => r.id + ' ' + r.name) };
};
const must = tally('MUST'), should = tally('SHOULD'), may = tally('MAY');
console.log(`MUST ${must.ok}/${must.all}, SHOULD ${should.ok}/${should.all}, MAY ${may.ok}/${may.all}`);
check(must.all > 0 && must.ok === must.all, 'every MUST passes: ' + JSON.stringify(must.failed));
check(should.all > 0 && should.ok === should.all, 'every SHOULD passes: ' + JSON.stringify(should.failed));
check(may.ok >= Number(minMay), `at least ${minMay} MAYs pass: ` + JSON.stringify(may.failed));
