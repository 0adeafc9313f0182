'use strict';
// Worker threads under `node -r uv-pprof/register` (ctest runs this script
// so, with UV_PPROF=127.0.0.1:0): the preload runs in each worker too and
// registers the worker's loop with the server on the main thread's, so the
// goroutine profile shows the worker's handles under a loop of their own;
// when the worker ends, its loop leaves the profile and closes cleanly
// (node aborts on a loop that still has handles), and the process exits.

const assert = require('assert');
const { Worker } = require('worker_threads');
const t = require('./lib.js');
const pprof = require('uv-pprof');

t.watchdog(60);

async function loops(base) {
  const r = await t.get(base + 'goroutine?debug=1');
  assert.strictEqual(r.status, 200);
  const byLoop = {};
  for (const g of t.goroutineGroups(r.body.toString())) {
    (byLoop[g.labels.loop] = byLoop[g.labels.loop] || []).push(g);
  }
  return byLoop;
}

async function main() {
  assert(pprof.url() !== null, 'run me with -r uv-pprof/register and UV_PPROF set');
  const base = pprof.url().replace('localhost', '127.0.0.1');
  const w = new Worker(`
    const { parentPort } = require('worker_threads');
    const iv = setInterval(() => {}, 1000);
    parentPort.postMessage(require('uv-pprof').url());
    parentPort.once('message', () => { clearInterval(iv); parentPort.close(); });
  `, { eval: true });
  const exited = new Promise((resolve) => w.on('exit', resolve));
  assert.strictEqual(await new Promise((resolve) => w.once('message', resolve)), null,
                     'the worker\'s loop is only registered: no server of its own');

  const during = await loops(base);
  assert.strictEqual(Object.keys(during).length, 2, JSON.stringify(Object.keys(during)));

  w.postMessage('bye');
  assert.strictEqual(await exited, 0);
  const after = await loops(base);
  const [main] = Object.keys(after);
  assert.strictEqual(Object.keys(after).length, 1, JSON.stringify(Object.keys(after)));
  assert(main in during, `the main thread's loop ${main} changed`);
  const [worker] = Object.keys(during).filter((id) => id !== main);
  assert(during[worker].some((g) => g.labels.type === 'uv_timer_t' &&
                                    g.labels.state === 'active, ref' &&
                                    /RunTimers/.test(g.frames[0])),
         `the worker's loop ${worker} has no running JS timer`);
  console.log('worker.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
