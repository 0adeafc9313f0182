/* The profile layer: the endpoints. Each endpoint's file defines its route,
 * a descriptor `const uv_pprof__route_t uv_pprof__route_<name>` saying
 * what the endpoint is (path, handler, index description, body limit,
 * parameters), which router.c's table lists. A named profile is a
 * descriptor that profile/named.c serves generically (proto, ?debug=N
 * text, ?seconds=N deltas, the index page's counts); the other endpoints
 * have handlers of their own (profile/cpu.c, profile/symbol.c,
 * profile/cmdline.c, metrics.c, timeline.c). Every handler owns the request
 * it is given and finishes it exactly once. Depends on every layer below. */
#ifndef UV_PPROF_PROFILE_H
#define UV_PPROF_PROFILE_H

#include "pprof.h"
#include "request.h"

/* ---- src/profile/: one descriptor per named profile -------------------- */

typedef struct uv_pprof__profile_s {
  const char* name; /* its file name in Content-Disposition */
  /* All of these run on the worker thread, except loop_snapshot. */
  /* The index page's count (NULL for a profile with loop_snapshot). */
  int64_t (*count)(void);
  /* Takes a snapshot; returns 0 or a negative libuv code. */
  int (*snapshot)(void** snap);
  void (*snapshot_free)(void* snap);
  /* Sets the profile's period, sample types and default sample type. */
  void (*types)(uv_pprof__builder_t* b);
  /* Writes the snapshot's samples into b, every value multiplied by `sign`
   * (a delta writes p0 with -1, then p1 with +1). */
  void (*emit)(const void* snap, uv_pprof__builder_t* b, int sign);
  /* The ?debug=N (N >= 1) text. Returns 0 or a negative libuv code. */
  int (*text)(const void* snap, int debug, uv_pprof__buf_t* out);
  /* Optional, for data that only loop threads may read (uv_walk). When set,
   * named.c calls loop_snapshot(loop, &snap) on the serving loop's thread
   * in place of snapshot() — for each half of a delta and for the index
   * page — and then complete(snap) on the worker before using it; the index
   * page's count is snapshot_count(snap). snapshot_free() frees a snapshot
   * in either state. Both return 0 or a negative libuv code. */
  int (*loop_snapshot)(uv_loop_t* loop, void** snap);
  int (*complete)(void* snap);
  int64_t (*snapshot_count)(const void* snap);
} uv_pprof__profile_t;

/* profile/heap.c: a heap snapshot from a jemalloc state and a parsed dump,
 * whose memory it takes over (the descriptors pass the live state and a
 * fresh prof.dump; tests pass fixtures). Returns 0 or UV_ENOMEM; free it
 * with the descriptor's snapshot_free. Worker thread. */
int uv_pprof__heap_snapshot(const uv_pprof__je_state_t* st,
                            uv_pprof__je_dump_t* dump, void** out);
/* Go's scaleHeapSample: a row of `objs` sampled objects, `bytes` bytes,
 * taken at one sample per `rate` bytes on average, unbiased (truncated as
 * Go truncates). */
void uv_pprof__heap_unbias(uint64_t objs, uint64_t bytes, uint64_t rate,
                           int64_t* out_objs, int64_t* out_bytes);
extern const uv_pprof__profile_t uv_pprof__profile_allocs;
extern const uv_pprof__profile_t uv_pprof__profile_block;
extern const uv_pprof__profile_t uv_pprof__profile_heap;
extern const uv_pprof__profile_t uv_pprof__profile_mutex;
extern const uv_pprof__profile_t uv_pprof__profile_threadcreate;
extern const uv_pprof__profile_t uv_pprof__profile_goroutine;

/* cmdline.c: argv joined by NUL, no trailing byte. Loop thread (reads a
 * few bytes of /proc/self/cmdline). */
int uv_pprof__cmdline(uv_pprof__buf_t* out);

/* symbol.c: the largest request body taken (413 beyond). */
#define UV_PPROF__MAX_SYMBOL_BODY (4u << 20)

/* cpu.c: /debug/pprof/profile?seconds=N. */
#define UV_PPROF__CPU_DEFAULT_SECONDS 30
#define UV_PPROF__CPU_MAX_SECONDS 3600
#define UV_PPROF__CPU_MAX_WINDOWS 8 /* profiles at once; more get 503 */
/* The duration a raw query asks for, as Go reads it: "seconds" parsed as a
 * base-10 int64, UV_PPROF__CPU_DEFAULT_SECONDS when absent, invalid or
 * <= 0. The bound is the caller's to check. */
