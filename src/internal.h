/* Internal prototypes of uv_pprof, grouped by subsystem. Nothing here is
 * exported: the library is built with hidden visibility and only the
 * uv_pprof_* functions of include/uv_pprof.h leave it. docs/INTERNALS.md maps
 * each group to its file. */
#ifndef UV_PPROF_INTERNAL_H
#define UV_PPROF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "uv_pprof.h"

#define UV_PPROF__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define UV_PPROF__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define UV_PPROF__PRINTF(f, a)
#endif

/* Request limits. Larger requests get Go-style plain-text errors. */
#define UV_PPROF__MAX_URL 4096          /* 414 beyond */
#define UV_PPROF__MAX_HEADERS 16384     /* 431 beyond (names + values) */
#define UV_PPROF__MAX_SYMBOL_BODY (4u << 20) /* 413 beyond; other routes take none */
#define UV_PPROF__MAX_PENDING_INPUT 65536 /* pipelined bytes kept per conn */
#define UV_PPROF__WORKER_IDLE_MS 10000  /* the worker thread exits after this */

/* ---- buf.c: growable byte buffer with a sticky out-of-memory flag ------- */

typedef struct uv_pprof__buf_s {
  char* base;
  size_t len;
  size_t cap;
  int oom; /* set once an append failed; later appends do nothing */
} uv_pprof__buf_t;

void uv_pprof__buf_init(uv_pprof__buf_t* b);
void uv_pprof__buf_free(uv_pprof__buf_t* b);
/* Both return 0 or UV_ENOMEM (and set b->oom). */
int uv_pprof__buf_append(uv_pprof__buf_t* b, const void* data, size_t len);
int uv_pprof__buf_printf(uv_pprof__buf_t* b, const char* fmt, ...)
    UV_PPROF__PRINTF(2, 3);
/* Appends s with &, <, >, ' and " escaped for HTML. */
int uv_pprof__buf_html(uv_pprof__buf_t* b, const char* s);
/* Moves src's contents into dst (dst's old contents are freed). */
void uv_pprof__buf_move(uv_pprof__buf_t* dst, uv_pprof__buf_t* src);

/* ---- src/pprof/builder.c: profile.proto builder ------------------------- */

typedef struct uv_pprof__builder_s uv_pprof__builder_t;

typedef struct uv_pprof__label_s {
  const char* key;
  const char* str; /* string label when non-NULL ... */
  int64_t num;     /* ... numeric label otherwise */
  const char* num_unit; /* optional unit of a numeric label */
} uv_pprof__label_t;

/* A new builder whose time_nanos is now. NULL when out of memory. */
uv_pprof__builder_t* uv_pprof__builder_new(void);
void uv_pprof__builder_free(uv_pprof__builder_t* b);
/* Index of s in the string table ("" is 0), deduplicated. */
int64_t uv_pprof__builder_string(uv_pprof__builder_t* b, const char* s);
void uv_pprof__builder_period(uv_pprof__builder_t* b, const char* type,
                              const char* unit, int64_t period);
void uv_pprof__builder_sample_type(uv_pprof__builder_t* b, const char* type,
                                   const char* unit);
void uv_pprof__builder_default_sample_type(uv_pprof__builder_t* b,
                                           const char* type);
void uv_pprof__builder_comment(uv_pprof__builder_t* b, const char* text);
void uv_pprof__builder_time(uv_pprof__builder_t* b, int64_t time_nanos);
void uv_pprof__builder_duration(uv_pprof__builder_t* b, int64_t nanos);
/* Location id for a code address (a call site: return address - 1 for all
 * but the leaf), deduplicated by address. Its mapping is found at encode. */
uint64_t uv_pprof__builder_location(uv_pprof__builder_t* b, uintptr_t addr);
/* Location id of a named frame that has no address (a thread's name, a
 * handle type): its own function `name` (file may be NULL), no mapping. */
uint64_t uv_pprof__builder_frame(uv_pprof__builder_t* b, const char* name,
                                 const char* file);
/* Adds a sample; `values` has one entry per sample type. A sample with the
 * same locations and labels as an earlier one is merged into it by adding the
 * values, so writing p0 with negated values and then p1 yields p1 - p0. */
void uv_pprof__builder_sample(uv_pprof__builder_t* b, const uint64_t* locs,
                              size_t nlocs, const int64_t* values,
                              const uv_pprof__label_t* labels,
                              size_t nlabels);
/* Number of samples added so far (after merging). */
size_t uv_pprof__builder_sample_count(const uv_pprof__builder_t* b);
/* Reads the mappings, encodes the profile and gzips it into out. Samples whose
 * values are all zero are left out (pprof drops them anyway). Returns 0 or a
 * negative libuv code (UV_ENOMEM on any earlier allocation failure). */
int uv_pprof__builder_encode(uv_pprof__builder_t* b, uv_pprof__buf_t* out);

/* ---- src/pprof/gzip.c -------------------------------------------------- */

