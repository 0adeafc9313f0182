/* bench/ui.js: how long the built-in UI takes to draw a profile in headless
 * Chromium, against go tool pprof -http's flame graph of the same profile in
 * the same browser and run (the baseline).
 *
 *   NODE_PATH=build/test/ui-node/node_modules \
 *     node bench/ui.js build/test/uv_pprof_uihost /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
 *
 * (ctest ui_npm_ci installs build/test/ui-node.) Profiles: the heap of a host
 * with 10k and 50k live stacks (jemalloc, every allocation sampled), and a
 * 30 s CPU profile of two busy threads. For ours: navigation -> drawn (the
 * page's own marks; for the CPU profile less the 30 s the server waits), and
 * the browser's part alone (profile received -> drawn: decode, model, tree,
 * DOM). For pprof: navigation -> load of /ui/flamegraph, whose script draws
 * before load (not run for 50k stacks: pprof took minutes to start on them).
 * Medians of RUNS (heap) and CPU_RUNS. */
'use strict';

const {spawn} = require('child_process');
const fs = require('fs');
const path = require('path');
const L = require('../test/ui/lib');

const RUNS = 5;
const CPU_RUNS = 3;
const CPU_SECONDS = 30;

const [uihost, jemalloc] = process.argv.slice(2);
if (!uihost || !jemalloc) {
  console.error('usage: node bench/ui.js UIHOST JEMALLOC_SO');
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

function freePort() {
  return new Promise((resolve) => {
    const srv = require('net').createServer().listen(0, '127.0.0.1', () => {
      const port = srv.address().port;
      srv.close(() => resolve(port));
    });
  });
}

/* go tool pprof -http on a saved profile; stopped by its process group. */
async function pprofHttp(file) {
  const port = await freePort();
  const proc = spawn('go', ['tool', 'pprof', `-http=127.0.0.1:${port}`, '-no_browser', file],
    {stdio: 'ignore', detached: true, env: {...process.env, BROWSER: 'true'}});
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await L.get(base + '/ui/flamegraph')).status === 200) break;
    } catch (e) { /* not up yet */ }
    if (i > 600) throw new Error('go tool pprof -http did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {base, stop: () => process.kill(-proc.pid, 'SIGKILL')};
}

async function ours(browser, url, waitMs) {
  const r = await L.open(browser, url, waitMs + 120000);
  if (r.state !== 'ready') throw new Error(`${url}: ${r.state}`);
  const t = await L.timing(r.page);
  const frames = await r.page.$$eval('#flame .f', (es) => es.length);
  await r.page.close();
  return {total: t.rendered - waitMs, browser: t.rendered - t.fetched, frames};
}

async function baseline(browser, url) {
  const page = await browser.newPage();
  await page.setViewport(L.WINDOW);
  await page.goto(url, {waitUntil: 'load', timeout: 120000});
  const ms = await page.evaluate(() => performance.getEntriesByType('navigation')[0].loadEventEnd);
  await page.close();
  return ms;
}

async function main() {
  const tmp = L.tmpdir();
  const browser = await L.launch('chromium', tmp);
  const rows = [];
  try {
    const cases = [
      {name: 'heap, 10k stacks', args: ['stacks', '10000'], path: 'heap', runs: RUNS, wait: 0},
      {name: 'heap, 50k stacks', args: ['stacks', '50000'], path: 'heap', runs: RUNS, wait: 0, noBaseline: true},
      {name: `CPU ${CPU_SECONDS} s, 2 busy threads`, args: ['cpu'], path: `profile?seconds=${CPU_SECONDS}`,
        runs: CPU_RUNS, wait: CPU_SECONDS * 1000},
    ];
    for (const c of cases) {
      const h = await L.uihost(uihost, c.args,
        c.args[0] === 'stacks' ? {so: jemalloc, conf: 'prof:true,lg_prof_sample:0'} : null);
      try {
        const mine = [];
        let file = null;
        for (let i = 0; i < c.runs; i++) mine.push(await ours(browser, `${h.base}/debug/pprof/ui/${c.path}`, c.wait));
        /* the same kind of profile, saved, for pprof */
        const prof = await L.get(`${h.base}/debug/pprof/${c.path}`);
        file = path.join(tmp, c.args[0] + '.pb.gz');
        fs.writeFileSync(file, prof.body);
        const theirs = [];
        if (!c.noBaseline) {
          const p = await pprofHttp(file);
          try {
            for (let i = 0; i < c.runs; i++) theirs.push(await baseline(browser, p.base + '/ui/flamegraph'));
          } finally {
            p.stop();
          }
        }
        const row = {name: c.name, bytes: prof.body.length, total: median(mine.map((m) => m.total)),
          inBrowser: median(mine.map((m) => m.browser)), frames: mine[0].frames,
          pprof: theirs.length ? median(theirs) : NaN};
        rows.push(row);
        print(row, rows.length === 1);
      } finally {
        await L.stopHost(h);
      }
    }
  } finally {
    await browser.close();
    fs.rmSync(tmp, {recursive: true, force: true});
  }
}

function print(r, head) {
  const pad = (s, n) => String(s).padStart(n);
  if (head) {
    console.log(`${'profile'.padEnd(30)} ${pad('proto', 9)} ${pad('ours: open->drawn', 18)} ${pad('in the browser', 15)} ` +
      `${pad('frames', 7)} ${pad('pprof -http', 12)} ${pad('ours/pprof', 11)}`);
  }
  const theirs = Number.isNaN(r.pprof) ? ['-', '-'] : [r.pprof.toFixed(0) + ' ms', (r.total / r.pprof).toFixed(2)];
  console.log(`${r.name.padEnd(30)} ${pad((r.bytes / 1024).toFixed(0) + ' KiB', 9)} ${pad(r.total.toFixed(0) + ' ms', 18)} ` +
    `${pad(r.inBrowser.toFixed(0) + ' ms', 15)} ${pad(r.frames, 7)} ${pad(theirs[0], 12)} ${pad(theirs[1], 11)}`);
}

main().catch((e) => {
  console.error(e.stack || e);
  process.exit(1);
});
