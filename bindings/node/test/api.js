'use strict';
// The JS API's contract: start() returns the URL and honours host, port and
// token; stop() and restart; bad options throw clear errors (TypeError,
// RangeError, or Error with the libuv code) and leave nothing started.

const assert = require('assert');
const http = require('http');
const net = require('net');
const t = require('./lib.js');
const pprof = require('uv-pprof');

t.watchdog(60);

function status(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false, headers }, (res) => { res.resume(); resolve(res.statusCode); })
      .on('error', reject);
  });
}

async function main() {
  assert.strictEqual(pprof.url(), null);
  pprof.stop(); // nothing started: a no-op

  assert.throws(() => pprof.start('6060'), TypeError);
  assert.throws(() => pprof.start({ port: 70000 }), RangeError);
  assert.throws(() => pprof.start({ port: 1.5 }), RangeError);
  assert.throws(() => pprof.start({ host: 5 }), TypeError);
  assert.throws(() => pprof.start({ token: 5 }), TypeError);
  assert.throws(() => pprof.start({ prot: 1 }), /unknown option "prot"/);
  assert.throws(() => pprof.start({ host: 'not-an-address', port: 0 }), { code: 'EINVAL' });
  assert.throws(() => pprof.start({ host: '0.0.0.0', port: 0 }), { code: 'EACCES' });
  assert.throws(() => pprof.start({ host: '0.0.0.0', port: 0, token: 'short' }), { code: 'EINVAL' });
  const busy = net.createServer();
  await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve));
  assert.throws(() => pprof.start({ port: busy.address().port, quiet: true }),
                { code: 'EADDRINUSE', message: /address already in use/ });
  busy.close();
  assert.strictEqual(pprof.url(), null, 'a failed start() left something behind');

  // Token, on an explicit host.
  let url = pprof.start({ host: '127.0.0.1', port: 0, token: 's3cret', quiet: true });
  const base = url.replace('localhost', '127.0.0.1');
  assert.strictEqual(await status(base + 'cmdline'), 401);
  assert.strictEqual(await status(base + 'cmdline', { Authorization: 'Bearer s3cret' }), 200);
  pprof.stop();
  assert.strictEqual(pprof.url(), null);

  // Again, without a token.
  url = pprof.start({ port: 0, quiet: true });
  assert.strictEqual(await status(url.replace('localhost', '127.0.0.1') + 'cmdline'), 200);
  pprof.stop();
  console.log('api.js: ok');
}

main().catch((e) => { console.error(e); process.exit(1); });
