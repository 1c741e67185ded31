// graphql-ws's own client across a gateway's drain (e2e TestDrainUnderLoad
// drives it over stdin and stdout): subscribed on gateway A, it gets every
// version, those made while A drains too; when A closes the WebSocket with
// 1001 (going away) it resumes on gateway B with sinceVersion, the last
// version it saw, and gets the newest version at once, then the next one.
// Usage: node drain.mjs http://A http://B
//   prints:  next V | closed CODE LAST | resumed V
//   reads:   "resume NEWEST" (the store's newest version once A is gone),
//            "expect V" (a version made on B after the resume)
import { createInterface } from 'node:readline';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { check } from './lib.mjs';

const [a, b] = process.argv.slice(2);
const key = 'title_list/7';
const query = 'subscription($k: String!, $v: String) { product(key: $k, sinceVersion: $v) { version } }';
const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const ws = (base) => base.replace(/^http/, 'ws') + '/graphql';
const big = (v) => BigInt(v);

async function command(name) {
  const { value, done } = await input.next();
  check(!done && value.startsWith(name + ' '), `told "${name}" (got ${value})`);
  return value.slice(name.length + 1);
}

// A hang guard, not a latency bound.
function within(p, what) {
  return Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`no ${what} within 60 s`)), 60000))]);
}

// On A until it goes away: no retry, the close is what we wait for.
let last = null;
const closed = new Promise((resolve) => {
  const onA = createClient({ url: ws(a), webSocketImpl: WebSocket, lazy: true, retryAttempts: 0, on: { closed: resolve } });
  onA.subscribe({ query, variables: { k: key } }, {
    next: (r) => {
      const v = r.data.product.version;
      if (last !== null) check(big(v) > big(last), `versions only increase (${v} > ${last})`);
      last = v;
      console.log('next', v);
    },
    error: () => {}, // the close, reported above
    complete: () => {},
  });
});
const e = await within(closed, 'close from gateway A');
check(e.code === 1001, `gateway A closed the WebSocket with 1001, going away (got ${e.code} "${e.reason}")`);
check(last !== null, 'a version was seen on A');
console.log('closed', e.code, last);

// On B, from the last version seen.
const newest = await command('resume');
const onB = createClient({ url: ws(b), webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
const it = onB.iterate({ query, variables: { k: key, v: last } })[Symbol.asyncIterator]();
async function next() {
  const r = await within(it.next(), 'message from gateway B');
  check(!r.done, 'the subscription on B goes on');
  check(!r.value.errors, 'no errors: ' + JSON.stringify(r.value.errors));
  return r.value.data.product.version;
}
const first = await next();
check(big(first) > big(last) && big(first) >= big(newest),
  `resumed on B with sinceVersion ${last}: the first message is the newest version (${first} >= ${newest}), nothing missed`);
console.log('resumed', first);

const want = await command('expect');
for (let prev = first; ;) {
  const v = await next();
  check(big(v) > big(prev), `versions only increase (${v} > ${prev})`);
  prev = v;
  if (big(v) >= big(want)) {
    check(true, `then a new version made on B (${v})`);
    console.log('next', v);
    break;
  }
}
await onB.dispose();
process.exit(0);
