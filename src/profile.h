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

typedef struct uv_pprof__hsnap_s uv_pprof__hsnap_t; /* src/history.c */

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
  /* Optional, for a profile the history keeps (heap, allocs, goroutine):
   * the difference between a later moment — the live snapshot `snap`
   * (complete), or when that is NULL the kept snapshot `at` — and the kept
   * snapshot `base` (struct uv_pprof__hsnap_s, below): its samples (types
   * already set; comments and period included) and its ?debug=1 text.
   * Worker thread. */
  void (*base_emit)(const void* snap, const uv_pprof__hsnap_t* at,
                    const uv_pprof__hsnap_t* base, uv_pprof__builder_t* b);
  int (*base_text)(const void* snap, const uv_pprof__hsnap_t* at,
                   const uv_pprof__hsnap_t* base, uv_pprof__buf_t* out);
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
/* profile/mutex.c: sets libuv_pprof_track's lock sampling rate (0: off).
 * Returns 0, or UV_ENOENT when the tracker is not in the process. Any
 * thread. */
int uv_pprof__mutex_set_rate(unsigned rate);
extern const uv_pprof__profile_t uv_pprof__profile_threadcreate;
extern const uv_pprof__profile_t uv_pprof__profile_goroutine;

/* ---- src/groups.c: handles grouped as the goroutine profile shows them -- */

/* What one sample of the goroutine profile shows: alike handles (same
 * type, state, loop, age bucket, callback, creation stack) and how many. */
typedef struct uv_pprof__hgroup_s {
  uintptr_t cb; /* 0: none */
  uintptr_t loop;
  const uintptr_t* stack; /* creation stack, return addresses; NULL: none */
  size_t nstack;
  int type;  /* uv_handle_type */
  int state; /* UV_PPROF__HANDLE_CLOSING, else ACTIVE | REF bits */
  int age;   /* bucket: <1m, 1-10m, 10-60m, 1-24h, >24h */
  int64_t count;
} uv_pprof__hgroup_t;

/* The groups of a completed handle snapshot, in order of first appearance,
 * into a malloc'd array (their stacks point into s), and with gid (may be
 * NULL) a malloc'd array of each handle's group. Returns 0 or UV_ENOMEM.
 * Worker thread. */
int uv_pprof__hgroups_make(const uv_pprof__handles_snap_t* s,
                           uv_pprof__hgroup_t** groups, size_t* n,
                           size_t** gid);

/* A group's labels as the goroutine profile writes them (type, state, loop,
 * age), with the storage of their strings. */
typedef struct uv_pprof__hgroup_labels_s {
  char type[24];
  char loop[24];
  uv_pprof__label_t labels[4];
} uv_pprof__hgroup_labels_t;

void uv_pprof__hgroup_labels(const uv_pprof__hgroup_t* g,
                             uv_pprof__hgroup_labels_t* l);
/* "uv_timer_t" for UV_TIMER, into buf. */
void uv_pprof__handle_type_name(int type, char* buf, size_t size);
/* "active, ref", "closing", ...: a state's text. */
const char* uv_pprof__handle_state_text(int state);

/* ---- src/profile/goroutine.c: the goroutine profile's groups ------------ */

/* One sample per group, its count times `sign`, as the goroutine profile
 * writes them: samples with the same key merge in the builder. */
void uv_pprof__goroutine_emit_groups(uv_pprof__builder_t* b,
                                     const uv_pprof__hgroup_t* groups, size_t n,
                                     int sign);
/* Go's ?debug=1 text of these groups. Returns 0 or UV_ENOMEM. Worker
 * thread. */
int uv_pprof__goroutine_text_groups(const uv_pprof__hgroup_t* groups, size_t n,
                                    uv_pprof__buf_t* out);

/* cmdline.c: argv joined by NUL, no trailing byte. Loop thread (reads a
 * few bytes of /proc/self/cmdline). */
int uv_pprof__cmdline(uv_pprof__buf_t* out);

/* symbol.c: the largest request body taken (413 beyond). */
#define UV_PPROF__MAX_SYMBOL_BODY (4u << 20)
/* /debug/pprof/symbol answers 413 to more addresses in one request: each
 * costs the worker a lookup and the answer a line. */
#define UV_PPROF__MAX_SYMBOL_ADDRS 65536
/* The answer's body for the '+'-separated addresses of p[0..len): Go's
 * "num_symbols: 1", then "0x<addr> <name>" for each token that parses as
 * Go's ParseUint(s, 0, 64) and names a function; other tokens give no
 * line. Returns 0, UV_E2BIG beyond UV_PPROF__MAX_SYMBOL_ADDRS tokens (out
 * untouched), UV_ECANCELED when its server stops, or UV_ENOMEM. Worker
 * thread (it symbolizes). */
int uv_pprof__symbol_answer(const char* p, size_t len, uv_pprof__buf_t* out);

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

