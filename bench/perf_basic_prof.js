'use strict';
// bench/perf_basic_prof.js: what `node --perf-basic-prof` (the perf map that
// lets uv_pprof name JIT frames) costs node itself, against plain node in the
// same run, runs alternating (and of --perf-basic-prof-only-functions, which
// leaves out builtins and stubs): start-up, a workload that compiles many
// functions (each compilation appends a line to /tmp/perf-<pid>.map), and a
// steady hot loop. Prints medians, their ratio and the map's size.
//
// Usage: node bench/perf_basic_prof.js [runs (default 7)]

const child_process = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

// The children run here: node --perf-basic-prof also leaves V8's
// isolate-*-v8.log in its working directory.
const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-basic-prof-'));
process.on('exit', () => fs.rmSync(cwd, { recursive: true, force: true }));

const runs = Number(process.argv[2]) || 7;

const workloads = {
  'start-up (node -e 0)': '0',
  // 20 000 distinct functions, each called until V8 optimizes it.
  'compile 20k functions': `
    let s = 0;
    for (let i = 0; i < 20000; i++) {
      const f = new Function('a', 'return a * ' + i + ' + ' + (i % 7));
      for (let k = 0; k < 200; k++) s += f(k);
    }
    if (s === 42) console.log(s);`,
  // 300 ms of arithmetic in one hot function, reported as iterations.
  'steady hot loop (iterations)': `
    function hot(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i) % 7; return s; }
    const t0 = process.hrtime.bigint(); let it = 0, s = 0;
    while (process.hrtime.bigint() - t0 < 300000000n) { s += hot(10000); it++; }
    process.stdout.write(String(it));`,
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

// One run: wall ms (or the iterations the script printed) and the map's size.
function once(flags, script) {
  const t0 = process.hrtime.bigint();
  const r = child_process.spawnSync(process.execPath, [...flags, '-e', script],
                                    { encoding: 'utf8', cwd });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${flags} failed: ${r.stderr}`);
  const map = `/tmp/perf-${r.pid}.map`;
  let bytes = 0;
  let lines = 0;
  if (fs.existsSync(map)) {
    const text = fs.readFileSync(map, 'utf8');
    bytes = text.length;
    lines = text.split('\n').length - 1;
    fs.rmSync(map);
  }
  return { value: r.stdout.trim() !== '' ? Number(r.stdout) : ms, bytes, lines };
}

const variants = [['--perf-basic-prof'], ['--perf-basic-prof-only-functions']];
console.log(`node ${process.version}; median of ${runs} runs, alternating; ratio = against plain\n`);
console.log(`${'workload'.padEnd(30)} ${'plain'.padStart(8)}  ` +
            variants.map((v) => `${v[0].padStart(33)} ${'ratio'.padStart(6)} ` +
                         `${'lines'.padStart(6)} ${'KiB'.padStart(5)}`).join('  '));
for (const [name, script] of Object.entries(workloads)) {
  const plain = [];
  const got = variants.map(() => ({ values: [], lines: [], bytes: [] }));
  for (let i = 0; i < runs; i++) {
    plain.push(once([], script).value);
    variants.forEach((flags, k) => {
      const m = once(flags, script);
      got[k].values.push(m.value);
      got[k].lines.push(m.lines);
      got[k].bytes.push(m.bytes);
    });
  }
  const p = median(plain);
  const unit = name.includes('iterations') ? '' : ' ms';
  console.log(`${name.padEnd(30)} ${(p.toFixed(0) + unit).padStart(8)}  ` +
              got.map((g) => {
                const m = median(g.values);
                return `${(m.toFixed(0) + unit).padStart(33)} ${(m / p).toFixed(3).padStart(6)} ` +
                       `${String(median(g.lines)).padStart(6)} ${(median(g.bytes) / 1024).toFixed(0).padStart(5)}`;
              }).join('  '));
}
