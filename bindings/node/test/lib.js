'use strict';
// Helpers of the uv-pprof tests: HTTP fetches from inside node, child
// processes (curl, node, go tool pprof) tracked and killed by PID at exit, a
// watchdog that bounds every script's time, and the parsers of the profiles'
// text forms.

const assert = require('assert');
const child_process = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const children = new Set();
let tmp = null;

process.on('exit', () => {
  for (const c of children) {
    try { process.kill(c.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
  }
  if (tmp !== null) fs.rmSync(tmp, { recursive: true, force: true });
});

// Fails the script after `seconds` (unref'd: it never keeps it alive).
function watchdog(seconds) {
  setTimeout(() => {
    console.error(`${path.basename(process.argv[1])}: timed out after ${seconds} s`);
    process.exit(1);
  }, seconds * 1000).unref();
}

function tmpdir() {
  if (tmp === null) tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'uv-pprof-node-'));
  return tmp;
}

// GET url from this process, on a connection of its own (no keep-alive).
// Resolves {status, body, ms, atEnd} once the socket has closed; atEnd is
// what onEnd() returned when the response had just ended.
function get(url, onEnd = () => undefined) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.get(url, { agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const atEnd = onEnd();
        const done = () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), ms, atEnd });
        if (res.socket.destroyed) done(); else res.socket.once('close', done);
      });
    });
    req.on('error', reject);
  });
}

// Starts a tracked child; resolves {code, signal} when it exits.
function spawn(cmd, args, options) {
  const c = child_process.spawn(cmd, args, options);
  children.add(c);
  c.exited = new Promise((resolve, reject) => {
    c.on('error', reject);
    c.on('exit', (code, signal) => { children.delete(c); resolve({ code, signal }); });
  });
  return c;
}

// curl url into `file`, with no pipe to this process (so that the only
// handle it adds to this loop is its uv_process_t). Resolves the HTTP code.
async function curl(url, file, extra = []) {
  const out = fs.openSync(file + '.code', 'w');
  const c = spawn('curl', ['-sS', '--max-time', '60', '-o', file, '-w', '%{http_code}',
                           ...extra, url],
                  { stdio: ['ignore', out, 'inherit'] });
  fs.closeSync(out);
  const { code } = await c.exited;
  assert.strictEqual(code, 0, `curl ${url} exited ${code}`);
  return Number(fs.readFileSync(file + '.code', 'utf8'));
}

// go tool pprof ARGS... (synchronously: only for profiles of other processes
// or after this process's own fetches are done). Returns stdout.
function pprof(args) {
  const dir = tmpdir();
  const r = child_process.spawnSync('go', ['tool', 'pprof', ...args], {
    env: { ...process.env, HOME: dir, PPROF_TMPDIR: dir },
    encoding: 'utf8', timeout: 120000, maxBuffer: 64 << 20,
  });
  assert.strictEqual(r.status, 0, `go tool pprof ${args.join(' ')}: ${r.status}\n${r.stderr}`);
  return r.stdout;
}

// The rows of `go tool pprof -top` output: {flat, cum, name} (numbers in the
// unit asked for, e.g. -unit=B).
function topRows(out) {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => /^\s*flat\s+flat%/.test(l));
  assert(at >= 0, `no -top table in:\n${out}`);
  const rows = [];
  for (const l of lines.slice(at + 1)) {
    const m = /^\s*(\S+)\s+\S+%\s+\S+%\s+(\S+)\s+\S+%\s+(.+)$/.exec(l);
    if (m) rows.push({ flat: parseFloat(m[1]), cum: parseFloat(m[2]), name: m[3].trim() });
  }
  return rows;
}

// The groups of a goroutine ?debug=1 text: {count, labels, frames: [name]}.
function goroutineGroups(text) {
  assert(/^goroutine profile: total \d+\n/.test(text), `not a goroutine profile:\n${text}`);
  const groups = [];
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l !== '');
    const head = lines.findIndex((l) => /^\d+ @/.test(l));
    if (head < 0) continue;
    const g = { count: Number(lines[head].split(' ')[0]), labels: null, frames: [] };
    for (const l of lines.slice(head + 1)) {
      if (l.startsWith('# labels: ')) g.labels = JSON.parse(l.slice(10));
      else if (/^#\s+0x[0-9a-f]+/.test(l)) g.frames.push(l.replace(/^#\s+0x[0-9a-f]+\s*/, '').trim());
    }
    assert(g.labels !== null, `group without labels:\n${block}`);
    groups.push(g);
  }
  const total = Number(/^goroutine profile: total (\d+)/.exec(text)[1]);
  assert.strictEqual(groups.reduce((s, g) => s + g.count, 0), total, 'total != sum of groups');
  return groups;
}

// Adds n to counts[key].
function bump(counts, key, n = 1) {
  counts[key] = (counts[key] || 0) + n;
  if (counts[key] === 0) delete counts[key];
}

// The handles of the libuv section of process.report: [{type, address
// (BigInt), raw}], types in the goroutine profile's naming.
function reportHandles() {
  const out = [];
  for (const h of process.report.getReport().libuv) {
    if (h.type === 'loop') continue;
    out.push({
      type: `uv_${h.type}_t`,
      address: BigInt(h.address),
      raw: h,
    });
  }
  return out;
}

// Reads a child's stream until `re` matches what came so far; resolves the
// match.
function waitFor(stream, re) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const on = (d) => {
      seen += d;
      const m = re.exec(seen);
      if (m) { stream.off('data', on); resolve(m); }
    };
    stream.setEncoding('utf8');
    stream.on('data', on);
    stream.on('end', () => reject(new Error(`stream ended before ${re}: ${seen}`)));
  });
}

// Collects a stream's text; the promise resolves at its end.
function collect(stream) {
  return new Promise((resolve) => {
    let seen = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => { seen += d; });
    stream.on('end', () => resolve(seen));
  });
}

module.exports = {
  waitFor, collect,
  watchdog, tmpdir, get, spawn, curl, pprof, topRows, goroutineGroups, bump,
  reportHandles,
};