#define UV_PPROF__ROUTE_DEBUG 1   /* ?debug=N >= 1 answers text */
#define UV_PPROF__ROUTE_SECONDS 2 /* ?seconds=N answers a delta */
/* path is a prefix: the route serves every path under it (the UI's) */
#define UV_PPROF__ROUTE_PREFIX 4

/* answers a profile.proto of its own (a named profile's route needs no
 * flag): /debug/pprof/ui/<name> can draw it */
#define UV_PPROF__ROUTE_PROTO 8
/* ?base=<age> diffs against the history */
#define UV_PPROF__ROUTE_BASE 16

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

/* What a timeline sample saw, for whoever watches the samples (the flight
 * recorder). */
typedef struct uv_pprof__timeline_sample_s {
  int64_t time_ns;                         /* wall clock of the tick */
  uint64_t rss;                            /* bytes */
  const uv_pprof__handles_snap_t* handles; /* completed; NULL: no walk */
  const uv_pprof__timeline_t* timeline;
} uv_pprof__timeline_sample_t;

/* Called on the worker after each sample (given through a pointer: the
 * recorder builds profiles, which the timeline must not call). */
typedef void (*uv_pprof__sample_cb)(const uv_pprof__timeline_sample_t* s);

/* Starts sampling every `seconds` on the serving loop (one unref'd timer;
 * the first sample is taken at once), each sample a light job on `worker`,
 * then after_sample (may be NULL). Serving loop's thread. Returns 0 and
 * *out, or UV_ENOMEM. */
int uv_pprof__timeline_start(uv_loop_t* loop, uv_pprof__worker_t* worker,
                             unsigned seconds, uv_pprof__sample_cb after_sample,
                             uv_pprof__timeline_t** out);
/* The rows as mem-monitor.sh's CSV into out. Returns 0 or UV_ENOMEM.
 * Worker thread. */
int uv_pprof__timeline_csv(const uv_pprof__timeline_t* t, uv_pprof__buf_t* out);
/* Stops it; after the server has closed (no job of it is left on the
 * worker). The memory is freed once the timer has closed. */
void uv_pprof__timeline_stop(uv_pprof__timeline_t* t);
/* The sampling interval in seconds, 0 when no timeline runs. Any thread. */
unsigned uv_pprof__timeline_interval(void);

/* ---- src/history.c: the kept snapshots --------------------------------- */

#define UV_PPROF__HISTORY_DEFAULT_MB 8
/* Below this a budget cannot hold the stack table's first mappings and a
 * snapshot: refused at start. */
#define UV_PPROF__HISTORY_MIN (256 * 1024)

/* A kept snapshot, decoded. */
struct uv_pprof__hsnap_s {
  int64_t time_ns; /* wall clock of the timeline sample it was taken with */
  uv_pprof__je_state_t je;
  int have_heap;            /* heap profiling was on: heap holds its rows */
  uv_pprof__je_dump_t heap; /* rows (their stacks held by this), period */
  int have_handles;         /* the handle walk completed */
  size_t nmissing;          /* loops that did not answer that walk */
  uv_pprof__hgroup_t* groups;
  size_t ngroups;
  uint32_t* stack_ids; /* private: the groups' creation stacks, held */
  uintptr_t* frames;   /* private: their frames */
};

typedef struct uv_pprof__history_stats_s {
  size_t budget; /* bytes; 0: history off */
  int on;        /* 0 also when a snapshot did not fit the budget */
  size_t kept;
  size_t taken;       /* since start */
  size_t blob_bytes;  /* of the kept snapshots */
  size_t stack_bytes; /* the stack table's mappings */
  size_t used;        /* all that counts against the budget */
  size_t largest;     /* bytes of the largest kept snapshot */
  size_t largest_raw; /* ... of the largest before deflate */
} uv_pprof__history_stats_t;

/* Sets the budget in bytes (0: off), dropping anything kept. Returns 0, or
 * UV_EINVAL below UV_PPROF__HISTORY_MIN. With no worker job running
 * (uv_pprof.c calls it through uv_pprof__worker_exclusive at start and
 * stop). */
int uv_pprof__history_configure(size_t budget);
/* Whether snapshots are kept. Worker thread, or before the worker runs. */
int uv_pprof__history_on(void);
/* Takes a snapshot of the heap (a dump, when jemalloc profiles) and of the
 * handle groups of `handles` (completed; NULL when the walk failed), taken
 * with the timeline sample of time_ns, keeps it, then thins the history
 * and fits the budget. A snapshot that cannot fit even alone turns history
 * off with one line on stderr (UV_ENOSPC). Returns 0 or a negative code.
 * Worker thread. */
int uv_pprof__history_take(int64_t time_ns,
                           const uv_pprof__handles_snap_t* handles);
/* What take does once it has them: keeps a snapshot of a heap dump (NULL:
 * heap profiling off) and handle groups (NULL: the walk failed), their
 * stacks then held by it. Tests give it fixtures. Worker thread. */
