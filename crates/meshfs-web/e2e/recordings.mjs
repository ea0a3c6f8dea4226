// Browser test of the web UI made for recordings, run by crates/meshfs/tests/webui.rs: the
// gallery (poster frames drawn from the videos themselves), the file page (player width, text
// preview, no "null"), the events feed after a reload, zip downloads, a 390 px phone screen,
// and the disk-full notice. Headless Debian chromium driven by playwright-core.
//
// Environment (set by the Rust test):
//   WEB_URL     the UI of node LOCAL, e.g. http://127.0.0.1:1234/
//   LOCAL       its name; LOCAL_DIR its share, holding notes.txt, an empty clips/ folder and
//               big/, BIG files f00000… of 0, 1, 2… bytes
//   OUT_DIR     where the screenshots and the downloaded zips go
//   FULL_URL    (optional) the UI of a node whose disk is full
//   CHROMIUM    the browser (default /usr/bin/chromium)
import { check, env, run } from './browser.mjs';
import fs from 'node:fs';
import path from 'node:path';

const WEB = env('WEB_URL');
const LOCAL = env('LOCAL');
const LOCAL_DIR = env('LOCAL_DIR');
const OUT = env('OUT_DIR');
const FULL = process.env.FULL_URL;
const BIG = Number(env('BIG'));
const N = encodeURIComponent(LOCAL);

// The clips the test records, each one colour (a poster must show its own clip's colour).
const CLIPS = [
  { name: 'cam-front.webm', rgb: [200, 40, 40] },
  { name: 'cam-garden.webm', rgb: [40, 160, 60] },
  { name: 'cam-door.webm', rgb: [40, 70, 200] },
];

// Record 160×120 WebM clips in the browser itself (MediaRecorder on a canvas): real video
// files, made without any tool on the machine.
async function recordClips(page) {
  return page.evaluate(async (clips) => {
    const one = ({ rgb, name }) => new Promise((resolve, reject) => {
      const c = document.createElement('canvas');
      c.width = 160;
      c.height = 120;
      const g = c.getContext('2d');
      let frame = 0;
      const draw = () => {
        g.fillStyle = `rgb(${rgb.join(',')})`;
        g.fillRect(0, 0, 160, 120);
        g.fillStyle = '#fff';
        g.fillRect(8, 96, 30 + (frame++ % 100), 12);
        g.font = '14px sans-serif';
        g.fillText(name.replace('.webm', ''), 8, 20);
      };
      draw();
      const rec = new MediaRecorder(c.captureStream(15), { mimeType: 'video/webm;codecs=vp8' });
      const parts = [];
      rec.ondataavailable = (e) => parts.push(e.data);
      rec.onerror = (e) => reject(e.error);
      rec.onstop = async () => {
        const buf = new Uint8Array(await new Blob(parts).arrayBuffer());
        let bin = '';
        for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
        resolve(btoa(bin));
      };
      const timer = setInterval(draw, 60);
      rec.start();
      setTimeout(() => { clearInterval(timer); rec.stop(); }, 1500);
    });
    return Promise.all(clips.map(one));
  }, CLIPS);
}

// A PNG still, drawn in the browser.
async function drawStill(page) {
  return page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 320;
    c.height = 200;
    const g = c.getContext('2d');
    const grad = g.createLinearGradient(0, 0, 320, 200);
    grad.addColorStop(0, '#f0a020');
    grad.addColorStop(1, '#803090');
    g.fillStyle = grad;
    g.fillRect(0, 0, 320, 200);
    return c.toDataURL('image/png').split(',')[1];
  });
}

// Nothing on the page reaches past the right edge, and the page does not scroll sideways.
async function fitsWidth(page, width, what) {
  const over = await page.evaluate((w) => {
    const bad = [];
    if (document.documentElement.scrollWidth > w) bad.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
    for (const e of document.querySelectorAll('header *, #view *, #disk-full')) {
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue; // not shown
      if (r.right > w + 0.5 || r.left < -0.5) bad.push(`${e.tagName.toLowerCase()}#${e.id}.${e.className} ${(e.textContent || '').slice(0, 30)}: ${Math.round(r.left)}–${Math.round(r.right)}`);
    }
    return bad;
  }, width);
  check(over.length === 0, `${what} fits ${width} px: ${JSON.stringify(over.slice(0, 5))}`);
}

