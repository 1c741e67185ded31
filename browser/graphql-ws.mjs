// graphql-ws's own client (Node, with ws) against two gateways of one
// cluster: subscribe on B, see the current value, then the new version
// after a row is inserted in Postgres and after an updater runs on A;
// reconnect with sinceVersion and get only what is newer.
// Usage: node graphql-ws.mjs http://A http://B http://INSERT-HELPER
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { check } from './lib.mjs';

const [a, b, insertURL] = process.argv.slice(2);
const key = 'title_list/7';
const query = 'subscription($k: String!, $v: String) { product(key: $k, sinceVersion: $v) { version value } }';

function client(base) {
  return createClient({ url: base.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
}

// next returns a function that waits for the subscription's next result,
// up to 60 s: a hang guard, not a latency bound (a push across gateways
// waits on the change feed, whose reads a loaded machine can time out and
// retry; bench/cmd/pushlag measures the latency).
function subscribe(c, variables) {
  const it = c.iterate({ query, variables })[Symbol.asyncIterator]();
  return async function next() {
    const timer = new Promise((_, reject) => setTimeout(() => reject(new Error('no message within 60 s')), 60000));
    const r = await Promise.race([it.next(), timer]);
    if (r.done) throw new Error('subscription completed');
    if (r.value.errors) throw new Error('errors: ' + JSON.stringify(r.value.errors));
    return r.value.data.product;
  };
}

const titles = (p) => p.value.map((t) => t.title);
const big = (v) => BigInt(v);

// until reads results until one satisfies pred; versions only increase.
async function until(next, after, pred, what) {
  for (;;) {
    const p = await next();
    check(big(p.version) > big(after), `a newer version (${p.version} > ${after})`);
    after = p.version;
    if (pred(p)) { check(true, what); return p; }
  }
}

async function post(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

const onB = client(b);
try {
  const next = subscribe(onB, { k: key });
  const p0 = await next();
  check(Array.isArray(p0.value), `the current value at once (version ${p0.version}, ${p0.value.length} titles)`);

  let r = await fetch(insertURL + '?title=' + encodeURIComponent('Inserted with SQL'), { method: 'POST' });
  check(r.ok, 'a row is inserted in Postgres');
  const p1 = await until(next, p0.version, (p) => titles(p).includes('Inserted with SQL'), 'the row change is pushed');

  await post(a + '/update', { name: 'add_title', input: { authorId: 7, title: 'Added through A', year: 2031 } });
  const p2 = await until(next, p1.version, (p) => titles(p).includes('Added through A'), 'an updater run on gateway A is pushed by gateway B');
  await onB.dispose();

  // Away: a change is made; back with sinceVersion, on the other gateway.
  await post(a + '/update', { name: 'add_title', input: { authorId: 7, title: 'While away', year: 2032 } });
  const onA = client(a);
  try {
    const resumed = subscribe(onA, { k: key, v: p2.version });
    await until(resumed, p2.version, (p) => titles(p).includes('While away'), 'resuming with sinceVersion gets what was missed');

    // Resuming at the current version: nothing until a newer one.
    const cur = (await post(a + '/graphql', { query: '{ product(key: "title_list/7") { version } }' })).data.product.version;
    const quiet = subscribe(onA, { k: key, v: cur });
    const refreshed = (await post(b + '/graphql', { query: 'mutation { refresh(key: "title_list/7") { version } }' })).data.refresh.version;
    const first = await quiet();
    check(big(first.version) > big(cur), `resumed at the current version, the first message is newer (${first.version} > ${cur}); the refresh on B made ${refreshed}`);
  } finally {
    await onA.dispose();
  }
} finally {
  await onB.dispose();
}
