// The admin console with auth on, in chromium: opening /admin leads to the
// sign-in page; with a kck:admin token the console loads (not marked
// open), its actions work through the cookie, and nothing leaves the
// machine. Usage: node admin-auth.mjs http://127.0.0.1:PORT TOKEN
import { open, check } from './lib.mjs';

const [base, token] = process.argv.slice(2);
const { browser, page, outside, consoleErrors } = await open();
try {
  await page.goto(base + '/admin', { waitUntil: 'load' });
  check(new URL(page.url()).pathname === '/admin/login', 'without a token /admin leads to the sign-in page');
  await page.fill('textarea[name="token"]', token);
  await Promise.all([page.waitForURL(base + '/admin'), page.click('button[type="submit"]')]);
  await page.waitForSelector('#products tbody tr[data-product="top_authors"]', { timeout: 60000 });
  check(!(await page.isVisible('#open-banner')), 'the page does not say it is open');
  await page.fill('#key', 'top_authors/10');
  await page.click('button[data-act="refresh"]');
  await page.waitForFunction(() => document.querySelector('#action-result').textContent.includes('"versions"'), null, { timeout: 60000 });
  check(true, 'a refresh from the page is done with the cookie');
  check(outside.length === 0, 'no request left the machine: ' + JSON.stringify(outside));
  check(consoleErrors.length === 0, 'no console error: ' + JSON.stringify(consoleErrors));
} finally {
  await browser.close();
}
