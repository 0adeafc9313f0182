'use strict';
// uv-pprof: Go's /debug/pprof/ endpoints served on Node's own libuv loop by
// the uv_pprof addon (uv_pprof.node, built by CMake; see the README). This
// file validates the options and hands them to the addon; everything the
// addon opens is unref'd, so it never keeps the process alive.

const addon = require('./uv_pprof.node');

const KNOWN = new Set(['host', 'port', 'token', 'quiet']);

function check(options) {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') {
    throw new TypeError('uv-pprof: options must be an object');
  }
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) {
      throw new TypeError(`uv-pprof: unknown option "${k}" ` +
                          '(expected host, port, token, quiet)');
    }
  }
  const out = {};
  const { host, port, token, quiet } = options;
  if (host !== undefined) {
    if (typeof host !== 'string' || host === '') {
      throw new TypeError('uv-pprof: options.host must be a non-empty string');
    }
    out.host = host;
  }
  if (port !== undefined) {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(
        `uv-pprof: options.port must be an integer from 0 to 65535, not ${port}`);
    }
    out.port = port;
  }
  if (token !== undefined) {
    if (typeof token !== 'string') {
      throw new TypeError('uv-pprof: options.token must be a string');
    }
    out.token = token;
  }
  if (quiet !== undefined) {
    if (typeof quiet !== 'boolean') {
      throw new TypeError('uv-pprof: options.quiet must be a boolean');
    }
    out.quiet = quiet ? 1 : 0;
  }
  return out;
}

// Starts serving on this thread's loop and returns the index URL
// ("http://localhost:PORT/debug/pprof/"). Defaults: host 127.0.0.1, port
// 6060 (0 picks a free one), no token. Throws with .code EADDRINUSE,
// EACCES (non-loopback host without a token), EINVAL (a bad value, or a
// token under 16 characters for a non-loopback host) or EBUSY (already
// started on this thread). In a worker thread while another thread serves,
// it registers this thread's loop (its handles join the goroutine profile)
// and returns null.
function start(options) {
  return addon.start(check(options));
}

// Starts as configured by UV_PPROF, UV_PPROF_TOKEN and UV_PPROF_TRACK (the C
// library's rules; README). Returns the URL, or null when UV_PPROF is unset,
// empty or 0. Throws as start() on a bad value.
function startFromEnv() {
  return addon.startFromEnv();
}

// Closes everything uv-pprof opened on this thread's loop. Safe to call
// when nothing was started.
function stop() {
  addon.stop();
}

// The index URL while serving on this thread's loop, else null.
function url() {
  return addon.url();
}

module.exports = { start, startFromEnv, stop, url };
