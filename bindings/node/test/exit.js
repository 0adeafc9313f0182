'use strict';
// Nothing of uv-pprof keeps node alive: a script that starts it, has a
// goroutine profile and a CPU profile served (so that uv-pprof's worker
// thread runs) and then has nothing left to do exits by itself with code 0;
// so does an empty script under `-r uv-pprof/register`. Prints how long
// each exit took after the script's last callback.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(120);

const script = path.join(t.tmpdir(), 'idle.js');
fs.writeFileSync(script, `
const http = require('http');
const url = require('uv-pprof').start({ port: 0, quiet: true }).replace('localhost', '127.0.0.1');
function get(u, next) {
  http.get(u, { agent: false }, (res) => {
    if (res.statusCode !== 200) throw new Error(u + ': ' + res.statusCode);
    res.resume();
    res.on('end', next);
  });
}
get(url + 'goroutine', () => get(url + 'profile?seconds=1', () => {
  process.stdout.write('done ' + Date.now() + '\\n');
}));
`);

async function timeToExit(args, env) {
  const c = t.spawn(process.execPath, args, {
    cwd: t.tmpdir(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out = t.collect(c.stdout);
  const { code, signal } = await c.exited;
  const end = Date.now();
  assert.strictEqual(signal, null);
  assert.strictEqual(code, 0);
  const m = /^done (\d+)$/m.exec(await out);
  assert(m, `the script did not finish its work: ${await out}`);
  return end - Number(m[1]);
}

async function main() {
  const ms = await timeToExit([script], {});
  console.log(`start() + goroutine + profile?seconds=1, then idle: exited ${ms} ms after its last callback`);
  const ms2 = await timeToExit(['-r', 'uv-pprof/register', '-e',
                                'setTimeout(() => console.log("done " + Date.now()), 100)'],
                               { UV_PPROF: '127.0.0.1:0' });
  console.log(`-r uv-pprof/register, empty script: exited ${ms2} ms after its last callback`);
  console.log('exit.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
