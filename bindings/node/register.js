'use strict';
// `node -r uv-pprof/register app.js`: starts uv-pprof from UV_PPROF (and
// UV_PPROF_TOKEN) before the app runs, with no code change. Unset, empty or
// 0 does nothing. A bad value or a busy port prints one line on stderr (the
// C library's) and the app runs on without profiling. Under the uv-pprof
// launcher only the process it started serves (UV_PPROF_ATTACH_PID): child
// node processes inherit NODE_OPTIONS and leave it be.

const owner = process.env.UV_PPROF_ATTACH_PID;
if (!owner || owner === String(process.pid)) {
  try {
    require('./index.js').startFromEnv();
  } catch (err) {
    if (typeof err.code !== 'string' || !err.code.startsWith('E')) throw err;
  }
}
