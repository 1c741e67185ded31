// A subscription runs from the playground: GraphiQL's fetcher opens the
// gateway's WebSocket (graphql-transport-ws, GraphiQL's bundled graphql-ws
// client) with the headers pane's token as connection_init's payload; the
// result pane shows the current value, then the new version after an
// update made elsewhere, with no reload.
// Usage: node playground-subscription.mjs http://127.0.0.1:PORT TOKEN [SCREENSHOT.png]
import { open, check } from './lib.mjs';

const [base, token, screenshot] = process.argv.slice(2);
const query = 'subscription { authorStats(authorId: 5) { authorId titleCount } }';
const headers = JSON.stringify({ Authorization: 'Bearer ' + token });
const { browser, context, page, outside, consoleErrors } = await open();
try {
  // GraphiQL reads its editors' contents from its storage.
  await context.addInitScript(([q, h]) => {
    localStorage.setItem('graphiql:query', q);
    localStorage.setItem('graphiql:headers', h);
  }, [query, headers]);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-container', { timeout: 60000 });
  await page.click('.graphiql-execute-button');

  const result = () => page.evaluate(() => {
    const el = document.querySelector('.result-window .CodeMirror') || document.querySelector('.result-window');
    return el ? (el.CodeMirror ? el.CodeMirror.getValue() : el.textContent) : '';
  });
  const count = async () => {
    const m = /"titleCount":\s*(\d+)/.exec(await result());
    return m ? Number(m[1]) : null;
  };
  let before = null;
  for (let i = 0; i < 300 && before === null; i++) {
    before = await count();
    if (before === null) await page.waitForTimeout(100);
  }
  check(before !== null, 'the subscription shows the current value: ' + (await result()).slice(0, 200));
  check(sockets.some((u) => u.startsWith(base.replace(/^http/, 'ws') + '/graphql')), 'over the gateway\'s WebSocket: ' + JSON.stringify(sockets));

  // An update through the HTTP API (as another client would make it).
  const r = await fetch(base + '/update', {
    method: 'POST',
    headers: { 'content-type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify({ name: 'add_title', input: { authorId: 5, title: 'From the playground test', year: 2026 } }),
  });
  check(r.ok, 'the update is accepted: ' + r.status);
  let after = before;
  for (let i = 0; i < 300 && after === before; i++) {
    await page.waitForTimeout(100);
    after = await count();
  }
  check(after === before + 1, `the pushed version shows in the result pane (${before} -> ${after})`);
  if (screenshot) await page.screenshot({ path: screenshot });
  check(outside.length === 0, 'no request left the machine: ' + JSON.stringify(outside));
  check(consoleErrors.length === 0, 'no console error: ' + JSON.stringify(consoleErrors));
} finally {
  await browser.close();
}
