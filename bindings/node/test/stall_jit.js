'use strict';
// JavaScript by name in stalls: node --perf-basic-prof writes
// /tmp/perf-<pid>.map, from which uv_pprof names JIT code. A timer holds the
// loop eight times in busyJsLoop, plain JavaScript spinning 150 ms, while a
// CPU profile is taken. go tool pprof must read eight stalls in the block
// profile, busyJsLoop named in them (in seven at least: a loaded machine may
// leave one unsampled) with their time, and busyJsLoop in the CPU profile.
// The map the child wrote is removed.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(180);

const dir = t.tmpdir();
const app = path.join(dir, 'busy.js');
fs.writeFileSync(app, `
const pprof = require('uv-pprof');
function busyJsLoop(ms) {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  return x;
}
console.log('url=' + pprof.start({ port: 0, quiet: true }));
let n = 0;
const timer = setInterval(() => {
  busyJsLoop(150);
  if (++n === 8) {
    clearInterval(timer);
    console.log('done');
  }
}, 300);
process.stdin.on('data', () => {});
process.stdin.on('end', () => pprof.stop());
`);

// The largest cum of a row naming busyJsLoop in go tool pprof -top output.
function named(out, what) {
  const rows = t.topRows(out).filter((r) => r.name.includes('busyJsLoop'));
  assert(rows.length > 0, `busyJsLoop not named in the ${what}:\n${out}`);
  return rows.reduce((s, r) => Math.max(s, r.cum), 0);
}

async function main() {
  const c = t.spawn(process.execPath, ['--perf-basic-prof', app],
                    { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
  const map = `/tmp/perf-${c.pid}.map`;
  try {
    // Both lines are awaited from the start: a line that came while nobody
    // listened would be lost.
    const urlLine = t.waitFor(c.stdout, /^url=(\S+)$/m);
    const done = t.waitFor(c.stdout, /^done$/m);
    const url = (await urlLine)[1].replace('localhost', '127.0.0.1');
    const cpu = path.join(dir, 'cpu.pb.gz');
    assert.strictEqual(await t.curl(url + 'profile?seconds=1', cpu), 200);
    await done;
    const block = path.join(dir, 'block.pb.gz');
    assert.strictEqual(await t.curl(url + 'block', block), 200);
    c.stdin.end();
    const { code } = await c.exited;
    assert.strictEqual(code, 0);
    assert(fs.existsSync(map), `${map} was not written`);

    const stalls = t.pprof(['-top', '-sample_index=contentions', block]);
    console.log(stalls.split('\n').slice(0, 12).join('\n'));
    // Every stall seen once; each named by its samples, but for one that a
    // loaded machine may leave unsampled.
    const total = /of (\d+) total/.exec(stalls);
    assert(total !== null && Number(total[1]) === 8, `eight stalls:\n${stalls}`);
    assert(named(stalls, 'block profile') >= 7, `its stalls:\n${stalls}`);
    const delay = t.pprof(['-top', '-sample_index=delay', '-unit=ms', block]);
    assert(named(delay, 'block profile') >= 7 * 150 * 0.95, `their delay:\n${delay}`);
    const prof = t.pprof(['-top', cpu]);
    console.log(prof.split('\n').slice(0, 12).join('\n'));
    named(prof, 'CPU profile');
  } finally {
    fs.rmSync(map, { force: true });
  }
  console.log('stall_jit.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
