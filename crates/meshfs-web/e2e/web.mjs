// Browser test of the meshfs web UI, run by crates/meshfs/tests/web.rs (which starts the nodes).
// Headless Debian chromium driven by playwright-core: never a browser download.
//
// Environment (set by the Rust test):
//   WEB_URL      the UI of node LOCAL, e.g. http://127.0.0.1:1234/
//   LOCAL, REMOTE  node names (REMOTE given to LOCAL with --node)
//   LOCAL_DIR    LOCAL's share folder (this script creates a file there)
//   HOSTILE      a file name with HTML in it, present in LOCAL's share
//   VIDEO        a video file name in REMOTE's share
//   OUT_DIR      where the screenshots go
//   CHROMIUM     the browser (default /usr/bin/chromium)
import { check, env, run } from './browser.mjs';
import fs from 'node:fs';
import path from 'node:path';

const WEB = env('WEB_URL');
const LOCAL = env('LOCAL');
const REMOTE = env('REMOTE');
const LOCAL_DIR = env('LOCAL_DIR');
const HOSTILE = env('HOSTILE');
const VIDEO = env('VIDEO');
const OUT = env('OUT_DIR');

// The local node's event state once its watcher has settled (`live` or `unavailable`).
async function nodeEvents(name) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const nodes = await (await fetch(WEB + 'api/nodes')).json();
    const n = nodes.find((x) => x.name === name);
    if (n && n.events !== 'unknown') return n.events;
    if (Date.now() > deadline) throw new Error(`events of ${name} still unknown after 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

await run(['--autoplay-policy=no-user-gesture-required'], async (context, problems) => {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog opened: ${d.message()}`);
    d.dismiss();
  });

  // 1. The node list loads, with both nodes online.
  await page.goto(WEB + '#/');
  const remoteRow = page.locator(`#nodes tr[data-node="${REMOTE}"]`);
  await remoteRow.locator('.badge.online').waitFor({ timeout: 10000 });
  await page.locator(`#nodes tr[data-node="${LOCAL}"]`).waitFor();
  check(true, 'node list shows both nodes, the remote one online');
  // Every column has its header, the error column's included ("Last error", issue 16).
  const headers = await page.locator('#nodes thead th').allTextContents();
  const cells = await remoteRow.locator('td').count();
  check(headers.length === cells && headers[cells - 1] === 'Last error',
    `node list headers ${JSON.stringify(headers)} name its ${cells} columns, the last "Last error"`);
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, 'nodes.png') });

  // 2. A remote folder lists its files; sort and filter work.
  await remoteRow.locator('a').click();
  await page.locator(`#rows tr[data-name="${VIDEO}"]`).waitFor({ timeout: 10000 });
  const names = async () => page.locator('#rows tr').evaluateAll((rows) => rows.map((r) => r.dataset.name));
  check((await names()).includes('notes.txt'), 'remote folder lists its files');
  await page.locator('#sort-size button').click();
  const bySizeAsc = await names();
  await page.locator('#sort-size button').click();
  const bySizeDesc = await names();
  check(bySizeAsc[bySizeAsc.length - 1] === VIDEO && bySizeDesc[0] === VIDEO, 'sorting by size (both ways)');
  await page.locator('#filter').fill('notes');
  check(JSON.stringify(await names()) === '["notes.txt"]', 'filter box narrows the listing');
  await page.locator('#filter').fill('');

  // 3. A file name with HTML in it is shown as text, never run.
  await page.goto(WEB + '#/ls/' + encodeURIComponent(LOCAL) + '/');
  const hostileLink = page.locator('#rows tr a', { hasText: HOSTILE });
  await hostileLink.waitFor({ timeout: 10000 });
  check((await hostileLink.textContent()) === HOSTILE, 'HTML-named file shown as its literal name');
  check((await page.locator('#rows img').count()) === 0, 'no element was made from the name');
  check((await page.evaluate(() => window.__pwned)) === undefined, 'no script from the name ran');

  // 4. A file created on the node appears without reload within 2 s (live events). While a
  //    node's file server offers no `subscribe`, the page says "events unavailable" and the
  //    Refresh button shows the new file instead: checked, and noted in the output.
  const events = await nodeEvents(LOCAL);
  await page.locator('#live-note').filter({ hasText: events === 'live' ? /^live$/ : /unavailable/ }).waitFor({ timeout: 5000 });
  await page.evaluate(() => { window.__sameDocument = true; });
  const t0 = Date.now();
  fs.writeFileSync(path.join(LOCAL_DIR, 'fresh-clip.txt'), 'just recorded\n');
  if (events === 'live') {
    await page.locator('#rows tr[data-name="fresh-clip.txt"]').waitFor({ timeout: 2000 });
    const took = Date.now() - t0;
    check(took < 2000, `new file appeared without reload in ${took} ms`);
    await page.locator('#events li', { hasText: 'fresh-clip.txt' }).first().waitFor({ timeout: 2000 });
    check(true, 'event feed lists the new file');
    // A file page follows its file growing (a recording in progress).
    await page.goto(WEB + '#/file/' + encodeURIComponent(LOCAL) + '/fresh-clip.txt');
    await page.locator('#file-size', { hasText: '(14 bytes)' }).waitFor({ timeout: 5000 });
    fs.appendFileSync(path.join(LOCAL_DIR, 'fresh-clip.txt'), 'and more\n');
    await page.locator('#file-size', { hasText: '(23 bytes)' }).waitFor({ timeout: 2000 });
    check(true, 'file page shows the file growing');
  } else {
    console.log(`NOTE: ${LOCAL} offers no events (${events}): checking Refresh instead of live updates`);
    check((await page.locator('#feed-status').textContent()) === 'events unavailable', 'feed says events unavailable');
    await page.locator('#refresh').click();
    await page.locator('#rows tr[data-name="fresh-clip.txt"]').waitFor({ timeout: 2000 });
    check(true, 'Refresh shows the new file');
  }
  check(await page.evaluate(() => window.__sameDocument === true), 'no reload happened');

  // 5. A video on the remote node plays and seeks.
  await page.goto(WEB + '#/file/' + encodeURIComponent(REMOTE) + '/' + encodeURIComponent(VIDEO));
  const video = page.locator('video#player');
  await video.waitFor({ timeout: 10000 });
  const download = await page.locator('#download').getAttribute('href');
  check(download.startsWith('/files/' + encodeURIComponent(REMOTE) + '/'), 'download link points at /files/');
  await page.waitForFunction(() => {
    const v = document.querySelector('video#player');
    return v && v.readyState >= 1 && Number.isFinite(v.duration) && v.duration > 0;
  }, null, { timeout: 15000 });
  const duration = await video.evaluate((v) => v.duration);
  await video.evaluate((v) => { v.muted = true; return v.play(); });
  await page.waitForFunction(() => document.querySelector('video#player').currentTime > 0.2, null, { timeout: 15000 });
  check(true, `remote video plays (duration ${duration.toFixed(2)} s)`);
  const target = duration / 2;
  await video.evaluate((v, t) => new Promise((resolve, reject) => {
    v.addEventListener('seeked', () => resolve(), { once: true });
    v.addEventListener('error', () => reject(new Error('video error ' + (v.error && v.error.code))), { once: true });
    v.currentTime = t;
  }), target);
  const afterSeek = await video.evaluate((v) => v.currentTime);
  check(Math.abs(afterSeek - target) < 0.6, `seeked to the middle (${afterSeek.toFixed(2)} s)`);
  await page.waitForFunction((t) => document.querySelector('video#player').currentTime > t + 0.3, afterSeek, { timeout: 15000 });
  const moved = await video.evaluate((v) => v.currentTime);
  check(moved > afterSeek, `playback moves on after the seek (${moved.toFixed(2)} s)`);
  await page.screenshot({ path: path.join(OUT, 'video.png') });

  // 6. Opened directly (the "Open" link), the video plays in its own tab, and a hostile HTML
  //    file from a share runs no script.
  const direct = await context.newPage();
  direct.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`direct console ${m.type()}: ${m.text()}`);
  });
  await direct.goto(WEB + 'files/' + encodeURIComponent(REMOTE) + '/' + encodeURIComponent(VIDEO));
  await direct.waitForFunction(() => {
    const v = document.querySelector('video');
    return v && v.readyState >= 1 && v.duration > 0;
  }, null, { timeout: 15000 });
  check(true, 'video opened directly loads in its own tab');
  await direct.goto(WEB + 'files/' + encodeURIComponent(LOCAL) + '/evil.html');
  await direct.locator('p#evil').waitFor({ timeout: 5000 });
  check((await direct.title()) === 'inert', `a share's HTML file runs no script (title ${await direct.title()})`);
  // The blocked inline script is reported by the browser as a console error: expected here.
  const blocked = problems.filter((p) => p.startsWith('direct console') && p.includes('sandbox'));
  for (const b of blocked) problems.splice(problems.indexOf(b), 1);
  await direct.close();

  await page.goto(WEB + '#/ls/' + encodeURIComponent(LOCAL) + '/');
  await page.locator('#rows tr[data-name="fresh-clip.txt"]').waitFor({ timeout: 5000 });
  await page.screenshot({ path: path.join(OUT, 'listing.png') });
  console.log(`screenshots in ${OUT}`);
});
