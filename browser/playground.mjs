// The playground renders with no request leaving the machine and no console
// error, and runs a query. Usage: node playground.mjs http://127.0.0.1:PORT
import { open, check } from './lib.mjs';

const base = process.argv[2];
const { browser, page, outside, consoleErrors } = await open();
try {
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-container', { timeout: 60000 });
  check(outside.length === 0, 'no request left the machine: ' + JSON.stringify(outside));
  check(consoleErrors.length === 0, 'no console error: ' + JSON.stringify(consoleErrors));
  const answer = await page.evaluate(async () => {
    const r = await fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    return r.json();
  });
  check(answer?.data?.__typename === 'Query', 'a query from the page is answered');
} finally {
  await browser.close();
}