/* gzip (deflate level 1, like Go's gzip.BestSpeed) of data into out.
 * Returns 0 or UV_ENOMEM / UV_EIO. */
int uv_pprof__gzip(const void* data, size_t len, uv_pprof__buf_t* out);

/* ---- src/maps.c: the process's executable mappings --------------------- */

typedef struct uv_pprof__mapping_s {
  uintptr_t start;
  uintptr_t limit;
  uintptr_t offset;
  char* path;     /* as in /proc/self/maps, " (deleted)" trimmed */
  char* build_id; /* lowercase hex of NT_GNU_BUILD_ID, or NULL */
} uv_pprof__mapping_t;

/* Executable mappings of /proc/self/maps in maps order, except that those of
 * the main executable come first. Anonymous regions are skipped; [vdso] and
 * [vsyscall] are kept. Returns 0 or a negative libuv code. */
int uv_pprof__maps_read(uv_pprof__mapping_t** maps, size_t* count);
void uv_pprof__maps_free(uv_pprof__mapping_t* maps, size_t count);

/* ---- src/symbolize.c: code address -> function, file, line ------------- */

#define UV_PPROF__MAX_INLINE 8

typedef struct uv_pprof__symbol_s {
  const char* name;   /* linker name (mangled for C++), NULL when unknown */
  const char* file;   /* source file, NULL when unknown */
  int line;           /* source line, 0 when unknown */
  uintptr_t start;    /* entry address of `name` (addr - start = offset) */
  const char* module; /* path of the object containing the address */
} uv_pprof__symbol_t;

/* Symbolizes addr, a call site (return address - 1 for every frame but the
 * leaf). Fills out[0..n) innermost inlined frame first, the real function
 * last, and returns n >= 1 when some loaded object contains addr (its
 * frames may have name NULL), 0 when none does. Objects loaded later with
 * dlopen are picked up. The strings stay valid until
 * uv_pprof__symbolizer_reset(). Worker thread only. */
size_t uv_pprof__symbolize(uintptr_t addr, uv_pprof__symbol_t* out,
                           size_t max);
/* Frees every table and cache (the next use rebuilds them). Called with no
 * worker thread running. */
void uv_pprof__symbolizer_reset(void);

/* ---- src/threads.c: the process's threads ------------------------------ */

typedef struct uv_pprof__thread_s {
  int tid;
  char name[16]; /* /proc/self/task/<tid>/comm */
} uv_pprof__thread_t;

/* The threads of the process, sorted by tid; the caller frees the array with
 * free(). Returns 0 or a negative code. */
int uv_pprof__threads_read(uv_pprof__thread_t** threads, size_t* count);

/* ---- src/worker.c: uv_pprof's own thread -------------------------------- */

typedef struct uv_pprof__worker_s uv_pprof__worker_t;
typedef struct uv_pprof__job_s uv_pprof__job_t;

/* Runs on the worker thread. */
typedef void (*uv_pprof__work_cb)(uv_pprof__job_t* job);
/* Runs on the loop thread once work is done; `cancelled` when the worker is
 * being stopped (the job must then only free what it owns). */
typedef void (*uv_pprof__done_cb)(uv_pprof__job_t* job, int cancelled);

struct uv_pprof__job_s {
  uv_pprof__work_cb work;
  uv_pprof__done_cb done;
  void* data;
  uv_pprof__job_t* next; /* private to worker.c */
};

/* Creates the worker of `loop`: one unref'd uv_async_t, no thread yet.
 * Returns NULL when out of memory or when the async handle cannot start. */
uv_pprof__worker_t* uv_pprof__worker_new(uv_loop_t* loop);
/* Queues a job, starting the thread if needed. Loop thread only.
 * Returns 0 or a negative libuv code (the job is then not queued). */
int uv_pprof__worker_submit(uv_pprof__worker_t* w, uv_pprof__job_t* job);
/* True once uv_pprof__worker_close() began: long jobs poll it and give up. */
int uv_pprof__worker_cancelled(const uv_pprof__worker_t* w);
/* Stops the thread (after its current job), calls done(job, 1) for every job
 * not yet delivered, closes the async handle and frees w when it has closed. */
void uv_pprof__worker_close(uv_pprof__worker_t* w);
/* Number of threads the worker is running now (0 or 1). */
int uv_pprof__worker_threads(const uv_pprof__worker_t* w);

/* ---- src/server.c + src/http.c: listener, connections, responses ------- */

typedef struct uv_pprof__server_s uv_pprof__server_t;
typedef struct uv_pprof__conn_s uv_pprof__conn_t;
typedef struct uv_pprof__request_s uv_pprof__request_t;

typedef struct uv_pprof__response_s {
  int status;
  const char* content_type;  /* static string */
  char disposition[64];      /* attachment file name, or "" */
  const char* location;      /* Location header (redirects), static */
  const char* extra_header;  /* one extra "Name: value" line, static */
  int go_error;              /* X-Go-Pprof: 1 */
  uv_pprof__buf_t body;
} uv_pprof__response_t;

