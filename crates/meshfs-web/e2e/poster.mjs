// Browser test run by crates/meshfs/tests/webui.rs: the gallery draws the poster of a long
// recording without reading the recording. The page is opened through a relay that counts
// the bytes the node sends (the Rust test asserts the bound); this script shows the folder
// as a gallery, waits for the poster, and keeps the page open a while so that a browser
// still reading the video behind the poster would be counted.
//
// Environment (set by the Rust test):
//   WEB_URL   the UI, through the counting relay, e.g. http://127.0.0.1:1234/
//   NODE      the node's name; its share's long/ folder holds VIDEO
//   VIDEO     the long recording's name
//   OUT_DIR   where the screenshot goes
//   CHROMIUM  the browser (default /usr/bin/chromium)
import { check, env, run } from './browser.mjs';
import path from 'node:path';

const WEB = env('WEB_URL');
const N = encodeURIComponent(env('NODE'));
const VIDEO = env('VIDEO');
const OUT = env('OUT_DIR');
// How long the page stays open after its poster is drawn: reading that went on behind the
// poster would go on through this window.
const WATCH_MS = 3000;

await run([], async (context, problems) => {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  await page.goto(WEB + '#/ls/' + N + '/long/');
  await page.locator(`#rows tr[data-name="${VIDEO}"]`).waitFor({ timeout: 10000 });
  await page.locator('#mode-gallery').click();
  const poster = page.locator(`.tile.video[data-name="${VIDEO}"] canvas.poster`);
  await poster.waitFor({ timeout: 30000 });
  // A frame, not a blank canvas: its pixels are not all one value.
  const distinct = await poster.evaluate((cv) => {
    const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    return new Set(d).size;
  });
  check(distinct > 8, `the poster of ${VIDEO} is a drawn frame (${distinct} distinct channel values)`);
  await page.waitForTimeout(WATCH_MS);
  await page.screenshot({ path: path.join(OUT, 'poster.png') });
  check(true, `the page stayed open ${WATCH_MS} ms after the poster`);
});
