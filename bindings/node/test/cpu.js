'use strict';
// A CPU profile of native code in node: JS calls the test addon's busy
// uv_pprof_node_test_spin over and over while /debug/pprof/profile is
// fetched with curl; `go tool pprof -top` must show that function first.
// With --cpu-prof (node.js cpu-prof as argument), V8's sampler runs at the
// same time: both profiles must come out, V8's .cpuprofile naming the JS
// function that calls spin.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(180);

const withV8 = process.argv.includes('cpu-prof');
const dir = t.tmpdir();
const app = path.join(dir, 'busy.js');
fs.writeFileSync(app, `
const addon = require(process.env.UV_PPROF_NODE_TESTADDON);
const pprof = require('uv-pprof');
let running = true;
function burnNative() {
  addon.spin(20);
  if (running) setImmediate(burnNative);
}
console.log('url=' + pprof.start({ port: 0, quiet: true }));
burnNative();
process.stdin.on('data', () => {});
process.stdin.on('end', () => { running = false; pprof.stop(); });
`);

async function main() {
  const args = withV8 ? ['--cpu-prof', '--cpu-prof-dir', dir, app] : [app];
  const c = t.spawn(process.execPath, args, { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
  const url = (await t.waitFor(c.stdout, /^url=(\S+)$/m))[1].replace('localhost', '127.0.0.1');
  const file = path.join(dir, 'cpu.pb.gz');
  assert.strictEqual(await t.curl(url + 'profile?seconds=2', file), 200);
  c.stdin.end();
  const { code } = await c.exited;
  assert.strictEqual(code, 0);

  const out = t.pprof(['-top', '-nodefraction=0', file]);
  // With --cpu-prof, V8's own SIGPROF handler runs on the main thread a
  // thousand times a second; on a loaded machine it waits there for V8's
  // profiler thread and can come out as heavy as the spin. It is V8's
  // profiler at work, not the program's: the spin must outweigh the rest.
  const rows = t.topRows(out).filter((r) => !(withV8 && r.name.startsWith('v8::sampler::')));
  assert(rows.length > 0 && rows[0].name === 'uv_pprof_node_test_spin',
         `uv_pprof_node_test_spin is not the heaviest function:\n${out}`);
  console.log(out.split('\n').slice(0, 8).join('\n'));

  if (withV8) {
    const written = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    assert.strictEqual(written.length, 1, `V8 wrote ${written}`);
    const v8 = JSON.parse(fs.readFileSync(path.join(dir, written[0]), 'utf8'));
    assert(Array.isArray(v8.nodes) && v8.samples.length > 0, 'empty .cpuprofile');
    const burn = v8.nodes.filter((n) => n.callFrame.functionName === 'burnNative');
    assert(burn.length > 0, 'burnNative not in the .cpuprofile');
    console.log(`V8's ${written[0]}: ${v8.samples.length} samples, ` +
                `${burn.reduce((s, n) => s + n.hitCount, 0)} hits in burnNative`);
  }
  console.log('cpu.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