int uv_pprof__history_keep(int64_t time_ns, const uv_pprof__je_state_t* je,
                           const uv_pprof__je_dump_t* heap,
                           const uv_pprof__hgroup_t* groups, size_t ngroups,
                           size_t nmissing);
/* The kept snapshots, oldest first: how many, the time of the i-th, the
 * i-th decoded (free it with uv_pprof__hsnap_free; 0 or a negative code),
 * and the index of the one nearest to `when` (count must be > 0). Worker
 * thread. */
size_t uv_pprof__history_count(void);
int64_t uv_pprof__history_time(size_t i);
int uv_pprof__history_get(size_t i, uv_pprof__hsnap_t* out);
size_t uv_pprof__history_nearest(int64_t when);
void uv_pprof__hsnap_free(uv_pprof__hsnap_t* s);
void uv_pprof__history_stats(uv_pprof__history_stats_t* st);
/* Drops everything kept (the budget stays). Worker thread, or none. */
void uv_pprof__history_reset(void);

/* The policy, on times[0..n) ascending (ns), at `now`. thin: marks in
 * drop[] every snapshot that is not the first kept one of its hour (once
 * older than an hour) or of its day (once older than a day), never the
 * first nor the last; returns how many. cheapest: the snapshot whose loss
 * leaves the smallest gap between its neighbours for its age, never the
 * first nor the last (n >= 3). */
size_t uv_pprof__history_thin(const int64_t* times, size_t n, int64_t now,
                              uint8_t* drop);
size_t uv_pprof__history_cheapest(const int64_t* times, size_t n, int64_t now);

/* ---- src/recorder.c: the flight recorder -------------------------------- */

/* Sets it up from the options (with no worker job running: uv_pprof.c
 * calls it through uv_pprof__worker_exclusive at start and stop): off
 * without a directory; the line at rss_mb MiB, or at percent % of the
 * cgroup's memory.max. Problems get one line on stderr each: no line or
 * both (UV_EINVAL, off), a percentage without memory.max (UV_ENOENT, off),
 * a directory not writable now (0: it is tried again at each crossing).
 * Returns 0 when on or off as asked. */
int uv_pprof__recorder_configure(const char* dir, unsigned rss_mb,
                                 unsigned percent);
int uv_pprof__recorder_on(void);
/* After each timeline sample, on the worker: writes the heap and goroutine
 * profiles and the timeline when s->rss crossed the line, then raises it. */
void uv_pprof__recorder_check(const uv_pprof__timeline_sample_t* s);
/* Test hook: when set, the directory whose memory.max is read instead of
 * the process's cgroup's. */
extern const char* uv_pprof__recorder_cgroup_dir;

/* ---- src/when.c: moments of the history, as requests name them --------- */

typedef struct uv_pprof__when_s {
  int start;       /* "start": the oldest kept snapshot */
  int64_t time_ns; /* the moment, wall clock */
  int64_t age_ns;  /* how long before the request */
  char text[64];   /* the value as given (for messages) */
} uv_pprof__when_t;

typedef struct uv_pprof__placed_s {
  size_t index; /* of the kept snapshot nearest to the moment */
  int64_t time_ns;
  int64_t age_ns;     /* its age when placed */
  int before_history; /* the moment is older than the history */
} uv_pprof__placed_t;

/* Parses parameter `name`'s value s ("start" but for window, a positive
 * duration back from `now`, an RFC 3339 time). Returns 0, or -1 with Go's
 * style of 400 text in why ("invalid value for \"base\" - ..."): garbage,
 * negative, zero or future. Any thread. */
int uv_pprof__when_parse(const char* name, const char* s, int64_t now,
                         uv_pprof__when_t* out, char* why, size_t size);
/* 0 when the history holds a snapshot; else UV_ENOENT and in why, the
 * reason and how to turn it on. Worker thread. */
int uv_pprof__history_off_reason(char* why, size_t size);
/* The kept snapshot for w: the nearest, or the oldest for a moment older
 * than the history (before_history set). Returns 0, UV_ENOENT when nothing
 * is kept, UV_EINVAL (reason in why) for a moment older than the process.
 * Worker thread. */
int uv_pprof__when_place(const char* name, const uv_pprof__when_t* w,
                         int64_t now, uv_pprof__placed_t* out, char* why,
                         size_t size);
/* The sentence saying which snapshot `name`=w got ("base=30s: the snapshot
 * of 2026-...(31s ago)", or that it was older than the history). */
void uv_pprof__when_note(const char* name, const uv_pprof__when_t* w,
                         const uv_pprof__placed_t* p, char* note, size_t size);
/* "45s", "3m12s", "2h5m", "1d3h". */
void uv_pprof__format_age(int64_t ns, char* buf, size_t size);

#endif /* UV_PPROF_PROFILE_H */
