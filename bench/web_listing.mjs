// The browser side of bench/web_listing.py: open a big folder's page in headless Chromium and
// time it, for the meshfs web UI and for a peer's directory listing, in one browser. Prints one
// JSON object of milliseconds (arrays, one value per run).
//   MESHFS_URL  the folder in the meshfs UI (http://HOST:PORT/#/ls/NODE/big/)
//   PEER_URL    the same folder's listing by the peer (http://HOST:PORT/big/)
//   FILES, RUNS
import { chromium } from '../crates/meshfs-web/e2e/node_modules/playwright-core/index.mjs';

const { MESHFS_URL, PEER_URL } = process.env;
const FILES = Number(process.env.FILES);
const RUNS = Number(process.env.RUNS || 3);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
// Milliseconds since navigation start, taken after the next two frames (what is drawn is on
// screen).
const painted = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now())))));
// The time of one click on a sort button until the frame after it.
const clickTime = (selector) => page.evaluate((sel) => new Promise((r) => {
  const t0 = performance.now();
  document.querySelector(sel).click();
  requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now() - t0)));
}), selector);

const out = { open: [], fetch: [], render: [], sort_size: [], sort_name: [], sort_type: [], filter: [], scroll: [], peer_open: [] };
for (let i = 0; i < RUNS; i++) {
  await page.goto('about:blank');
  await page.goto(MESHFS_URL);
  await page.waitForFunction((n) => {
    const c = document.getElementById('count');
    return c && c.textContent.startsWith(n + ' of ' + n) && document.querySelector('#rows tr');
  }, FILES, { timeout: 60000, polling: 'raf' });
  out.open.push(await painted());
  // Split: the request for the listing (server and transfer), and from its parsed JSON to the
  // rows drawn (the page's own work).
  const split = await page.evaluate(() => {
    const ls = performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/ls/')).pop();
    const json = performance.getEntriesByName('meshfs-listing-json').pop();
    const drawn = performance.getEntriesByName('meshfs-listing-drawn').pop();
    return { fetch: ls.responseEnd - ls.startTime, render: drawn.startTime - json.startTime };
  });
  out.fetch.push(split.fetch);
  out.render.push(split.render);
  out.sort_size.push(await clickTime('#sort-size button'));
  out.sort_type.push(await clickTime('#sort-type button'));
  out.sort_name.push(await clickTime('#sort-name button'));
  out.filter.push(await page.evaluate(() => new Promise((r) => {
    const f = document.getElementById('filter');
    const t0 = performance.now();
    f.value = '7';
    f.dispatchEvent(new Event('input'));
    requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now() - t0)));
  })));
  out.scroll.push(await page.evaluate(() => new Promise((r) => {
    const t0 = performance.now();
    window.scrollTo(0, document.body.scrollHeight / 2);
    requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now() - t0)));
  })));
  const rows = await page.locator('#rows tr').count();
  if (rows > 500) throw new Error(`${rows} rows in the DOM: the listing is not virtualised`);

  await page.goto('about:blank');
  await page.goto(PEER_URL, { waitUntil: 'load', timeout: 60000 });
  out.peer_open.push(await painted());
}
console.log(JSON.stringify(out));
await browser.close();
