'use strict';
// The goroutine profile of a real node process: 10 setInterval timers, an
// HTTP server with 3 connected clients and an fs.watch. ?debug=1 is fetched
// from inside node (http.get) and with curl from outside and checked against
// the libuv section of process.report and process.getActiveResourcesInfo():
// the referenced handles (those that keep node alive; uv-pprof's are all
// unref'd) must be the report's, type for type, and every callback must be
// symbolized from the node binary. ?debug=2 must list every handle of the
// report by address but uv-pprof's own. Also: no libuv but node's in the
// process, stop() closes the port, and the script ends by itself.

const assert = require('assert');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const t = require('./lib.js');

// The libuv files mapped before and after loading the addon: node's own
// (none when it is linked in, Debian's libuv1 when node uses it shared).
const libuvFiles = () => new Set(fs.readFileSync('/proc/self/maps', 'utf8')
  .split('\n').filter((l) => /\/libuv[^/]*\.so/.test(l)).map((l) => l.split(/\s+/)[5]));
const nodesLibuv = libuvFiles();
const pprof = require('uv-pprof');

t.watchdog(120);

function resourceCounts() {
  const c = {};
  for (const r of process.getActiveResourcesInfo()) t.bump(c, r);
  return c;
}

const isRef = (h) => h.raw.is_referenced;

function reportRefCounts(handles) {
  const c = {};
  for (const h of handles.filter(isRef)) t.bump(c, h.type);
  return c;
}

function profileRefCounts(groups) {
  const c = {};
  for (const g of groups.filter((x) => x.labels.state.endsWith(', ref'))) {
    t.bump(c, g.labels.type, g.count);
  }
  return c;
}

// The states of the groups of `type`, with their counts.
function states(groups, type) {
  const c = {};
  for (const g of groups.filter((x) => x.labels.type === type)) t.bump(c, g.labels.state, g.count);
  return c;
}

// The callback names of the groups of `type`.
function callbacks(groups, type) {
  return groups.filter((g) => g.labels.type === type).map((g) => g.frames[0]);
}

function refKey(handles, ignoreType) {
  return handles.filter((h) => isRef(h) && h.type !== ignoreType)
    .map((h) => `${h.type}@${h.address}`).sort().join(' ');
}

// Runs fetch() until the referenced handles were the same in the report
// taken right after the request started (r.now: it has the fetching side's
// own socket or process) and in the one taken when the answer was in
// (r.after); node makes some lazily (stdout's pipe at the first
// console.log). Handles of type ignoreType are left out of the comparison.
// Returns fetch()'s result.
async function stable(what, fetch, ignoreType) {
  for (let attempt = 1; attempt <= 10; attempt++) {
    const r = await fetch();
    if (refKey(r.now, ignoreType) === refKey(r.after, ignoreType)) return r;
    console.log(`${what}: node's referenced handles changed during the request; again`);
  }
  assert.fail(`${what}: node's handles never stayed the same for a whole request`);
}

