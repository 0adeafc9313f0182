'use strict';
// Loop stalls in node: a timer holds the main loop four times in the test
// addon's uv_pprof_node_test_spin (150 ms of CPU each); the block profile,
// fetched with curl and read by go tool pprof, names that function with
// four contentions and at least their time, in the timers phase of a
// uv_timer_t; /metrics counts the four stalls.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(180);

const dir = t.tmpdir();
const app = path.join(dir, 'stall.js');
fs.writeFileSync(app, `
const addon = require(process.env.UV_PPROF_NODE_TESTADDON);
const pprof = require('uv-pprof');
console.log('url=' + pprof.start({ port: 0, quiet: true }));
let n = 0;
const timer = setInterval(() => {
  addon.spin(150);
  if (++n === 4) {
    clearInterval(timer);
    console.log('done');
  }
}, 400);
process.stdin.on('data', () => {});
process.stdin.on('end', () => pprof.stop());
`);

async function main() {
  const c = t.spawn(process.execPath, [app], { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
  const url = (await t.waitFor(c.stdout, /^url=(\S+)$/m))[1].replace('localhost', '127.0.0.1');
  await t.waitFor(c.stdout, /^done$/m);
  const file = path.join(dir, 'block.pb.gz');
  assert.strictEqual(await t.curl(url + 'block', file), 200);
  const metrics = path.join(dir, 'metrics.txt');
  assert.strictEqual(await t.curl(url.replace('/debug/pprof/', '/metrics'), metrics), 200);
  c.stdin.end();
  const { code } = await c.exited;
  assert.strictEqual(code, 0);

  const count = t.topRows(t.pprof(['-top', '-sample_index=contentions', file]))
    .find((r) => r.name === 'uv_pprof_node_test_spin');
  assert(count !== undefined && count.cum === 4, `four stalls in spin: ${JSON.stringify(count)}`);
  const out = t.pprof(['-top', '-sample_index=delay', '-unit=ms', file]);
  const delay = t.topRows(out).find((r) => r.name === 'uv_pprof_node_test_spin');
  assert(delay !== undefined && delay.cum >= 4 * 150 * 0.95, `their delay:\n${out}`);
  const tags = t.pprof(['-tags', file]);
  assert(/phase: Total/.test(tags) && /\btimers\b/.test(tags) && /uv_timer_t/.test(tags),
         `labels:\n${tags}`);
  const stalls = /^uv_pprof_loop_stalls_total\{loop="[^"]+"\} (\d+)$/m
    .exec(fs.readFileSync(metrics, 'utf8'));
  assert(stalls !== null && Number(stalls[1]) === 4, `stalls in /metrics: ${stalls}`);
  console.log(out.split('\n').slice(0, 10).join('\n'));
  console.log('stall.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