await run(['--autoplay-policy=no-user-gesture-required'], async (context, problems) => {
  fs.mkdirSync(OUT, { recursive: true });
  const page = context.pages()[0] || (await context.newPage());
  const watch = (p, tag) => {
    p.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${tag} console ${m.type()}: ${m.text()}`);
    });
    p.on('pageerror', (e) => problems.push(`${tag} page error: ${e.message}`));
  };
  watch(page, 'desktop');

  // 0. The recordings: three clips and a still, written into the node's share.
  await page.goto(WEB + '#/');
  const clips = await recordClips(page);
  clips.forEach((b64, i) => fs.writeFileSync(path.join(LOCAL_DIR, 'clips', CLIPS[i].name), Buffer.from(b64, 'base64')));
  fs.writeFileSync(path.join(LOCAL_DIR, 'clips', 'snapshot.png'), Buffer.from(await drawStill(page), 'base64'));
  fs.writeFileSync(path.join(LOCAL_DIR, 'clips', 'motion.log'), 'motion at 08:00\nmotion at 08:05\n');
  check(true, `recorded ${clips.length} clips in the browser`);

  // 1. The gallery: a poster for each clip, in that clip's colour, and the still as an image.
  await page.goto(WEB + '#/ls/' + N + '/clips/');
  await page.locator('#rows tr[data-name="cam-door.webm"]').waitFor({ timeout: 10000 });
  await page.locator('#mode-gallery').click();
  await page.locator('.tile.video canvas.poster').nth(CLIPS.length - 1).waitFor({ timeout: 20000 });
  for (const c of CLIPS) {
    const px = await page.locator(`.tile[data-name="${c.name}"] canvas.poster`).evaluate((cv) => {
      const d = cv.getContext('2d').getImageData(cv.width / 2, cv.height / 2 - 10, 1, 1).data;
      return [d[0], d[1], d[2]];
    });
    const near = px.every((v, i) => Math.abs(v - c.rgb[i]) < 60);
    check(near, `poster of ${c.name} shows its own frame (centre ${px}, clip ${c.rgb})`);
  }
  await page.waitForFunction(() => {
    const img = document.querySelector('.tile[data-name="snapshot.png"] img');
    return img && img.complete && img.naturalWidth === 320;
  }, null, { timeout: 10000 });
  check(true, 'the still is shown as an image tile');
  check((await page.locator('.tile.other[data-name="motion.log"]').count()) === 1, 'other files get a plain tile');
  await page.screenshot({ path: path.join(OUT, 'gallery.png') });
  // The choice is remembered.
  await page.reload();
  await page.locator('#gallery .tile').first().waitFor({ timeout: 10000 });
  check(true, 'the gallery stays chosen after a reload');
  await page.locator('#mode-table').click();
  await page.locator('#rows tr[data-name="cam-door.webm"]').waitFor({ timeout: 5000 });

  // 1b. A big folder: only the rows on screen exist, and sorting and scrolling still reach
  //     every entry.
  await page.goto(WEB + '#/ls/' + N + '/big/');
  await page.locator('#count', { hasText: `${BIG} of ${BIG}` }).waitFor({ timeout: 20000 });
  const drawnRows = await page.locator('#rows tr').count();
  check(drawnRows > 0 && drawnRows < 300, `${drawnRows} rows drawn for ${BIG} entries`);
  await page.locator('#sort-size button').click();
  await page.locator('#sort-size button').click();
  const last = `f${String(BIG - 1).padStart(5, '0')}`;
  check((await page.locator('#rows tr').first().getAttribute('data-name')) === last, `sorted by size, largest first (${last})`);
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await page.locator('#rows tr[data-name="f00000"]').waitFor({ timeout: 5000 });
  check(true, 'scrolled to the end, the smallest file is drawn');
  await page.evaluate(() => window.scrollTo(0, 0));

  // 2. The file page: the 160×120 clip fills the width; a text file is previewed; no "null".
  await page.goto(WEB + '#/file/' + N + '/clips/cam-front.webm');
  await page.waitForFunction(() => {
    const v = document.querySelector('video#player');
    return v && v.readyState >= 1 && v.videoWidth > 0;
  }, null, { timeout: 15000 });
  const sizes = await page.evaluate(() => ({
    player: document.querySelector('video#player').getBoundingClientRect().width,
    main: document.querySelector('#view').clientWidth,
    intrinsic: document.querySelector('video#player').videoWidth,
  }));
  check(sizes.intrinsic === 160 && sizes.player >= sizes.main * 0.9,
    `the player fills the page width (${Math.round(sizes.player)} of ${sizes.main} px, clip ${sizes.intrinsic} px wide)`);
  await page.screenshot({ path: path.join(OUT, 'player.png') });
  await page.goto(WEB + '#/file/' + N + '/notes.txt');
  await page.locator('#text-preview', { hasText: 'camera notes' }).waitFor({ timeout: 5000 });
  const fileView = await page.locator('#view').innerText();
  check(!/\bnull\b/.test(fileView), 'no literal null on a text file\'s page');
  check((await page.locator('#player').count()) === 0, 'no player for a text file');
  await page.goto(WEB + '#/file/' + N + '/clips/motion.log');
  await page.locator('#file-name', { hasText: 'motion.log' }).waitFor({ timeout: 5000 });
  check(!/\bnull\b/.test(await page.locator('#view').innerText()), 'no literal null on the page of a file that is not media');

  // 3. The events feed: paths are links, and the feed survives a reload.
  const live = await page.waitForFunction(async (name) => {
    const nodes = await (await fetch('/api/nodes')).json();
    const n = nodes.find((x) => x.name === name);
    return n && n.events !== 'unknown' ? n.events : false;
  }, LOCAL, { timeout: 10000 });
  if ((await live.jsonValue()) === 'live') {
    fs.writeFileSync(path.join(LOCAL_DIR, 'clips', 'late-clip.txt'), 'recorded late\n');
    const item = page.locator('#events li a.event-path', { hasText: 'clips/late-clip.txt' }).first();
    await item.waitFor({ timeout: 5000 });
    await page.reload();
    await item.waitFor({ timeout: 5000 });
    check(true, 'the event is still listed after a reload');
    await item.click();
    await page.locator('#file-name', { hasText: 'late-clip.txt' }).waitFor({ timeout: 5000 });
    check(true, "an event's path links to the file's page");
  } else {
    console.log(`NOTE: ${LOCAL} offers no events: the feed's history is not checked`);
  }

  // 4. Zips: the whole folder and a selection, downloaded by the browser (checked by the Rust
  //    test with Python's zipfile).
  await page.goto(WEB + '#/ls/' + N + '/clips/');
  await page.locator('#rows tr[data-name="cam-door.webm"]').waitFor({ timeout: 5000 });
  const save = async (click, file) => {
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), click()]);
    const failure = await download.failure();
    check(failure === null, `download of ${file} completed (${failure})`);
    await download.saveAs(path.join(OUT, file));
    return download.suggestedFilename();
  };
  const folderName = await save(() => page.locator('#zip-folder').click(), 'folder.zip');
  check(folderName === 'clips.zip', `the folder's zip is named after it (${folderName})`);
  check(await page.locator('#zip-selection').isHidden(), 'no selection link while nothing is ticked');
  await page.locator('#rows tr[data-name="cam-front.webm"] input.pick').check();
  await page.locator('#rows tr[data-name="snapshot.png"] input.pick').check();
  await page.locator('#zip-selection', { hasText: '2 selected' }).waitFor({ timeout: 2000 });
  await save(() => page.locator('#zip-selection').click(), 'selection.zip');

  // 5. A phone, 390 px wide: nothing is cut off on any view.
  const phone = await context.newPage();
  watch(phone, 'phone');
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(WEB + '#/');
  await phone.locator(`#nodes tr[data-node="${LOCAL}"]`).waitFor({ timeout: 5000 });
  await fitsWidth(phone, 390, 'the node list');
  await phone.goto(WEB + '#/ls/' + N + '/clips/');
  await phone.locator('#mode-table').click();
  await phone.locator('#rows tr[data-name="cam-door.webm"]').waitFor({ timeout: 5000 });
  const typeShown = await phone.locator('#rows tr[data-name="cam-door.webm"] .sub').innerText();
  check(typeShown.includes('video/webm'), `the type is shown under the name (${typeShown})`);
  await fitsWidth(phone, 390, 'the table');
  await phone.screenshot({ path: path.join(OUT, 'phone-table.png'), fullPage: true });
  await phone.locator('#mode-gallery').click();
  await phone.locator('.tile.video canvas.poster').first().waitFor({ timeout: 20000 });
  await fitsWidth(phone, 390, 'the gallery');
  await phone.screenshot({ path: path.join(OUT, 'phone-gallery.png'), fullPage: true });
  await phone.locator('#mode-table').click();
  await phone.goto(WEB + '#/file/' + N + '/clips/cam-garden.webm');
  await phone.locator('video#player').waitFor({ timeout: 5000 });
  await fitsWidth(phone, 390, 'a file page');
  await phone.close();

  // 6. A node whose disk is full says so on its page.
  if (FULL) {
    const full = await context.newPage();
    watch(full, 'full');
    await full.goto(FULL + '#/');
    await full.locator('#disk-full', { hasText: 'Disk full on' }).waitFor({ timeout: 10000 });
    await full.locator('#nodes .badge.disk-full').waitFor({ timeout: 5000 });
    check(true, 'a full disk is said on the page: ' + (await full.locator('#disk-full').innerText()));
    await full.screenshot({ path: path.join(OUT, 'disk-full.png') });
    await full.close();
  } else {
    console.log('NOTE: no full disk to show (mounting a tmpfs needs root)');
  }
});