async function main() {
  // The world.
  const server = http.createServer((req, res) => res.end('ok'));
  const accepted = [];
  server.on('connection', (s) => accepted.push(s));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const clients = await Promise.all([0, 1, 2].map(() => new Promise((resolve) => {
    const s = net.connect(server.address().port, '127.0.0.1', () => resolve(s));
  })));
  while (accepted.length < 3) await new Promise((resolve) => setImmediate(resolve));
  const timeoutsBefore = resourceCounts().Timeout || 0;
  const timers = [];
  for (let i = 0; i < 10; i++) timers.push(setInterval(() => {}, 60000 + i));
  const watcher = fs.watch(t.tmpdir(), () => {});

  const resources = resourceCounts();
  assert.strictEqual((resources.Timeout || 0) - timeoutsBefore, 10, JSON.stringify(resources));
  assert.strictEqual(resources.TCPServerWrap, 1, JSON.stringify(resources));
  assert.strictEqual(resources.TCPSocketWrap, 6, JSON.stringify(resources));
  assert.strictEqual(resources.FSEventWrap, 1, JSON.stringify(resources));
  const beforeStart = new Set(t.reportHandles().map((h) => h.address));

  // Serving.
  const url = pprof.start({ port: 0, quiet: true });
  assert.match(url, /^http:\/\/localhost:\d+\/debug\/pprof\/$/);
  assert.strictEqual(pprof.url(), url);
  const port = Number(new URL(url).port);
  const base = `http://127.0.0.1:${port}/debug/pprof/`;
  assert.throws(() => pprof.start({ port: 0 }), { code: 'EBUSY' });

  // From inside node.
  const inside = await stable('http.get', async () => {
    const fetching = t.get(base + 'goroutine?debug=1', t.reportHandles);
    const now = t.reportHandles();
    const r = await fetching;
    assert.strictEqual(r.status, 200, r.body.toString());
    return { text: r.body.toString(), now, after: r.atEnd, ms: r.ms };
  });
  console.log(`first goroutine request (symbolizes node): ${inside.ms.toFixed(1)} ms`);
  const groups = t.goroutineGroups(inside.text);
  assert.deepStrictEqual(profileRefCounts(groups), reportRefCounts(inside.now),
                         `http.get: the profile vs the report:\n${inside.text}`);

  // What getActiveResourcesInfo() says, in libuv's terms: all JS timers
  // share node's one uv_timer_t; every server and socket is a uv_tcp_t (one
  // more: the fetch's).
  assert.deepStrictEqual(states(groups, 'uv_fs_event_t'), { 'active, ref': resources.FSEventWrap });
  assert.deepStrictEqual(states(groups, 'uv_tcp_t'),
                         { 'active, ref': resources.TCPServerWrap + resources.TCPSocketWrap + 1 });
  // Named as go tool pprof shows C++ names: demangled, without parameters.
  const jsTimers = groups.filter((g) => g.labels.type === 'uv_timer_t' &&
                                        /^node::Environment::RunTimers\+0x0(\s|$)/.test(g.frames[0]));
  assert.strictEqual(jsTimers.length, 1, inside.text);
  assert.strictEqual(jsTimers[0].count, 1);
  assert.strictEqual(jsTimers[0].labels.state, 'active, ref');

  // Native callbacks, symbolized from the node binary.
  for (const g of groups) {
    if (g.labels.state.startsWith('inactive')) continue; // may have none
    assert(g.frames.length >= 1 && !/^0x/.test(g.frames[0]),
           `unsymbolized callback: ${JSON.stringify(g)}`);
  }
  assert(callbacks(groups, 'uv_tcp_t').some((f) => /OnConnection/.test(f)), inside.text);
  assert(callbacks(groups, 'uv_fs_event_t').every((f) => /FSEventWrap/.test(f)), inside.text);

  // ?debug=2: every handle by address; those of the report it leaves out
  // are uv-pprof's own: unref'd, made after start(), or on its port.
  const detailed = await stable('http.get ?debug=2', async () => {
    const fetching = t.get(base + 'goroutine?debug=2', t.reportHandles);
    const now = t.reportHandles();
    const r = await fetching;
    assert.strictEqual(r.status, 200);
    return { text: r.body.toString(), now, after: r.atEnd };
  });
  const listed = new Map();
  const re = /^(uv_\w+_t)\((0x[0-9a-f]+)\)\n\t(.*)$/gm;
  for (let m; (m = re.exec(detailed.text)) !== null;) {
    listed.set(BigInt(m[2]), { type: m[1], facts: m[3] });
  }
  const reported = new Map([...detailed.now, ...detailed.after].map((h) => [h.address, h]));
  for (const [a, l] of listed) {
    const h = reported.get(a);
    assert(h !== undefined, `?debug=2 lists ${l.type}(0x${a.toString(16)}), not in the report`);
    assert.strictEqual(l.type, h.type);
  }
  for (const h of detailed.now) {
    if (listed.has(h.address)) continue;
    const onPort = h.type === 'uv_tcp_t' && h.raw.localEndpoint && h.raw.localEndpoint.port === port;
    assert(!isRef(h) && (onPort || !beforeStart.has(h.address)),
           `report handle ${JSON.stringify(h.raw)} not in ?debug=2`);
  }
  assert.strictEqual([...listed.values()].filter(
    (l) => l.facts.includes(`peer 127.0.0.1:${port},`)).length, 1, 'the fetch\'s own socket');

  // From outside: curl, whose uv_process_t is the extra handle (gone
  // again when the second report is taken).
  const file = path.join(t.tmpdir(), 'goroutine.txt');
  const outside = await stable('curl', async () => {
    const fetching = t.curl(base + 'goroutine?debug=1', file);
    const now = t.reportHandles();
    assert.strictEqual(await fetching, 200);
    return { text: fs.readFileSync(file, 'utf8'), now, after: t.reportHandles() };
  }, 'uv_process_t');
  const outsideGroups = t.goroutineGroups(outside.text);
  assert.deepStrictEqual(profileRefCounts(outsideGroups), reportRefCounts(outside.now),
                         `curl: the profile vs the report:\n${outside.text}`);
  assert.deepStrictEqual(states(outsideGroups, 'uv_process_t'), { 'active, ref': 1 });
  assert(callbacks(outsideGroups, 'uv_process_t').every((f) => /ProcessWrap/.test(f)), outside.text);

  // One libuv in the process: node's.
  assert.deepStrictEqual(libuvFiles(), nodesLibuv, 'the addon brought a libuv of its own');
  assert(nodesLibuv.size <= 1, [...nodesLibuv].join(' '));
  assert(/\/uv_pprof\.node$/m.test(fs.readFileSync('/proc/self/maps', 'utf8')),
         'uv_pprof.node is not mapped');

  pprof.stop();
  assert.strictEqual(pprof.url(), null);
  await new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', (e) => { assert.strictEqual(e.code, 'ECONNREFUSED'); resolve(); });
    s.on('connect', () => assert.fail('still listening after stop()'));
  });

  for (const x of timers) clearInterval(x);
  watcher.close();
  for (const s of clients) s.destroy();
  server.close();
  server.closeAllConnections();
  console.log('handles.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
