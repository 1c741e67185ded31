// graphql-ws's own client (what Apollo Client and urql use underneath)
// against two gateways of one cluster: a subscription on gateway A gets the
// current value at once and a change made through gateway B; resumed with
// sinceVersion it is sent nothing it already holds; having missed several
// versions it gets the newest only.
//   node graphql-ws-client.mjs GATEWAY_A GATEWAY_B
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { check } from './lib.mjs';

const [a, b] = process.argv.slice(2);
const key = 'title_list/5';
const query = `subscription($key: String!, $since: String) {
  product(key: $key, sinceVersion: $since) { key version value }
}`;

// subscribe opens a connection to base and returns its messages in order.
function subscribe(base, since) {
  const client = createClient({ url: base.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, retryAttempts: 0 });
  const queue = [];
  const waiting = [];
  const push = (m) => (waiting.length ? waiting.shift()(m) : queue.push(m));
  const stop = client.subscribe({ query, variables: { key, since } }, {
    next: (r) => push(r),
    error: (e) => push({ error: e }),
    complete: () => push({ complete: true }),
  });
  return {
    // next resolves with the next product pushed (failing on an error).
    async next() {
      const m = queue.length ? queue.shift() : await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`nothing pushed by ${base} within 20 s`)), 20000);
        waiting.push((x) => { clearTimeout(timer); resolve(x); });
      });
      if (m.error || m.errors || m.complete) throw new Error(`subscription ended: ${JSON.stringify(m.error?.message ?? m.errors ?? m)}`);
      return m.data.product;
    },
    async close() { stop(); await client.dispose(); },
  };
}

// addTitle runs the typed mutation on base and returns title_list's new version.
async function addTitle(base, title) {
  const res = await fetch(base + '/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation($t: String!) { addTitle(authorId: 5, title: $t, year: 2050) { products { key version } } }',
      variables: { t: title },
    }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.addTitle.products.find((p) => p.key === key).version;
}

// servesVersion waits until base serves at least version v of the key (the
// change feed carries B's writes to A).
async function servesVersion(base, v) {
  for (let i = 0; i < 400; i++) {
    const res = await fetch(`${base}/fetch?key=${key}`);
    if (res.ok && BigInt((await res.json()).version) >= BigInt(v)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${base} never served version ${v} of ${key}`);
}

const has = (p, title) => p.value.some((t) => t.title === title);
const newer = (x, y) => BigInt(x) > BigInt(y);

// The current value at once, then a change made through the other gateway.
const s1 = subscribe(a);
const first = await s1.next();
check(first.key === key && /^\d+$/.test(first.version), `A pushes the current value at once (version ${first.version})`);
const t1 = `Through gateway B ${Date.now()}`;
const v1 = await addTitle(b, t1);
let p = await s1.next();
while (newer(v1, p.version)) p = await s1.next();
check(p.version === v1 && has(p, t1), `a change made through B is pushed by A (version ${v1})`);
await s1.close();

// Resumed with the version it holds: nothing is resent; the next change is.
const s2 = subscribe(a, v1);
const t2 = `After the reconnect ${Date.now()}`;
const v2 = await addTitle(b, t2);
p = await s2.next();
check(newer(p.version, v1), `resumed with sinceVersion ${v1}, the first message is newer (${p.version}): nothing it held was resent`);
while (newer(v2, p.version)) p = await s2.next();
check(p.version === v2 && has(p, t2), 'and it is the change made meanwhile');
await s2.close();

// Missed several versions: the newest only, then the next change.
const missed = [];
let vLast;
for (let i = 0; i < 3; i++) {
  missed.push(`Missed ${i} ${Date.now()}`);
  vLast = await addTitle(b, missed[i]);
}
await servesVersion(a, vLast);
const s3 = subscribe(a, v2);
p = await s3.next();
check(p.version === vLast && missed.every((t) => has(p, t)), `having missed 3 versions, the client gets the newest (${vLast}) with all three titles`);
const t4 = `Next ${Date.now()}`;
const v4 = await addTitle(b, t4);
p = await s3.next();
check(p.version === v4 && has(p, t4), 'then the next version, none of the missed ones');
await s3.close();
