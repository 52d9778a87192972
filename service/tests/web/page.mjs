// End-to-end test of the codeseal-service web page in headless Chromium (playwright-core).
//
//   node page.mjs [BASE_URL [FIXTURE [OUTDIR [SCREENSHOT]]]]
//
// Each argument may instead come from the environment: CODESEAL_URL, CODESEAL_FIXTURE,
// CODESEAL_OUTDIR, CODESEAL_SCREENSHOT (default OUTDIR/page.png). The API key comes from
// CODESEAL_API_KEY or from the file named by CODESEAL_API_KEY_FILE (first line), never from
// an argument, so that it does not show in the process list. CHROMIUM overrides
// the browser (default /usr/bin/chromium); CODESEAL_PAGE_TIMEOUT the seconds to wait for
// the job (default 120).
//
// Opens the page, enters the API key, picks the fixture, uploads, waits until #status says
// "done" (fails at once on "failed" or on a message in #error), downloads the signed file via
// #download to OUTDIR/downloaded.exe, writes what the page showed to OUTDIR/page.json and
// takes a full-page screenshot. Exits 0 only if all of that worked.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [argUrl, argFixture, argOut, argShot] = process.argv.slice(2);
const baseUrl = argUrl || process.env.CODESEAL_URL;
const fixture = argFixture || process.env.CODESEAL_FIXTURE;
const outDir = argOut || process.env.CODESEAL_OUTDIR;
const apiKey = process.env.CODESEAL_API_KEY_FILE
  ? fs.readFileSync(process.env.CODESEAL_API_KEY_FILE, 'utf8').trim()
  : process.env.CODESEAL_API_KEY;
const shot = argShot || process.env.CODESEAL_SCREENSHOT || (outDir && path.join(outDir, 'page.png'));
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const jobTimeoutMs = 1000 * Number(process.env.CODESEAL_PAGE_TIMEOUT || 120);
const STEP_MS = 30_000;

function log(...a) { console.log('page:', ...a); }
function die(msg) { console.error('page: FAIL:', msg); process.exitCode = 1; throw new Error(msg); }

if (!baseUrl || !fixture || !outDir || !apiKey) {
  console.error('usage: CODESEAL_API_KEY[_FILE]=... node page.mjs BASE_URL FIXTURE OUTDIR [SCREENSHOT]');
  process.exit(2);
}
if (!fs.existsSync(browserPath)) {
  console.error(`page: FAIL: no Chromium at ${browserPath} (run scripts/web-setup.sh)`);
  process.exit(1);
}
fs.mkdirSync(outDir, { recursive: true });

// A hard stop, whatever hangs.
const watchdog = setTimeout(() => {
  console.error('page: FAIL: watchdog: the whole run took too long');
  process.exit(3);
}, jobTimeoutMs + 6 * STEP_MS);

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'codeseal-chromium-'));
let context;
const pageErrors = [];
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: browserPath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1100, height: 800 },
    timeout: STEP_MS,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context.setDefaultTimeout(STEP_MS);
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => { pageErrors.push(String(e)); console.error('page: script error:', String(e)); });
  page.on('requestfailed', (r) => log(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  // Part PUTs go to presigned URLs: never with the API key. The key is never in a URL.
  let partPuts = 0;
  const leaks = [];
  page.on('request', (r) => {
    if (r.url().includes(apiKey) || r.url().includes(encodeURIComponent(apiKey))) leaks.push(`API key in URL: ${r.method()} ${r.url()}`);
    if (r.method() === 'PUT') {
      partPuts++;
      if (r.headers().authorization !== undefined) leaks.push(`Authorization header on part PUT ${r.url()}`);
    }
  });

  const res = await page.goto(baseUrl, { waitUntil: 'load' });
  if (!res || !res.ok()) die(`GET ${baseUrl} answered ${res ? res.status() : 'nothing'}`);
  log('opened', baseUrl, 'title:', await page.title());

  await page.fill('#api-key', apiKey);
  await page.setInputFiles('#file', fixture);
  await page.click('#upload');
  log('uploading', fixture);

  // Wait for the job to finish: #status is exactly the status word.
  const deadline = Date.now() + jobTimeoutMs;
  let last = '';
  for (;;) {
    const status = (await page.textContent('#status'))?.trim() ?? '';
    const error = (await page.textContent('#error'))?.trim() ?? '';
    if (status !== last) { log('status:', status || '(none)'); last = status; }
    if (status === 'done') break;
    if (status === 'failed') die(`job failed: ${error || '(no message in #error)'}`);
    if (error) die(`the page shows an error (status "${status}"): ${error}`);
    if (pageErrors.length) die(`script error on the page: ${pageErrors.join('; ')}`);
    if (Date.now() > deadline) die(`no "done" after ${jobTimeoutMs / 1000} s (status "${status}")`);
    await page.waitForTimeout(250);
  }

  const shown = {
    status: (await page.textContent('#status')).trim(),
    sha256: (await page.textContent('#sha256')).trim(),
    authenticode_digest: (await page.textContent('#digest')).trim(),
    report: (await page.innerText('#report')).trim(),
    download_href: await page.getAttribute('#download', 'href'),
    download_name: await page.getAttribute('#download', 'download'),
    progress: await page.getAttribute('#progress', 'value'),
    part_puts: partPuts,
  };
  log('shown:', JSON.stringify(shown));
  if (leaks.length) die(leaks.join('; '));
  if (shown.progress !== '100') die(`the progress bar ends at ${shown.progress}, not 100`);
  if (!/^[0-9a-f]{64}$/i.test(shown.sha256)) die(`#sha256 is not a SHA-256: "${shown.sha256}"`);
  if (!shown.download_href || shown.download_href === '#') die('#download has no link');
  fs.writeFileSync(path.join(outDir, 'page.json'), JSON.stringify(shown, null, 2) + '\n');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const target = path.join(outDir, 'downloaded.exe');
  await download.saveAs(target);
  const failure = await download.failure();
  if (failure) die(`download failed: ${failure}`);
  log('downloaded', download.suggestedFilename(), '->', target, `(${fs.statSync(target).size} bytes)`);

  await page.screenshot({ path: shot, fullPage: true });
  log('screenshot', shot);
  if (pageErrors.length) die(`script error on the page: ${pageErrors.join('; ')}`);
  if (leaks.length) die(leaks.join('; '));
  log('OK');
} catch (e) {
  if (!process.exitCode) console.error('page: FAIL:', e && e.stack ? e.stack : e);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
