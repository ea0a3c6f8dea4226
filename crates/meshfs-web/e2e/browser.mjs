// What the browser scripts (web.mjs, login_chat.mjs) share: their environment lookup, their
// checks, and launching headless Debian chromium (never a browser download, `CHROMIUM` or
// /usr/bin/chromium) in a throw-away profile.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// A variable the Rust test must have set.
export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing environment variable ${k}`);
  return v;
};

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

// Run `body(context, problems)` in a fresh Chromium (see `launch`), then check that nothing
// was pushed onto `problems` (console errors the body collected); prints FAIL and exits 1 on
// any failure, 0 otherwise.
export async function run(extraArgs, body) {
  const { context, close } = await launch(extraArgs);
  const problems = [];
  let failed = false;
  try {
    await body(context, problems);
    check(problems.length === 0, 'no console errors: ' + JSON.stringify(problems));
  } catch (e) {
    failed = true;
    console.error(`FAIL: ${e.message}`);
    if (problems.length) console.error('console: ' + JSON.stringify(problems));
  } finally {
    await close();
  }
  process.exit(failed ? 1 : 0);
}

// Chromium in a fresh profile, with `extraArgs` after the common flags; `close()` shuts it
// and removes the profile.
export async function launch(extraArgs = []) {
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'meshfs-chromium-'));
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extraArgs,
    ],
    viewport: { width: 1200, height: 800 },
  });
  const close = async () => {
    await context.close();
    fs.rmSync(userData, { recursive: true, force: true });
  };
  return { context, close };
}
