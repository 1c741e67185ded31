// The admin console in chromium: it loads with nothing from outside and no
// console error, its charts draw, a refresh from the page changes the
// product's version, and an invalidation by prefix from the page reaches a
// second gateway on the same store.
// Usage: node admin.mjs http://127.0.0.1:PORT_A http://127.0.0.1:PORT_B [screenshot.png]
import { open, check } from './lib.mjs';

const [a, b, shot] = process.argv.slice(2);
const keyInfo = async (base, key) => {
  const r = await fetch(`${base}/admin/api/key?key=${encodeURIComponent(key)}`);
  return { status: r.status, body: r.status === 200 ? await r.json() : null };
};
const until = async (what, fn, ms = 20000) => {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
};

// Reads while the page samples, so that the charts have rates to draw.
let reading = true;
const reads = (async () => {
  for (let i = 0; reading; i++) {
    // Mostly hits; every tenth a new author_stats key, a miss whose primer
    // reads title_list (an edge of the dependency graph).
    const key = i % 10 === 9 ? `author_stats/${1 + Math.floor(i / 10)}` : `title_list/${1 + (i % 50)}`;
    await fetch(`${a}/fetch?key=${key}`);
    await new Promise((r) => setTimeout(r, 20));
  }
})();

const { browser, page, outside, consoleErrors, failed } = await open();
try {
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.goto(a + '/admin', { waitUntil: 'load' });
  await page.waitForSelector('#products tbody tr[data-product="title_list"]', { timeout: 60000 });
  check(await page.isVisible('#open-banner'), 'the page says it is open (auth off)');
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 4, null, { timeout: 60000 });
  reading = false;
  await reads;

  // Charts: three uPlot canvases, each with its series drawn (pixels of
  // the series' colour, not only axes).
  const charts = await page.evaluate(() => [...document.querySelectorAll('.chart')].map((c) => {
    const cv = c.querySelector('canvas');
    if (!cv) return { id: c.id, drawn: 0 };
    const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++;
    return { id: c.id, drawn: n, w: cv.width };
  }));
  check(charts.length === 3 && charts.every((c) => c.drawn > 0), 'three charts drawn: ' + JSON.stringify(charts));
  const hitLine = await page.evaluate(() => {
    const cv = document.querySelector('#chart-reads canvas');
    const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    let n = 0; // the hits series is #2563eb
    for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 37) < 30 && Math.abs(d[i + 1] - 99) < 30 && Math.abs(d[i + 2] - 235) < 30 && d[i + 3] > 128) n++;
    return n;
  });
  check(hitLine > 10, 'the hits line is drawn (' + hitLine + ' pixels)');
  const rows = await page.$$eval('#products tbody tr', (trs) => trs.map((t) => t.dataset.product));
  check(rows.includes('top_authors') && rows.includes('author_stats'), 'the demo products are listed: ' + rows);
  await fetch(`${a}/fetch?key=pulse/1`);
  await page.waitForSelector('#products tr[data-product="pulse"] td.over', { timeout: 60000 });
  check(true, 'a product past its freshness target is shown in red');
  await page.waitForSelector('#graph svg path.reads', { timeout: 60000 });
  check(true, 'the dependency graph draws title_list -> author_stats');
  // The other gateway appears once the page has asked the cluster over the
  // change bus (the page polls): wait for it, however busy the machine is.
  await page.waitForFunction(() => document.querySelectorAll('#cluster tbody tr').length >= 2, null, { timeout: 90000 });
  const gws = await page.$$eval('#cluster tbody tr', (trs) => trs.length);
  check(gws === 2, 'the two gateways of the store are listed');
  check(await page.isVisible('#queue-depth'), 'the refresh queue is shown');

  // A refresh from the page changes the product's version.
  const before = await keyInfo(a, 'top_authors/10');
  check(before.status === 200, 'top_authors/10 is cached (warmed)');
  await page.fill('#key', 'top_authors/10');
  await page.click('button[data-act="refresh"]');
  await page.waitForFunction(() => document.querySelector('#action-result').textContent.includes('"versions"'), null, { timeout: 60000 });
  const after = await keyInfo(a, 'top_authors/10');
  check(after.body.version > before.body.version, `refresh moved the version ${before.body.version} -> ${after.body.version}`);
  await page.click('button[data-act="lookup"]');
  await page.waitForFunction((v) => document.querySelector('#action-result').textContent.includes(String(v)), after.body.version, { timeout: 60000 });
  check(true, 'the lookup shows the new version');

  // An invalidation by prefix, confirmed in a dialog, reaches gateway B.
  const onB = await keyInfo(b, 'title_list/42');
  check(onB.status === 200 && onB.body.inMemory, 'gateway B holds title_list/42 in memory');
  let dialog = '';
  page.once('dialog', (d) => { dialog = d.message(); d.accept(); });
  await page.fill('#prefix', 'title_list/4');
  await page.click('#prefix-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#action-result').textContent.includes('"done"'), null, { timeout: 60000 });
  check(/touches \d+ keys/.test(dialog), 'the page asked to confirm: ' + dialog.split('\n')[0]);
  await until('gateway B to drop title_list/42', async () => {
    const k = await keyInfo(b, 'title_list/42');
    return k.status === 404 || k.body.version !== onB.body.version;
  });
  check(true, 'gateway B no longer serves its copy of title_list/42');

  if (shot) {
    await page.waitForTimeout(2500); // one more sample after the actions
    await page.screenshot({ path: shot, fullPage: true });
    console.log('screenshot: ' + shot);
  }
  check(outside.length === 0, 'no request left the machine: ' + JSON.stringify(outside));
  check(consoleErrors.length === 0, 'no console error: ' + JSON.stringify(consoleErrors));
  check(failed.length === 0, 'nothing the page loaded failed (a favicon included): ' + JSON.stringify(failed));
} finally {
  reading = false;
  await browser.close();
}