long long uv_pprof__cpu_seconds(const char* query);

/* ---- routes: what an endpoint is ----------------------------------------- */

#define UV_PPROF__MAX_ROUTES 32 /* rows of router.c's table, at most */

#define UV_PPROF__ROUTE_DEBUG 1 /* ?debug=N >= 1 answers text */

#define UV_PPROF__ROUTE_SECONDS 2 /* ?seconds=N answers a delta */

/* path is a prefix: the route serves every path under it (the UI's) */
#define UV_PPROF__ROUTE_PREFIX 4

/* answers a profile.proto of its own (a named profile's route needs no
 * flag): /debug/pprof/ui/<name> can draw it */
#define UV_PPROF__ROUTE_PROTO 8

struct uv_pprof__route_s {
  const char* name; /* the index page's row, /metrics' endpoint label */
  /* served exactly (a path other than this: 404), or every path under it
   * with UV_PPROF__ROUTE_PREFIX */
  const char* path;
  /* Owns req from then on and finishes it exactly once (a named profile's
   * is uv_pprof__serve_profile). Loop thread. */
  void (*serve)(uv_pprof__request_t* req);
  const uv_pprof__profile_t* profile; /* a named profile, or NULL */
  const char* description; /* the index page's; NULL: not listed there */
  size_t body_limit;       /* request body bytes taken; 0: none (413) */
  unsigned flags;          /* UV_PPROF__ROUTE_* */
};

/* ---- src/profile/named.c: named profiles and the index page ------------- */

/* The handler of every named profile's route: req->route->profile as the
 * proto, the ?debug=N text, or the ?seconds=N delta (two snapshots a window
 * apart, on an unref'd timer). Loop thread; owns req from then on and
 * finishes it. (The index page's route is named.c's too: Go's table of the
 * routes with a description, named profiles with their counts.) */
void uv_pprof__serve_profile(uv_pprof__request_t* req);

/* ---- src/profile/ui.c: the built-in UI -------------------------------- */

/* A file of the UI (src/ui/), embedded by cmake/ui_assets.cmake. */
typedef struct uv_pprof__asset_s {
  const char* name; /* "index.html", "ui.js", ... */
  const char* content_type;
  const unsigned char* data; /* as written */
  size_t len;
  const unsigned char* gz; /* gzipped */
  size_t gz_len;
  const char* etag;    /* "ETag: \"<sha-256 prefix>\"" header line */
  const char* etag_gz; /* the same for the gzipped form */
} uv_pprof__asset_t;

/* Generated into <build>/ui/ui_assets.c. */
extern const uv_pprof__asset_t uv_pprof__ui_assets[];
extern const size_t uv_pprof__ui_nassets;

/* ---- src/metrics.c: /metrics and the request accounting ---------------- */

/* Notes when req was routed (req->route says for which endpoint). Loop
 * thread, when the router has matched it. */
void uv_pprof__metrics_begin(uv_pprof__request_t* req);
/* Counts req's answer (status class, duration) for its endpoint. Loop
 * thread, when the answer is about to be written. */
void uv_pprof__metrics_observe(const uv_pprof__request_t* req);

/* ---- src/timeline.c: the ring of periodic memory samples --------------- */

#define UV_PPROF__TIMELINE_ROWS 10080 /* a week at one sample a minute */
#define UV_PPROF__TIMELINE_MAX_SECONDS 86400

typedef struct uv_pprof__timeline_s uv_pprof__timeline_t;

/* Starts sampling every `seconds` on the serving loop (one unref'd timer;
 * the first sample is taken at once), each sample a light job on `worker`.
 * Serving loop's thread. Returns 0 and *out, or UV_ENOMEM. */
int uv_pprof__timeline_start(uv_loop_t* loop, uv_pprof__worker_t* worker,
                             unsigned seconds, uv_pprof__timeline_t** out);
/* Stops it; after the server has closed (no job of it is left on the
 * worker). The memory is freed once the timer has closed. */
void uv_pprof__timeline_stop(uv_pprof__timeline_t* t);
/* The sampling interval in seconds, 0 when no timeline runs. Any thread. */
unsigned uv_pprof__timeline_interval(void);

#endif /* UV_PPROF_PROFILE_H */