struct uv_pprof__request_s {
  uv_pprof__server_t* server;
  uv_pprof__conn_t* conn; /* NULL once the client went away */
  int method;             /* llhttp_method_t */
  char* path;             /* percent-decoded */
  char* query;            /* raw query string without '?', "" if none */
  uv_pprof__buf_t body;
  uv_pprof__response_t res;
  int busy;               /* the router owns it (see uv_pprof__route) */
  void* route_data;       /* router.c's state of a busy request */
};

typedef struct uv_pprof__server_config_s {
  struct sockaddr_storage addr;
  char token[256];
  size_t token_len;
  unsigned int max_connections;
  unsigned int idle_timeout_ms;
  unsigned int request_timeout_ms;
  unsigned int write_timeout_ms;
} uv_pprof__server_config_t;

/* Binds and listens. Returns 0 and *out, or a negative libuv code with
 * nothing left open. */
int uv_pprof__server_start(uv_loop_t* loop,
                           const uv_pprof__server_config_t* config,
                           uv_pprof__server_t** out);
/* Closes the listener, every connection and the worker; frees the server once
 * all its handles have closed. */
void uv_pprof__server_close(uv_pprof__server_t* s);
void uv_pprof__server_address(const uv_pprof__server_t* s,
                              struct sockaddr_storage* addr);
uv_loop_t* uv_pprof__server_loop(const uv_pprof__server_t* s);
uv_pprof__worker_t* uv_pprof__server_worker(const uv_pprof__server_t* s);
/* Sends req->res (taking its body) on the request's connection, or frees the
 * request when the client has gone. Loop thread. */
void uv_pprof__request_finish(uv_pprof__request_t* req);

/* http.c: formats the status line and headers of res (with the body length
 * `body_len`) into out, Go's header order. */
int uv_pprof__http_head(const uv_pprof__response_t* res, size_t body_len,
                        int keep_alive, uv_pprof__buf_t* out);
const char* uv_pprof__http_status_text(int status);
/* Percent-decodes src[0..len) into a new NUL-terminated string; '+' is kept
 * when !plus_is_space. Returns NULL on a bad escape or out of memory. */
char* uv_pprof__http_unescape(const char* src, size_t len, int plus_is_space);
/* Go's path.Clean of an absolute path, keeping a trailing slash as
 * net/http's ServeMux does. Returns a new string or NULL. */
char* uv_pprof__http_clean_path(const char* path);
/* 1 when addr is a loopback address (127/8, ::1, ::ffff:127/104). */
int uv_pprof__is_loopback(const struct sockaddr* addr);

/* ---- src/router.c: routes, parameters, the one error helper ------------ */

/* Decides the response of a complete request. From this call on the router
 * owns req and calls uv_pprof__request_finish() on it exactly once: at once,
 * or when its job or timer is done. */
void uv_pprof__route(uv_pprof__request_t* req);
/* Called when the client of a busy request went away or the server stops:
 * the router cancels its timers; a running job finishes on its own. */
void uv_pprof__route_abandon(uv_pprof__request_t* req);
/* Fills req->res with Go's error form: text/plain, X-Go-Pprof: 1, message +
 * "\n". */
void uv_pprof__error(uv_pprof__request_t* req, int status, const char* msg);
/* First value of `key` in a raw query string, URL-decoded into buf.
 * Returns 1 when present, 0 when absent. */
int uv_pprof__query_get(const char* query, const char* key, char* buf,
                        size_t size);

/* ---- src/profile/: one descriptor per named profile -------------------- */

#define UV_PPROF__PROFILE_DELTA 1 /* ?seconds=N gives p1 - p0 */

typedef struct uv_pprof__profile_s {
  const char* name;
  const char* description; /* for the index page */
  unsigned flags;
  /* All of these run on the worker thread. */
  /* The index page's count. */
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
} uv_pprof__profile_t;

extern const uv_pprof__profile_t uv_pprof__profile_block;
extern const uv_pprof__profile_t uv_pprof__profile_mutex;
extern const uv_pprof__profile_t uv_pprof__profile_threadcreate;

/* Go's debug=1 layout for count profiles: "<name> profile: total N", groups
 * "count @ pcs", "# labels: {...}" and "#\t0x..." frame lines. */
typedef struct uv_pprof__count_record_s {
  int64_t count;
  const uintptr_t* pcs; /* return addresses, leaf first */
  size_t npcs;
  const uv_pprof__label_t* labels; /* string labels are printed */
  size_t nlabels;
} uv_pprof__count_record_t;

int uv_pprof__text_count_profile(const char* name,
                                 uv_pprof__count_record_t* records,
                                 size_t n, uv_pprof__buf_t* out);

/* cmdline.c: argv joined by NUL, no trailing byte. */
int uv_pprof__cmdline(uv_pprof__buf_t* out);

/* ---- uv_pprof.c -------------------------------------------------------- */

/* Wall clock in ns since the Unix epoch. */
int64_t uv_pprof__now_ns(void);

#endif /* UV_PPROF_INTERNAL_H */
