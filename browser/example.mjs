// An example app (examples/<name>, built and served from another origin
// than the gateway) in headless chromium. First with its subscriptions off
// (?live=0, no WebSocket at all), so that only the typed mutation's payload
// can update the page: it shows the author's titles with their freshness,
// and a title added with the form appears with no refetch (the mutation is
// the only request). Then live: a row inserted in Postgres appears within a
// second, pushed over the subscription, with no reload and no request.
// Screenshots go to the given directory.
//   node example.mjs APP_URL INSERT_URL SHOT_DIR
import { open, check } from './lib.mjs';

const [appURL, insertURL, shots] = process.argv.slice(2);
const { browser, page, outside, consoleErrors } = await open();
try {
  // Every GraphQL request over HTTP, by operation name.
  const ops = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname !== '/graphql' || r.method() !== 'POST') return;
    try {
      ops.push(r.postDataJSON().operationName || 'anonymous');
    } catch {
      ops.push('unreadable');
    }
  });
  let navigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));

  await page.goto(appURL + '&live=0');
  const list = page.getByTestId('titles');
  const items = list.locator('li');
  await items.first().waitFor({ timeout: 60000 });
  const n0 = await items.count();
  check(n0 > 0, `the page shows the author's ${n0} titles`);
  const v0 = (await page.getByTestId('version').textContent()).trim();
  check(/^\d+$/.test(v0), `it shows the list's version (${v0})`);
  check(['fresh', 'stale'].includes((await page.getByTestId('stale').textContent()).trim()), 'and whether it is stale');
  const stats0 = await page.getByTestId('stats').textContent();
  check(stats0.includes(`${n0} titles`), `the statistics agree: ${stats0}`);
  check((await page.getByTestId('live').textContent()).trim() === 'not subscribed', 'with its subscriptions off');
  await page.screenshot({ path: `${shots}/1-loaded.png`, fullPage: true });

  // Add a title through the typed mutation.
  const before = ops.length;
  const added = `Added in the browser ${Date.now()}`;
  await page.getByLabel('title').fill(added);
  await page.getByLabel('year').fill('2099');
  await page.getByRole('button', { name: 'Add title' }).click();
  await list.getByText(added).waitFor({ timeout: 60000 });
  check((await items.count()) === n0 + 1, 'the new title is in the list (read-your-writes)');
  await page.getByTestId('stats').getByText(`${n0 + 1} titles`).waitFor({ timeout: 60000 });
  check(true, 'the statistics count it: AuthorStats replaced by its identity (authorId)');
  const v1 = (await page.getByTestId('version').textContent()).trim();
  check(BigInt(v1) > BigInt(v0), `the freshness shows the new version (${v0} -> ${v1}): Product replaced by its key`);
  const sent = ops.slice(before);
  check(sent.length === 1 && sent[0] === 'AddTitle', `the mutation was the only request, no refetch (sent: ${sent.join(', ')})`);
  check(sockets.length === 0, `no WebSocket was opened: the payload alone updated the page (${sockets.join(', ')})`);
  await page.screenshot({ path: `${shots}/2-added.png`, fullPage: true });

  // Live: the same app with its subscriptions.
  await page.goto(appURL);
  await items.first().waitFor({ timeout: 60000 });
  await page.getByTestId('live').getByText('live', { exact: true }).waitFor({ timeout: 60000 });
  check(sockets.length === 1, `the subscriptions delivered their first value over one WebSocket (${sockets.join(', ')})`);
  check((await items.count()) === n0 + 1, 'the added title is still there');
  const navigated = navigations;
  const requested = ops.length;

  // A row inserted with SQL, nobody telling the gateway: pushed to the page.
  await page.evaluate(() => { window.kckSameDocument = true; });
  const inserted = `Inserted with SQL ${Date.now()}`;
  const res = await fetch(insertURL, { method: 'POST', body: inserted });
  check(res.ok, 'the row is committed');
  const committed = Date.now();
  await list.getByText(inserted).waitFor({ timeout: 60000 });
  const ms = Date.now() - committed;
  console.log(`pushed: ${ms} ms from commit to the page`);
  check(ms <= 1000, `the page shows the inserted row within a second (${ms} ms)`);
  check((await items.count()) === n0 + 2, 'both new titles are listed');
  check(await page.evaluate(() => window.kckSameDocument === true) && navigations === navigated, 'with no reload');
  check(ops.length === requested, 'and no request over HTTP: it came over the subscription');
  await page.screenshot({ path: `${shots}/3-live.png`, fullPage: true });

  check(outside.length === 0, `nothing loaded from outside (${outside.join(', ')})`);
  check(consoleErrors.length === 0, `no console error (${consoleErrors.join(' | ')})`);
} finally {
  await browser.close();
}
