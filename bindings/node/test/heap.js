'use strict';
// Native memory of a node process in the heap profile: node runs with
// jemalloc preloaded and profiling on (the README's command), the test
// addon keeps 32 MiB from one malloc in uv_pprof_node_test_leak, and
// `go tool pprof -top` of /debug/pprof/heap fetched with curl must show that
// function with 32 MiB in use, within 10 %.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(180);

const MIB = 1 << 20;
const app = path.join(t.tmpdir(), 'leaky.js');
fs.writeFileSync(app, `
const addon = require(process.env.UV_PPROF_NODE_TESTADDON);
const pprof = require('uv-pprof');
if (addon.leak() !== ${32 * MIB}) throw new Error('malloc failed');
console.log('url=' + pprof.start({ port: 0, quiet: true }));
process.stdin.on('data', () => {});
process.stdin.on('end', () => pprof.stop());
`);

async function main() {
  const so = process.env.UV_PPROF_NODE_JEMALLOC;
  assert(so && fs.existsSync(so), `UV_PPROF_NODE_JEMALLOC=${so}`);
  const c = t.spawn(process.execPath, [app], {
    cwd: t.tmpdir(),
    env: { ...process.env, LD_PRELOAD: so, MALLOC_CONF: 'prof:true,prof_accum:true' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const url = (await t.waitFor(c.stdout, /^url=(\S+)$/m))[1].replace('localhost', '127.0.0.1');

  const text = path.join(t.tmpdir(), 'heap.txt');
  assert.strictEqual(await t.curl(url + 'heap?debug=1', text), 200);
  assert.match(fs.readFileSync(text, 'utf8'), /\n# jemalloc\.opt\.prof = true\n/);
  const file = path.join(t.tmpdir(), 'heap.pb.gz');
  assert.strictEqual(await t.curl(url + 'heap', file), 200);
  c.stdin.end();
  const { code } = await c.exited;
  assert.strictEqual(code, 0);

  const out = t.pprof(['-top', '-unit=B', '-nodefraction=0', '-sample_index=inuse_space', file]);
  const row = t.topRows(out).find((r) => r.name === 'uv_pprof_node_test_leak');
  assert(row, `uv_pprof_node_test_leak not in the heap profile:\n${out}`);
  console.log(`uv_pprof_node_test_leak: ${row.flat} B in use (32 MiB = ${32 * MIB})`);
  assert(Math.abs(row.flat - 32 * MIB) <= 0.1 * 32 * MIB, out);
  console.log('heap.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
