// What the browser tests share: headless Debian chromium through
// playwright-core, every request leaving the machine refused and recorded,
// console errors and page errors collected.
import { chromium } from 'playwright-core';

const local = new Set(['localhost', '127.0.0.1', '[::1]']);

// open launches chromium and returns {browser, page, outside, consoleErrors,
// failed}. outside lists URLs the page tried to load from another host
// (refused); failed, what the page loaded that answered 4xx or 5xx.
export async function open() {
  const browser = await chromium.launch({
    executablePath: process.env.KCK_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext();
  const outside = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.protocol === 'blob:' || local.has(u.hostname)) {
      return route.continue();
    }
    outside.push(u.href);
    return route.abort();
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Answers of 4xx or 5xx to what the page loaded itself (a favicon's 404
  // is a console error in a visible browser, not always in a headless one).
  const failed = [];
  page.on('response', (r) => {
    if (r.status() >= 400 && r.request().resourceType() !== 'fetch' && r.request().resourceType() !== 'xhr') {
      failed.push(r.status() + ' ' + r.url());
    }
  });
  return { browser, context, page, outside, consoleErrors, failed };
}

// check throws when cond is false, so the script exits non-zero.
export function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok: ' + what);
}
