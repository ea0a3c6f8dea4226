// Browser test of the web UI's password login and group chat, run by
// crates/meshfs/tests/web.rs (which starts a password-protected node with discovery on in a
// private multicast group on loopback). Headless Debian chromium driven by playwright-core.
//
// Environment (set by the Rust test):
//   WEB_URL     the node's UI over HTTPS, e.g. https://127.0.0.1:1234/
//   HTTP_URL    the same port over plain HTTP, e.g. http://127.0.0.1:1234/
//   NODE_ID     the node's ID as `meshfs id --node` prints it
//   SPKI        base64 SHA-256 of the node's public key (the pin): the only key Chromium
//               accepts without a CA (--ignore-certificate-errors-spki-list)
//   NODE        the node's name; its share holds notes.txt
//   PASSWORD    the share password
//   FILE_PASSWORD  the password of secret.txt, offered behind its own password
//   GROUP, CHAT_PORT  the chat's multicast group and port (interface 127.0.0.1)
//   PY_DIR      crates/meshfs/tests/python (the seed-style chat scripts)
//   OUT_DIR     where the screenshots go
//   CHROMIUM    the browser (default /usr/bin/chromium)
import { check, env, launch } from './browser.mjs';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const WEB = env('WEB_URL');
const HTTP = env('HTTP_URL');
const NODE_ID = env('NODE_ID');
const SPKI = env('SPKI');
const NODE = env('NODE');
const PASSWORD = env('PASSWORD');
const FILE_PASSWORD = env('FILE_PASSWORD');
const GROUP = env('GROUP');
const CHAT_PORT = env('CHAT_PORT');
const PY_DIR = env('PY_DIR');
const OUT = env('OUT_DIR');

// The plain Python chat receiver; resolves once it has joined the group.
function pythonReceiver() {
  const child = spawn('python3', [path.join(PY_DIR, 'group_chat_recv.py'), GROUP, CHAT_PORT, '127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const until = (pred, ms, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`python receiver: no ${what} within ${ms} ms: ${JSON.stringify(lines)}`)), ms);
    const look = () => {
      const hit = lines.find(pred);
      if (hit !== undefined) {
        clearTimeout(timer);
        resolve(hit);
      } else {
        waiters.push(look);
      }
    };
    look();
  });
  return { child, until };
}

