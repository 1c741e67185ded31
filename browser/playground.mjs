// The playground renders with no request leaving the machine and no console
// error, and runs a query. Usage: node playground.mjs http://127.0.0.1:PORT
import { open, check } from './lib.mjs';

const base = process.argv[2];
const { browser, page, outside, consoleErrors, failed } = await open();
try {
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-container', { timeout: 60000 });
  // A headless browser does not load the icon itself (a visible one does,
  // and logs a 404 when it is missing), and the test's request routing
  // fails a fetch of it from the page: asked from here.
  const href = await page.evaluate(() => document.querySelector('link[rel=icon]')?.href);
  const icon = href ? (await fetch(href)).status : 0;
  check(icon === 200, 'the favicon the page names is served: ' + href + ' ' + icon);
  // The page opens with a query that runs: Run shows data, no error.
  await page.click('.graphiql-execute-button');
  const result = () => page.evaluate(() => {
    const el = document.querySelector('.result-window .CodeMirror') || document.querySelector('.result-window');
    return el ? (el.CodeMirror ? el.CodeMirror.getValue() : el.textContent) : '';
  });
  let shown = '';
  for (let i = 0; i < 300 && !shown.includes('"data"'); i++) {
    shown = await result();
    if (!shown.includes('"data"')) await page.waitForTimeout(100);
  }
  check(shown.includes('"titleList"') && !shown.includes('"errors"'), 'the example query runs: ' + shown.slice(0, 300));
  check(outside.length === 0, 'no request left the machine: ' + JSON.stringify(outside));
  check(consoleErrors.length === 0, 'no console error: ' + JSON.stringify(consoleErrors));
  check(failed.length === 0, 'nothing the page loaded failed: ' + JSON.stringify(failed));
  const answer = await page.evaluate(async () => {
    const r = await fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    return r.json();
  });
  check(answer?.data?.__typename === 'Query', 'a query from the page is answered');
} finally {
  await browser.close();
}
