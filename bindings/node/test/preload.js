'use strict';
// `node -r uv-pprof/register app.js` with no change to the app: UV_PPROF
// (and UV_PPROF_TOKEN) start it, the banner names the port, curl from
// outside sees the app's handles; unset, it does nothing; a bad value prints
// one line and the app runs on. In every case the app exits by itself (code
// 0) once its own work is done.

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const t = require('./lib.js');

t.watchdog(120);

// The app: a watcher and a timer until its stdin ends; prints what
// uv-pprof's url() says (null when not serving).
const app = path.join(t.tmpdir(), 'app.js');
fs.writeFileSync(app, `
const fs = require('fs');
const w = fs.watch(${JSON.stringify(t.tmpdir())}, () => {});
const iv = setInterval(() => {}, 1000);
console.log('url=' + require('uv-pprof').url());
process.stdin.on('data', () => {});
process.stdin.on('end', () => { clearInterval(iv); w.close(); });
`);

function run(env) {
  const c = t.spawn(process.execPath, ['-r', 'uv-pprof/register', app], {
    cwd: t.tmpdir(),
    env: { ...process.env, UV_PPROF: '', UV_PPROF_TOKEN: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  c.stderrText = t.collect(c.stderr);
  c.urlLine = t.waitFor(c.stdout, /^url=(.*)$/m);
  return c;
}

async function finish(c) {
  c.stdin.end();
  const { code, signal } = await c.exited;
  assert.strictEqual(signal, null);
  assert.strictEqual(code, 0, await c.stderrText);
  return c.stderrText;
}

async function main() {
  // Enabled: the banner, then curl from outside.
  let c = run({ UV_PPROF: '127.0.0.1:0' });
  const banner = await t.waitFor(c.stderr, /^pprof enabled on (http:\/\/localhost:(\d+)\/debug\/pprof\/)$/m);
  assert.strictEqual((await c.urlLine)[1], banner[1]);
  const base = `http://127.0.0.1:${banner[2]}/debug/pprof/`;
  const file = path.join(t.tmpdir(), 'g.txt');
  assert.strictEqual(await t.curl(base + 'goroutine?debug=1', file), 200);
  const groups = t.goroutineGroups(fs.readFileSync(file, 'utf8'));
  const names = groups.map((g) => `${g.labels.type} ${g.labels.state} ${g.frames[0]}`);
  assert(names.some((n) => /^uv_fs_event_t active, ref .*FSEventWrap/.test(n)), names.join('\n'));
  assert(names.some((n) => /^uv_timer_t active, ref .*RunTimers/.test(n)), names.join('\n'));
  await finish(c);

  // With a token.
  c = run({ UV_PPROF: '127.0.0.1:0', UV_PPROF_TOKEN: 's3cret' });
  const port = (await t.waitFor(c.stderr, /^pprof enabled on http:\/\/localhost:(\d+)\//m))[1];
  const cmdline = `http://127.0.0.1:${port}/debug/pprof/cmdline`;
  assert.strictEqual(await t.curl(cmdline, file), 401);
  assert.strictEqual(await t.curl(cmdline, file, ['-H', 'Authorization: Bearer s3cret']), 200);
  assert(fs.readFileSync(file, 'utf8').split('\0').includes('uv-pprof/register'));
  await finish(c);

  // Unset: nothing at all.
  c = run({});
  assert.strictEqual((await c.urlLine)[1], 'null');
  assert.strictEqual(await finish(c), '');

  // A bad value: one line, and the app runs on.
  c = run({ UV_PPROF: 'bogus:port' });
  assert.strictEqual((await c.urlLine)[1], 'null');
  const err = await finish(c);
  assert.match(err, /^uv_pprof: UV_PPROF="bogus:port" is not valid: .*\n$/);
  console.log('preload.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
