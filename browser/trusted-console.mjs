// An example app on trusted documents (examples/react-codegen) against a
// gateway in enforce mode: the page's own documents run (by hash), and a
// query typed into the browser's console, from the app's own origin, is
// refused with PERSISTED_QUERY_NOT_ALLOWED, over POST, GET and WebSocket.
//   node trusted-console.mjs APP_URL
import { open, check } from './lib.mjs';

const [appURL] = process.argv.slice(2);
const gateway = new URL(appURL).searchParams.get('gateway');
const { browser, page, outside, consoleErrors } = await open();
try {
  const sent = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/graphql') sent.push({ method: r.method(), url: r.url(), body: r.postData() || '' });
  });
  await page.goto(appURL + '&live=0');
  await page.getByTestId('titles').locator('li').first().waitFor({ timeout: 60000 });
  check(sent.length > 0 && sent.every((s) => !s.body.includes('titleList') && !decodeURIComponent(s.url).includes('titleList')),
    'the page named its documents by hash only: ' + JSON.stringify(sent.map((s) => s.method + ' ' + s.url.slice(0, 120))));

  // What someone types into the console.
  const typed = await page.evaluate(async (gw) => {
    const post = await fetch(gw + '/graphql', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ authorIds }' }) }).then((r) => r.json());
    const get = await fetch(gw + '/graphql?query=' + encodeURIComponent('{ topAuthors(n: 100) { name } }')).then((r) => r.json());
    const ws = await new Promise((resolve) => {
      const s = new WebSocket(gw.replace(/^http/, 'ws') + '/graphql', 'graphql-transport-ws');
      s.onopen = () => s.send(JSON.stringify({ type: 'connection_init' }));
      s.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.type === 'connection_ack') {
          s.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { authorIds }' } }));
        } else if (msg.id === '1') {
          resolve(msg);
          s.close();
        }
      };
      s.onerror = () => resolve({ type: 'socket error' });
    });
    return { post, get, ws };
  }, gateway);
  const code = (r) => r?.errors?.[0]?.extensions?.code;
  check(code(typed.post) === 'PERSISTED_QUERY_NOT_ALLOWED' && !('data' in typed.post), 'a typed POST is refused: ' + JSON.stringify(typed.post));
  check(code(typed.get) === 'PERSISTED_QUERY_NOT_ALLOWED', 'a typed GET is refused: ' + JSON.stringify(typed.get));
  check(typed.ws.type === 'error' && typed.ws.payload?.[0]?.extensions?.code === 'PERSISTED_QUERY_NOT_ALLOWED',
    'a typed subscription is refused: ' + JSON.stringify(typed.ws));
  check(outside.length === 0, `nothing loaded from outside (${outside.join(', ')})`);
  check(consoleErrors.length === 0, `no console error (${consoleErrors.join(' | ')})`);
} finally {
  await browser.close();
}
