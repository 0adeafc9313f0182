'use strict';
// JIT frames get names: node --perf-basic-prof writes /tmp/perf-<pid>.map,
// and a CPU profile served by uv-pprof while a JS function burns the CPU
// names that function (go tool pprof -top shows it heaviest). Without the
// flag the same frames read [jit]. The maps the children wrote are removed.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(240);

const dir = t.tmpdir();
const app = path.join(dir, 'hot.js');
fs.writeFileSync(app, `
const pprof = require('uv-pprof');
let running = true;
let sink = 0;
// 20 ms of arithmetic per turn of the loop; V8 compiles the loop (OSR).
function busyLoopForPerfMap() {
  const t0 = Date.now();
  let s = 0;
  while (Date.now() - t0 < 20)
    for (let i = 0; i < 20000; i++) s += Math.sqrt(i) % 7;
  sink += s;
  if (running) setImmediate(busyLoopForPerfMap);
}
console.log('url=' + pprof.start({ port: 0, quiet: true }));
busyLoopForPerfMap();
process.stdin.on('data', () => {});
process.stdin.on('end', () => { running = false; pprof.stop(); });
`);

// Runs the app (with node's extra flags), takes a 3 s CPU profile from it
// and returns go tool pprof's -top rows.
async function profile(flags, name) {
  const c = t.spawn(process.execPath, [...flags, app],
                    { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
  const map = `/tmp/perf-${c.pid}.map`;
  try {
    const url = (await t.waitFor(c.stdout, /^url=(\S+)$/m))[1].replace('localhost', '127.0.0.1');
    const file = path.join(dir, `${name}.pb.gz`);
    assert.strictEqual(await t.curl(url + 'profile?seconds=3', file), 200);
    c.stdin.end();
    const { code } = await c.exited;
    assert.strictEqual(code, 0);
    assert.strictEqual(fs.existsSync(map), flags.includes('--perf-basic-prof'),
                       `${map} and flags ${flags}`);
    const out = t.pprof(['-top', '-nodefraction=0', file]);
    console.log(`${name}:\n${out.split('\n').slice(0, 10).join('\n')}`);
    return t.topRows(out);
  } finally {
    fs.rmSync(map, { force: true });
  }
}

async function main() {
  let rows = await profile(['--perf-basic-prof'], 'perf-basic-prof');
  assert(rows.length > 0 && /busyLoopForPerfMap/.test(rows[0].name),
         `busyLoopForPerfMap is not the heaviest function: ${JSON.stringify(rows.slice(0, 5))}`);

  rows = await profile([], 'plain');
  assert(!rows.some((r) => /busyLoopForPerfMap/.test(r.name)), 'a name without a map');
  assert(rows.length > 0 && rows[0].name === '[jit]',
         `[jit] is not the heaviest frame: ${JSON.stringify(rows.slice(0, 5))}`);
  console.log('perfmap.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
