/* The built-in UI (/debug/pprof/ui/<profile>) in a real headless browser,
 * against real hosts whose profiles are known:
 *
 *   node ui.test.js chromium|firefox UIHOST DEMO JEMALLOC_SO OUTDIR
 *
 * Each page must load with nothing but loopback requests (Chromium resolves
 * no other host) and no console error, and its DOM must name what the
 * process did: the demo's leak_heap_bytes in the heap, the 3:1 split of
 * ui_burn_loop and ui_burn_thread in a CPU profile (shares within 5
 * points), timers that closed and opened in a goroutine diff; screenshots
 * (in OUTDIR; docs/images/ui-heap.png is one) are not blank. Bad input:
 * unknown profiles, a profile's 400, zero samples, names with markup, 100k
 * handles and 50k heap stacks. Firefox runs the main cases. Prints one
 * line per case and "N passed, M failed". */
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const L = require('./lib');

const [kind, uihost, demo, jemallocSo, outdir] = process.argv.slice(2);
const expect = L.expect;
let passed = 0, failed = 0;
let browser = null;
const hosts = [];
const tmp = L.tmpdir();

async function host(args, je) {
  const h = await L.uihost(uihost, args, je);
  hosts.push(h);
  return h;
}

async function demoHost() {
  const env = {...process.env, UV_PPROF: '127.0.0.1:0', LD_PRELOAD: jemallocSo,
    MALLOC_CONF: 'prof:true,prof_accum:true'};
  delete env.UV_PPROF_TOKEN;
  const h = await L.startHost([demo, '--echo-port', '0', '--leak-heap', '1m', '--leak-timers', '5'], env,
    /pprof enabled on http:\/\/[^:]+:(\d+)\//);
  hosts.push(h);
  return h;
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok ${kind} ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAILED ${kind} ${name}: ${e.stack || e}`);
  }
}

/* What every page must satisfy: requests only to the host, no console
 * error (but those allowed), the state expected. */
function clean(r, h, state, allowed = []) {
  const outside = r.requests.filter((u) => !u.startsWith(h.base + '/') && !u.startsWith('data:'));
  expect(outside.length === 0, 'requests left loopback: ' + outside.join(', '));
  const errors = r.errors.filter((e) => !allowed.some((re) => re.test(e)));
  expect(errors.length === 0, 'console errors: ' + errors.join(' | '));
  expect(r.state === state, `page state ${r.state}, expected ${state}`);
}

/* The top table: [{name, flat, flatPct, cum, cumPct, cls}]. */
function rows(page) {
  return page.$$eval('#top tbody tr', (trs) => trs.map((tr) => {
    const c = [...tr.cells].map((td) => td.textContent);
    return {name: c[0], flat: c[1], flatPct: parseFloat(c[2]), cum: c[3], cumPct: parseFloat(c[4]),
      cls: tr.cells[1].className};
  }));
}

function bars(page) {
  return page.$$eval('#flame .f', (es) => es.map((e) => ({text: e.textContent, cls: e.className,
    bg: getComputedStyle(e).backgroundColor})));
}

async function shot(page, name) {
  const file = path.join(outdir, `${kind}-${name}.png`);
  const png = await page.screenshot({path: file});
  const p = L.pixels(Buffer.from(png));
  expect(p.width === L.WINDOW.width && p.height === L.WINDOW.height, `${file}: ${p.width}x${p.height}`);
  expect(p.foreground >= 0.05, `${file}: only ${(100 * p.foreground).toFixed(1)}% of the pixels are not background`);
  expect(p.warm >= 5000, `${file}: only ${p.warm} pixels in the flame graph's colours`);
  return file;
}

const select = (page, sel, value) => page.$eval(sel, (s, v) => {
  s.value = v;
  s.dispatchEvent(new Event('change'));
}, value);

async function main() {
  fs.mkdirSync(outdir, {recursive: true});
  browser = await L.launch(kind, tmp);

  if (kind === 'chromium') {
    await step('assets: gzip, ETag, 304, 404s, size', async () => {
      const h = await host([]);
      let gzTotal = 0;
      for (const f of ['', 'assets/ui.js', 'assets/profile.js', 'assets/ui.css']) {
        const url = `${h.base}/debug/pprof/ui/${f || 'heap'}`;
        const plain = await L.get(url);
        const gz = await L.get(url, {'accept-encoding': 'gzip, deflate'});
        expect(plain.status === 200 && gz.status === 200, `${url}: ${plain.status} ${gz.status}`);
        expect(!plain.headers['content-encoding'], `${url}: gzipped without Accept-Encoding`);
        expect(gz.headers['content-encoding'] === 'gzip', `${url}: not gzipped for a client that takes it`);
        expect(zlib.gunzipSync(gz.body).equals(plain.body), `${url}: the gzipped form differs`);
        expect(plain.headers.etag && gz.headers.etag && plain.headers.etag !== gz.headers.etag, `${url}: ETags`);
        expect(gz.headers.vary === 'Accept-Encoding', `${url}: Vary`);
        const again = await L.get(url, {'accept-encoding': 'gzip', 'if-none-match': gz.headers.etag});
        expect(again.status === 304 && again.body.length === 0, `${url}: revalidation gave ${again.status}`);
        const stale = await L.get(url, {'if-none-match': '"stale"'});
        expect(stale.status === 200, `${url}: a stale ETag gave ${stale.status}`);
        gzTotal += gz.body.length;
      }
      expect(gzTotal <= 150 * 1024, `assets are ${gzTotal} bytes gzipped`);
      const page = await L.get(`${h.base}/debug/pprof/ui/heap`);
      expect(/script-src 'self'/.test(page.headers['content-security-policy'] || ''), 'no CSP on the page');
      for (const [p, status, text] of [['ui/nonsense', 404, 'Unknown profile'], ['ui/cmdline', 404, 'Unknown profile'],
        ['ui/', 404, 'Unknown profile'], ['ui/assets/none.js', 404, '404 page not found']]) {
        const r = await L.get(`${h.base}/debug/pprof/${p}`);
        expect(r.status === status && r.body.toString().trim() === text, `${p}: ${r.status} ${r.body}`);
      }
      console.log(`  assets: ${gzTotal} bytes gzipped`);
    });
  }

  await step('heap: the leaking function, sample types, search, focus, zoom', async () => {
    const h = await demoHost();
    /* the leak must have been sampled first */
    for (let i = 0; ; i++) {
      const r = await L.get(`${h.base}/debug/pprof/heap?debug=1`);
      if (r.body.toString().includes('leak_heap_bytes')) break;
      expect(i < 60, 'the demo\'s leak was never sampled');
      await new Promise((res) => setTimeout(res, 500));
    }
    /* a few MiB more of it (1 MiB/s): the leak dominates the picture */
    await new Promise((res) => setTimeout(res, 5000));
    const r = await L.open(browser, `${h.base}/debug/pprof/ui/heap`);
    clean(r, h, 'ready');
    const page = r.page;
    let top = await rows(page);
    expect(top.length > 0 && top[0].name === 'leak_heap_bytes', 'first row: ' + (top[0] && top[0].name));
    expect(top[0].flatPct > 60, `leak_heap_bytes has ${top[0].flatPct}% of inuse_space`);
    expect((await bars(page)).some((b) => b.text === 'leak_heap_bytes'), 'no flame graph frame for leak_heap_bytes');
    expect(/inuse_space/.test(await page.$eval('#summary', (e) => e.textContent)), 'summary does not say inuse_space');
    if (kind === 'chromium') fs.copyFileSync(await shot(page, 'heap'), path.join(outdir, 'ui-heap.png'));
    else await shot(page, 'heap');

    const alloc = await page.$$eval('#type option', (os) => os.find((o) => o.textContent.startsWith('alloc_space')).value);
    await select(page, '#type', alloc);
    expect(/alloc_space/.test(await page.$eval('#summary', (e) => e.textContent)), 'type switch: summary');
    top = await rows(page);
    expect(top.some((t) => t.name === 'leak_heap_bytes'), 'alloc_space: no leak_heap_bytes');

    await page.type('#search', 'leak_heap');
    await page.waitForFunction(() => document.getElementById('matches').textContent !== '');
    const matches = await page.$eval('#matches', (e) => e.textContent);
    expect(/^1 function match: .* \((\d+\.\d+)%\)$/.test(matches), 'search: ' + matches);
    expect((await bars(page)).some((b) => b.text === 'leak_heap_bytes' && /hit/.test(b.cls)), 'search: no highlighted frame');

    await page.$$eval('#top tbody tr', (trs) => trs.find((tr) => tr.cells[0].textContent === 'leak_heap_bytes').click());
    const crumbs = await page.$eval('#crumbs', (e) => e.textContent);
    expect(/focus: leak_heap_bytes/.test(crumbs), 'focus: ' + crumbs);
    const focused = await bars(page);
    expect(focused[1] && focused[1].text === 'leak_heap_bytes', 'focus: the graph starts at ' + (focused[1] && focused[1].text));
    await page.$eval('#crumbs .focus button', (b) => b.click());

    await page.$$eval('#flame .f', (es) => es.find((e) => e.textContent === 'uv_run').click());
    expect(/all › .*uv_run$/.test(await page.$eval('#crumbs', (e) => e.textContent)), 'zoom: breadcrumb');
    const zoomed = await bars(page);
    expect(zoomed.some((b) => b.text === 'uv_run' && /anc|^f$/.test(b.cls)), 'zoom: uv_run not drawn');
    await page.$$eval('#crumbs button', (bs) => bs[0].click());
    expect(await page.$eval('#crumbs', (e) => e.textContent) === 'all', 'zoom: back to all');
    await page.close();
  });

  await step('cpu: the 3:1 split of two functions, label filter', async () => {
    const h = await host(['cpu']);
    const r = await L.open(browser, `${h.base}/debug/pprof/ui/profile?seconds=5`);
    clean(r, h, 'ready');
    const page = r.page;
    const top = await rows(page);
    const loop = top.find((t) => t.name === 'ui_burn_loop');
    const thread = top.find((t) => t.name === 'ui_burn_thread');
    expect(loop && thread, 'rows: ' + top.slice(0, 5).map((t) => t.name).join(', '));
    const share = 100 * loop.flatPct / (loop.flatPct + thread.flatPct);
    console.log(`  ui_burn_loop ${loop.flatPct}%, ui_burn_thread ${thread.flatPct}% of the page's total: ${share.toFixed(1)} : ${(100 - share).toFixed(1)}`);
    expect(Math.abs(share - 75) <= 5, `split ${share.toFixed(1)}:${(100 - share).toFixed(1)}, not 75:25 within 5 points`);
    expect(loop.flatPct + thread.flatPct >= 90, `the two burners have only ${loop.flatPct + thread.flatPct}%`);
    const names = (await bars(page)).map((b) => b.text);
    expect(names.includes('ui_burn_loop') && names.includes('ui_burn_thread'), 'flame graph lacks a burner');
    await shot(page, 'cpu');
    await select(page, '#labels select[data-key="thread"]', 'ui-burner');
    const filtered = await rows(page);
    expect(filtered[0].name === 'ui_burn_thread' && !filtered.some((t) => t.name === 'ui_burn_loop'),
      'thread=ui-burner: ' + filtered.slice(0, 3).map((t) => t.name).join(', '));
    await page.close();
  });

  await step('names with markup are text, never run', async () => {
    const h = await host(['evil']);
    const r = await L.open(browser, `${h.base}/debug/pprof/ui/goroutine`);
    clean(r, h, 'ready');
    const page = r.page;
    const evil = 'LazyCompile:*<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script> /srv/app.js:1';
    expect((await rows(page)).some((t) => t.name === evil), 'the name is not shown as text');
    const dom = await page.evaluate(() => ({pwned: window.__pwned, imgs: document.images.length,
      scripts: document.scripts.length, title: document.title}));
    expect(dom.pwned === undefined && dom.imgs === 0 && dom.scripts === 2, 'markup ran: ' + JSON.stringify(dom));
    await page.hover('#flame .f:last-child');
    await page.close();
  });

  if (kind === 'chromium') {
    await step('goroutine diff (?seconds=): growth and shrinkage', async () => {
      const h = await host(['churn']);
      const r = await L.open(browser, `${h.base}/debug/pprof/ui/goroutine?seconds=2`);
      clean(r, h, 'ready');
      const page = r.page;
      const summary = await page.$eval('#summary', (e) => e.textContent);
      expect(/^Diff of goroutine: \+\d+ grown, -\d+ shrunk, net/.test(summary), 'summary: ' + summary);
      const top = await rows(page);
      const grown = top.find((t) => t.name === 'ui_new_timer_cb');
      const shrunk = top.find((t) => t.name === 'ui_old_timer_cb');
      expect(grown && /^\+\d+$/.test(grown.flat) && grown.cls === 'grown', 'new timers: ' + JSON.stringify(grown));
      expect(shrunk && /^-\d+$/.test(shrunk.flat) && shrunk.cls === 'shrunk', 'old timers: ' + JSON.stringify(shrunk));
      const b = await bars(page);
      const hue = (name) => {
        const bar = b.find((x) => x.text === name);
        const [red, , blue] = bar.bg.match(/\d+/g).map(Number);
        return red - blue;
      };
      expect(hue('ui_new_timer_cb') > 40 && hue('ui_old_timer_cb') < -40, 'diff colours');
      await page.close();
    });

    await step('bad input: the profile\'s 400 shown, zero samples', async () => {
      const h = await host([]);
      let r = await L.open(browser, `${h.base}/debug/pprof/ui/heap?seconds=abc`);
      /* Chromium reports the 400 answer of the page's fetch itself */
      clean(r, h, 'error', [/status of 400/]);
      const status = await r.page.$eval('#status', (e) => e.textContent);
      const detail = await r.page.$eval('#error', (e) => e.textContent);
      expect(/400 Bad Request/.test(status) && /invalid value for "seconds"/.test(detail), `${status} ${detail}`);
      await r.page.close();
      r = await L.open(browser, `${h.base}/debug/pprof/ui/mutex`);
      clean(r, h, 'empty');
      const empty = await r.page.$eval('#status', (e) => !e.hidden && e.className === 'empty' && e.textContent);
      expect(/no samples/.test(empty), 'zero samples: ' + empty);
      expect(await r.page.$eval('#top', (e) => e.hidden), 'zero samples: a table is shown');
      await r.page.close();
    });

    await step('100k handles and 50k heap stacks stay drawable', async () => {
      let h = await host(['timers', '100000']);
      let r = await L.open(browser, `${h.base}/debug/pprof/ui/goroutine`);
      clean(r, h, 'ready');
      expect((await rows(r.page)).some((t) => t.name === 'ui_timer_cb'), '100k timers: no ui_timer_cb');
      console.log(`  100k handles: ${r.ms} ms to draw`);
      await r.page.close();
      h = await host(['stacks', '50000'], {so: jemallocSo, conf: 'prof:true,lg_prof_sample:0'});
      r = await L.open(browser, `${h.base}/debug/pprof/ui/heap`);
      clean(r, h, 'ready');
      const page = r.page;
      const n = await page.$$eval('#flame .f', (es) => es.length);
      const small = await page.$$eval('#flame .f.small', (es) => es.length);
      expect(n < 5000 && small > 0, `50k stacks: ${n} frames drawn, ${small} collapsed blocks`);
      const t0 = Date.now();
      await page.type('#search', 'ui_alloc_leaf');
      await page.waitForFunction(() => /match/.test(document.getElementById('matches').textContent));
      const t = await L.timing(page);
      console.log(`  50k stacks: ${n} frames drawn, ${small} collapsed blocks; drawn ${t.rendered.toFixed(0)} ms after navigation, search answered in ${Date.now() - t0} ms`);
      const found = await page.$eval('#matches', (e) => e.textContent);
      const share = found.match(/^1 function match: .*\((\d+\.\d+)%\)$/);
      expect(share && Number(share[1]) > 50, 'search over 50k stacks: ' + found);
      await page.close();
    });
  }
}

main().catch((e) => {
  failed++;
  console.log(`FAILED ${kind}: ${e.stack || e}`);
}).finally(async () => {
  if (browser) await browser.close().catch(() => {});
  await Promise.all(hosts.map(L.stopHost));
  fs.rmSync(tmp, {recursive: true, force: true});
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
});