const { context, close } = await launch([`--ignore-certificate-errors-spki-list=${SPKI}`]);
const problems = [];
let receiver = null;
let failed = false;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    // The 401 answers that make the page ask for a password (and the wrong password) are
    // reported by the browser as failed loads: expected here, and only those.
    if (/Failed to load resource: the server responded with a status of 401/.test(m.text())) return;
    problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog opened: ${d.message()}`);
    d.dismiss();
  });
  fs.mkdirSync(OUT, { recursive: true });

  // 0. Over plain HTTP: no form, but why, the way to HTTPS and the node's ID.
  await page.goto(HTTP + '#/ls/' + encodeURIComponent(NODE) + '/');
  await page.locator('#login-https').waitFor({ timeout: 10000 });
  check((await page.locator('form#login').count()) === 0, 'plain HTTP: no login form');
  check((await page.locator('#login-https').textContent()).includes('HTTPS only'), 'plain HTTP: the page says passwords go over HTTPS only');
  const link = await page.locator('#https-link').getAttribute('href');
  check(link === WEB + '#/ls/' + encodeURIComponent(NODE) + '/', 'plain HTTP: links to the same page over HTTPS: ' + link);
  check((await page.locator('#login-https ~ p code').textContent()) === NODE_ID, 'plain HTTP: shows the node ID');
  await page.screenshot({ path: path.join(OUT, 'http.png') });

  // 1. Over HTTPS (the link above): the header shows the node ID; the protected node's
  // folder asks for the password.
  await page.locator('#https-link').click();
  await page.waitForURL((u) => u.protocol === 'https:', { timeout: 10000 });
  await page.locator('#node-id-value', { hasText: NODE_ID }).waitFor({ timeout: 10000 });
  check(await page.locator('#node-id').isVisible(), 'the header shows the node ID');
  await page.locator('form#login').waitFor({ timeout: 10000 });
  check((await page.locator('#rows').count()) === 0, 'protected folder shows the login form, not a listing');
  check(await page.locator('#logout').isHidden(), 'no Log out button before logging in');
  await page.screenshot({ path: path.join(OUT, 'login.png') });

  // 2. A wrong password is refused with a message.
  await page.locator('#password').fill('not-the-password');
  await page.locator('form#login button[type=submit]').click();
  await page.locator('#login-error', { hasText: 'wrong password' }).waitFor({ timeout: 5000 });
  check(true, 'wrong password refused');

  // 3. The right password shows the listing; the session cookie is out of the page's reach.
  await page.locator('#password').fill(PASSWORD);
  await page.locator('#password').press('Enter');
  await page.locator('#rows tr[data-name="notes.txt"]').waitFor({ timeout: 5000 });
  check(true, 'logging in shows the listing');
  await page.locator('#logout').waitFor({ state: 'visible', timeout: 5000 });
  check(!(await page.evaluate(() => document.cookie)).includes('meshfs_session'), 'session cookie is HttpOnly');
  const cookies = await context.cookies(WEB);
  const session = cookies.find((c) => c.name === 'meshfs_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'cookie is HttpOnly, SameSite=Strict');
  check(session.secure, 'cookie is Secure (never sent over plain HTTP)');

  // 4. A file with its own password asks for it on its page, even with the share unlocked.
  await page.goto(WEB + '#/file/' + encodeURIComponent(NODE) + '/secret.txt');
  await page.locator('form#login').waitFor({ timeout: 5000 });
  check((await page.locator('#download').count()) === 0, "a protected file's page asks for its password");
  await page.locator('#password').fill(FILE_PASSWORD);
  await page.locator('#password').press('Enter');
  await page.locator('#file-name', { hasText: 'secret.txt' }).waitFor({ timeout: 5000 });
  const body = await page.evaluate(async () => (await fetch(document.querySelector('#download').href)).text());
  check(body === 'offered secret', "the file's password unlocks it (download works)");
  await page.goto(WEB + '#/ls/' + encodeURIComponent(NODE) + '/');
  await page.locator('#rows tr[data-name="notes.txt"]').waitFor({ timeout: 5000 });
  // A share password keeps the node's events off the feed: the page says so, not just
  // "unavailable".
  await page.locator('#live-note', { hasText: /events unavailable: .*password/ }).waitFor({ timeout: 10000 });
  check(true, 'events unavailable says why: ' + (await page.locator('#live-note').textContent()));

  // 5. The chat panel shows a message sent by a plain Python socket, its HTML as text.
  await page.locator('#chat').waitFor({ state: 'visible', timeout: 5000 });
  const hostile = '<img src=x onerror=window.__pwned=1> hi from python';
  execFileSync('python3', [path.join(PY_DIR, 'group_chat_send.py'), GROUP, CHAT_PORT, '127.0.0.1', hostile]);
  // Shown under the name of the node at the sender's address (here: this host), not the IP.
  const fromPython = page.locator('#chat-log li', { hasText: NODE + ' :> ' + hostile });
  await fromPython.waitFor({ timeout: 5000 });
  check(true, 'a Python chat message appears in the page, under the node name of its address');
  check((await fromPython.locator('.chat-text').getAttribute('title')) === 'from 127.0.0.1', 'the address stays in the tooltip');
  check((await page.locator('#chat-log img').count()) === 0, 'no element was made from the message');
  check((await page.evaluate(() => window.__pwned)) === undefined, 'no script from the message ran');
  // From another address of this host (as its LAN address is, when the node listens on every
  // interface and the node list knows it by loopback): still the node's name. A reload
  // rebuilds the log from the node's history, names included.
  const aside = 'from another address of this host';
  execFileSync('python3', [path.join(PY_DIR, 'group_chat_send.py'), GROUP, CHAT_PORT, '127.0.0.1', aside, '127.0.0.2']);
  await page.locator('#chat-log li', { hasText: NODE + ' :> ' + aside }).waitFor({ timeout: 5000 });
  check(true, 'a message from another address of this host is named after the node');
  await page.reload();
  await page.locator('#chat-log li', { hasText: NODE + ' :> ' + aside }).waitFor({ timeout: 5000 });
  await page.locator('#chat-log li', { hasText: NODE + ' :> ' + hostile }).waitFor({ timeout: 5000 });
  check((await page.locator('#chat-log li', { hasText: '127.0.0.' }).count()) === 0, 'after a reload the history names every sender, no address shown');

  // 6. A message typed on the page reaches a Python receiver (and shows in the page).
  receiver = pythonReceiver();
  await receiver.until((l) => l === 'ready', 10000, 'ready');
  const typed = 'typed on the page ✓ ' + Date.now();
  await page.locator('#chat-text').fill(typed);
  await page.locator('#chat-text').press('Enter');
  await receiver.until((l) => l === '127.0.0.1 :> ' + typed, 5000, 'typed message');
  check(true, 'a message typed on the page reaches the Python receiver');
  await page.locator('#chat-log li', { hasText: typed }).waitFor({ timeout: 5000 });
  check((await page.locator('#chat-text').inputValue()) === '', 'the box is cleared after sending');
  await page.screenshot({ path: path.join(OUT, 'chat.png') });

  // 7. Log out: the folder asks for the password again.
  await page.locator('#logout').click();
  await page.locator('form#login').waitFor({ timeout: 5000 });
  check(await page.locator('#logout').isHidden(), 'logged out: the login form is back');

  // 8. No console errors (nor warnings) but the expected 401s.
  check(problems.length === 0, 'no console errors: ' + JSON.stringify(problems));
  console.log(`screenshots in ${OUT}`);
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.message}`);
  if (problems.length) console.error('console: ' + JSON.stringify(problems));
} finally {
  if (receiver) receiver.child.kill();
  await close();
}
process.exit(failed ? 1 : 0);
