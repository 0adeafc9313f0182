/* Shared by the built-in UI's browser tests (ui.test.js) and its bench
 * (bench/ui.js): hosts started here and stopped by PID, Debian's Chromium
 * and Firefox driven headless by puppeteer-core (nothing downloaded), plain
 * HTTP, and a PNG decoder for the screenshots. Loopback only. */
'use strict';

const {spawn} = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const puppeteer = require('puppeteer-core');

const WINDOW = {width: 1280, height: 900};
const CHROMIUM = '/usr/bin/chromium';
const FIREFOX = '/usr/bin/firefox-esr';

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

/* ---- hosts -------------------------------------------------------------- */

/* Starts argv with env; resolves once its output (stdout or stderr) matches
 * re, with the host: {proc, port, base}. Rejects after 30 s. */
function startHost(argv, env, re) {
  return new Promise((resolve, reject) => {
    const proc = spawn(argv[0], argv.slice(1), {env, stdio: ['pipe', 'pipe', 'pipe']});
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${argv.join(' ')}: no port after 30 s; output: ${out}`));
    }, 30000);
    const onData = (d) => {
      out += d;
      const m = out.match(re);
      if (m) {
        clearTimeout(timer);
        const port = Number(m[1]);
        resolve({proc, port, base: `http://127.0.0.1:${port}`});
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited (${code}): ${out}`));
    });
  });
}

/* The host program (test/uihost.c) with args; jemalloc preloaded when je
 * ({so, conf}) is given. */
function uihost(exe, args, je) {
  const env = {...process.env};
  delete env.UV_PPROF_TOKEN;
  if (je) {
    env.LD_PRELOAD = je.so;
    env.MALLOC_CONF = je.conf;
  }
  return startHost([exe, ...args], env, /port=(\d+)\n/);
}

/* Ends a host: stdin closed (uihost) or SIGTERM (the demo), then SIGKILL
 * after 10 s; by its PID. */
function stopHost(h) {
  if (!h || h.proc.exitCode !== null || h.proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => h.proc.kill('SIGKILL'), 10000);
    h.proc.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    h.proc.stdin.end();
    h.proc.kill('SIGTERM');
  });
}

/* ---- HTTP ------------------------------------------------------------ */

/* GET url with headers: {status, headers, body (Buffer, as sent)}. */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {headers}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks)}));
    });
    req.on('error', reject);
    req.setTimeout(120000, () => req.destroy(new Error(`${url}: no answer in 120 s`)));
  });
}

/* ---- browsers --------------------------------------------------------- */

/* Headless Chromium or Firefox, with a fresh profile under tmp. Chromium
 * resolves no host name but 127.0.0.1 and makes no background connection;
 * Firefox runs with puppeteer's preferences (no updates, no telemetry). */
async function launch(kind, tmp) {
  const dir = fs.mkdtempSync(path.join(tmp, kind + '-'));
  if (kind === 'firefox') {
    return puppeteer.launch({
      browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: dir,
      timeout: 90000, protocolTimeout: 180000,
      extraPrefsFirefox: {'network.dns.disablePrefetch': true, 'network.prefetch-next': false},
    });
  }
  const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--hide-scrollbars',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return puppeteer.launch({
    executablePath: CHROMIUM, headless: true, userDataDir: dir, args,
    timeout: 90000, protocolTimeout: 180000,
  });
}

/* Opens url in a new page and waits until the UI says it is done
 * (html[data-state]: ready, empty or error). Returns {page, state, ms,
 * errors (console errors and uncaught exceptions), requests (every URL)}. */
async function open(browser, url, timeoutMs = 120000) {
  const page = await browser.newPage();
  await page.setViewport(WINDOW);
  const errors = [];
  const requests = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push('uncaught: ' + (e.message || e)));
  page.on('request', (r) => requests.push(r.url()));
  const t0 = Date.now();
  await page.goto(url, {waitUntil: 'domcontentloaded', timeout: timeoutMs});
  await page.waitForSelector('html[data-state]', {timeout: timeoutMs});
  const ms = Date.now() - t0;
  const state = await page.$eval('html', (e) => e.dataset.state);
  return {page, state, ms, errors, requests};
}

/* The page's own timing: navigation start -> profile received -> drawn. */
function timing(page) {
  return page.evaluate(() => {
    const mark = (n) => performance.getEntriesByName(n)[0];
    const fetched = mark('uv-pprof-fetched');
    const rendered = mark('uv-pprof-rendered');
    return {
      fetched: fetched ? fetched.startTime : NaN,
      rendered: rendered ? rendered.startTime : NaN,
    };
  });
}

/* ---- PNG -------------------------------------------------------------- */

/* {width, height, rgb (Buffer, 3 bytes a pixel)} of an 8-bit RGB(A) PNG. */
function decodePng(buf) {
  expect(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'not a PNG');
  let pos = 8, w = 0, h = 0, channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      w = body.readUInt32BE(0);
      h = body.readUInt32BE(4);
      expect(body[8] === 8 && (body[9] === 2 || body[9] === 6) && body[12] === 0,
        `PNG depth ${body[8]}, colour type ${body[9]}, interlace ${body[12]}`);
      channels = body[9] === 2 ? 3 : 4;
    } else if (type === 'IDAT') {
      idat.push(body);
    }
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = w * channels;
  const rgb = Buffer.alloc(w * h * 3);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < h; y++) {
    const filter = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? line[x - channels] : 0;
      const b = prev[x];
      const c = x >= channels ? prev[x - channels] : 0;
      let p = 0;
      if (filter === 1) p = a;
      else if (filter === 2) p = b;
      else if (filter === 3) p = (a + b) >> 1;
      else if (filter === 4) {
        const q = a + b - c, pa = Math.abs(q - a), pb = Math.abs(q - b), pc = Math.abs(q - c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else expect(filter === 0, `PNG filter ${filter}`);
      line[x] = (line[x] + p) & 0xff;
    }
    for (let x = 0; x < w; x++) line.copy(rgb, (y * w + x) * 3, x * channels, x * channels + 3);
    prev = line;
  }
  return {width: w, height: h, rgb};
}

/* Of a screenshot: the share of pixels unlike the most common colour (the
 * background), and how many are drawn in the flame graph's warm colours. */
function pixels(png) {
  const img = decodePng(png);
  const counts = new Map();
  let warm = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const r = img.rgb[i * 3], g = img.rgb[i * 3 + 1], b = img.rgb[i * 3 + 2];
    const key = (r << 16) | (g << 8) | b;
    counts.set(key, (counts.get(key) || 0) + 1);
    if (r > 200 && r - b > 70 && g > 90) warm++;
  }
  const background = Math.max(...counts.values());
  return {width: img.width, height: img.height, foreground: 1 - background / n, warm};
}

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'uv-pprof-ui-'));
}

module.exports = {WINDOW, expect, startHost, uihost, stopHost, get, launch, open, timing, decodePng, pixels, tmpdir};
