/* Internal prototypes of uv_pprof, grouped by subsystem. Nothing here is
 * exported: the library is built with hidden visibility and only the
 * uv_pprof_* functions of include/uv_pprof.h leave it. docs/INTERNALS.md maps
 * each group to its file. */
#ifndef UV_PPROF_INTERNAL_H
#define UV_PPROF_INTERNAL_H

#include <stdatomic.h>
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
#define UV_PPROF__MAX_URL 4096      /* 414 beyond */
#define UV_PPROF__MAX_HEADERS 16384 /* 431 beyond (names + values) */
/* 413 beyond; other routes take none */
#define UV_PPROF__MAX_SYMBOL_BODY (4u << 20)
/* Pipelined bytes kept per connection. */
#define UV_PPROF__MAX_PENDING_INPUT 65536
/* The worker thread exits after this long without work. */
#define UV_PPROF__WORKER_IDLE_MS 10000

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
  const char* str;      /* string label when non-NULL ... */
  int64_t num;          /* ... numeric label otherwise */
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
                              const uv_pprof__label_t* labels, size_t nlabels);
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
  uintptr_t start;    /* entry of the function (for an inlined frame, of
                         the one it is inlined into, as Go prints offsets):
                         addr - start = offset */
  const char* module; /* path of the object containing the address */
} uv_pprof__symbol_t;

/* Symbolizes addr, a call site (return address - 1 for every frame but the
 * leaf). Fills out[0..n) innermost inlined frame first, the real function
 * last (deeper inlining than max keeps the outermost frames), and returns
 * n >= 1 when some loaded object contains addr, 0 when none does. When
 * nothing names addr, n is 1 and that frame's name and file are NULL.
 * Objects loaded later with dlopen are picked up. The strings stay valid
 * (equal strings, equal pointers) until uv_pprof__symbolizer_reset().
 * Worker thread only. */
size_t uv_pprof__symbolize(uintptr_t addr, uv_pprof__symbol_t* out, size_t max);
/* Frees every table and cache (the next use rebuilds them). Called with no
 * worker thread running. */
void uv_pprof__symbolizer_reset(void);
/* The name to show people for a name from uv_pprof__symbolize(): a C++
 * linker name demangled and shortened (uv_pprof__demangle), else name
 * itself. Text views use it; protos and /symbol keep the linker's names,
 * which pprof demangles itself. Kept beside the interned name (demangling
 * costs ~10 us a name). Worker thread only. */
const char* uv_pprof__symbol_readable(const char* name);

/* ---- src/demangle.c: readable C++ names -------------------------------- */

/* A C++ linker name ("_Z...") demangled by the process's C++ runtime and
 * shortened as go tool pprof shows it ("node::Environment::RunTimers"), in
 * memory the caller frees; NULL when name is not mangled or the process has
 * no C++ runtime. Any thread. */
char* uv_pprof__demangle(const char* name);

/* ---- src/jemalloc.c: mallctl, prof.dump, heap_v2, allocator stats ------ */

/* What the process's allocator offers for heap profiling. */
typedef enum {
  UV_PPROF__HEAP_NO_JEMALLOC, /* malloc is not jemalloc's (or no mallctl) */
  UV_PPROF__HEAP_NO_PROF,     /* jemalloc built without profiling */
  UV_PPROF__HEAP_PROF_OFF,    /* opt.prof false: not enabled at startup */
  UV_PPROF__HEAP_PROF_ON      /* opt.prof true: prof.dump works */
} uv_pprof__heap_mode_t;

typedef struct uv_pprof__je_state_s {
  uv_pprof__heap_mode_t mode;
  int active;         /* prof.active: sampling now (PROF_ON only) */
  int accum;          /* opt.prof_accum: cumulative counts (PROF_ON only) */
  unsigned lg_sample; /* prof.lg_sample, else opt.lg_prof_sample */
} uv_pprof__je_state_t;

/* Reads the state with a few mallctl reads; finds jemalloc on first use.
 * Any thread. */
void uv_pprof__je_state(uv_pprof__je_state_t* st);
/* Sets prof.active when opt.prof is on and sampling is off. Returns 1 when
 * it turned sampling on, else 0. Any thread. */
int uv_pprof__je_activate(void);
/* Stops jemalloc sampling this thread's allocations (thread.prof.active),
 * when jemalloc profiles at all: the worker's symbol tables and buffers are
 * uv_pprof's, not the host's, and must not show in its heap profile. The
 * calling thread only. */
void uv_pprof__je_thread_unsampled(void);
/* One sentence saying why heap profiling is off in `mode` and how to turn
 * it on (a static string), or NULL for UV_PPROF__HEAP_PROF_ON. */
const char* uv_pprof__je_howto(uv_pprof__heap_mode_t mode);

typedef struct uv_pprof__je_counts_s {
  uint64_t cur_objs; /* live sampled objects */
  uint64_t cur_bytes;
  uint64_t accum_objs; /* all-time, only with opt.prof_accum */
  uint64_t accum_bytes;
} uv_pprof__je_counts_t;

typedef struct uv_pprof__je_stack_s {
  uv_pprof__je_counts_t counts; /* as printed: sampled, not unbiased */
  size_t first; /* its return addresses: frames[first .. first + n) */
  size_t n;     /* leaf first */
} uv_pprof__je_stack_t;

/* A parsed heap_v2 dump (jemalloc's prof.dump format). */
typedef struct uv_pprof__je_dump_s {
  uint64_t period;             /* R of "heap_v2/R": 2^lg_prof_sample bytes */
  uv_pprof__je_counts_t total; /* the "t*:" summary line */
  uv_pprof__je_stack_t* stacks;
  size_t nstacks;
  uintptr_t* frames;
  size_t nframes;
} uv_pprof__je_dump_t;

typedef struct uv_pprof__range_s {
  uintptr_t start;
  uintptr_t end; /* exclusive */
} uv_pprof__range_t;

/* Parses text[0..len) (need not be NUL-terminated; never read beyond).
 * Anything but jemalloc's layout gives UV_EINVAL; out of memory UV_ENOMEM;
 * *out is then empty. Free with uv_pprof__je_dump_free(). */
int uv_pprof__je_parse(const char* text, size_t len, uv_pprof__je_dump_t* out);
void uv_pprof__je_dump_free(uv_pprof__je_dump_t* d);
/* Drops from every stack its leading frames that lie in `ranges` (a stack
 * made only of such frames is kept whole). */
void uv_pprof__je_strip_ranges(uv_pprof__je_dump_t* d,
                               const uv_pprof__range_t* ranges, size_t n);
/* prof.dump into a memfd, parsed, jemalloc's own leading frames dropped.
 * Returns 0, UV_ENOENT when profiling is off (or no jemalloc), UV_EIO when
 * jemalloc failed to dump, or the parser's codes. Worker thread. */
int uv_pprof__je_dump(uv_pprof__je_dump_t* out);
/* Number of stacks a dump would have now (0 when profiling is off): the
 * index page's count. Dumps. Worker thread. */
int64_t uv_pprof__je_count(void);

/* The allocator figures read by uv_pprof__je_stats: id, mallctl name, C
 * type of the mallctl. The merged arena stats live at index 4096
 * (MALLCTL_ARENAS_ALL). */
#define UV_PPROF__JE_STATS_MAP(XX)                                   \
  XX(ALLOCATED, "stats.allocated", size_t)                           \
  XX(ACTIVE, "stats.active", size_t)                                 \
  XX(METADATA, "stats.metadata", size_t)                             \
  XX(RESIDENT, "stats.resident", size_t)                             \
  XX(MAPPED, "stats.mapped", size_t)                                 \
  XX(RETAINED, "stats.retained", size_t)                             \
  XX(NARENAS, "arenas.narenas", unsigned)                            \
  XX(SMALL_NMALLOC, "stats.arenas.4096.small.nmalloc", uint64_t)     \
  XX(SMALL_NDALLOC, "stats.arenas.4096.small.ndalloc", uint64_t)     \
  XX(SMALL_NREQUESTS, "stats.arenas.4096.small.nrequests", uint64_t) \
  XX(LARGE_NMALLOC, "stats.arenas.4096.large.nmalloc", uint64_t)     \
  XX(LARGE_NDALLOC, "stats.arenas.4096.large.ndalloc", uint64_t)     \
  XX(LARGE_NREQUESTS, "stats.arenas.4096.large.nrequests", uint64_t)

enum {
#define XX(id, name, type) UV_PPROF__JE_##id,
  UV_PPROF__JE_STATS_MAP(XX)
#undef XX
      UV_PPROF__JE_NSTATS
};

typedef struct uv_pprof__je_stats_s {
  const char* version; /* jemalloc's, or NULL */
  uint64_t value[UV_PPROF__JE_NSTATS];
  unsigned have;        /* bit (1 << id): value[id] read */
  uint64_t total_bytes; /* Σ nmalloc × size over all size classes */
  int have_total;
} uv_pprof__je_stats_t;

/* Refreshes jemalloc's stats epoch and reads the figures above. Returns 0
 * or UV_ENOENT without jemalloc. Worker thread. */
int uv_pprof__je_stats(uv_pprof__je_stats_t* st);

/* ---- src/threads.c: the process's threads ------------------------------ */

typedef struct uv_pprof__thread_s {
  int tid;
  char name[16]; /* /proc/self/task/<tid>/comm */
} uv_pprof__thread_t;

/* The threads of the process, sorted by tid; the caller frees the array with
 * free(). Returns 0 or a negative code. */
int uv_pprof__threads_read(uv_pprof__thread_t** threads, size_t* count);

/* ---- src/unwind.c: unwinding the CPU sampler's stack copies ------------ */

/* The registers a sample keeps, in DWARF numbering. */
#if defined(__x86_64__)
#define UV_PPROF__NREGS 17 /* rax..r15 (0-15), rip (16) */
#elif defined(__aarch64__)
#define UV_PPROF__NREGS 33 /* x0..x30 (0-30), sp (31), pc (kept last) */
#else
#define UV_PPROF__NREGS 1
#endif

typedef struct uv_pprof__stack_copy_s {
  int tid;
  const uint64_t* regs;       /* UV_PPROF__NREGS, the pc last */
  uintptr_t stack_addr;       /* where the copy of the stack starts */
  const unsigned char* stack; /* the copy: all the unwinder may read */
  size_t stack_len;
} uv_pprof__stack_copy_t;

typedef struct uv_pprof__unwind_stats_s {
  uint64_t by_rules; /* samples unwound from the rule table */
  uint64_t by_libdw; /* samples unwound by libdw's own unwinder */
  uint64_t rules;    /* rules asked of libdw */
  uint64_t flushes;  /* times the table was emptied: the objects changed */
  size_t cached;     /* rules in the table now */
} uv_pprof__unwind_stats_t;

enum { UV_PPROF__UNWIND_RULES, UV_PPROF__UNWIND_LIBDW };

/* Tells libdw the process's objects again, and empties the rule table,
 * when the loader's counters say something was loaded or unloaded since
 * the last call (the first call loads libdw). */
void uv_pprof__unwind_refresh(void);
/* The stack of a copy into pcs (at most max >= 1): the interrupted pc, then
 * return address - 1 for each caller. UV_PPROF__UNWIND_RULES uses the rule
 * table and falls back to libdw for a stack it cannot do alone;
 * UV_PPROF__UNWIND_LIBDW is libdw only (tests compare the two). Returns
 * >= 1 (the pc alone without libdw). */
size_t uv_pprof__unwind(const uv_pprof__stack_copy_t* c, int how,
                        uintptr_t* pcs, size_t max);
void uv_pprof__unwind_stats(uv_pprof__unwind_stats_t* st);
/* Frees libdw's session and the rule table. */
void uv_pprof__unwind_reset(void);
/* None of these is thread-safe: the sampler calls them under its lock. */

/* ---- src/sampler.c: the CPU sampler ------------------------------------ */

#define UV_PPROF__CPU_HZ 100
#define UV_PPROF__CPU_PERIOD_NS (1000000000 / UV_PPROF__CPU_HZ)
#define UV_PPROF__CPU_MAX_FRAMES 64

typedef struct uv_pprof__cpu_sample_s {
  int64_t time; /* when it was taken, uv_pprof__sampler_now()'s clock */
  int tid;
  const char* thread;   /* the thread's name, "" when unknown */
  int64_t weight;       /* periods of CPU time it stands for (>= 1) */
  const uintptr_t* pcs; /* the interrupted pc, then call sites (return
                           address - 1), leaf first */
  size_t npcs;          /* >= 1 */
  const uv_pprof__stack_copy_t* copy; /* what pcs were unwound from */
} uv_pprof__cpu_sample_t;

typedef void (*uv_pprof__cpu_sample_cb)(const uv_pprof__cpu_sample_t* s,
                                        void* arg);

typedef struct uv_pprof__sampler_stats_s {
  uint64_t samples;     /* taken since the process started */
  uint64_t lost;        /* dropped: the ring was full */
  uint64_t handler_ns;  /* wall time spent in the signal handler */
  uint64_t stack_bytes; /* of stack copied by the handler */
  uint64_t unwind_ns;   /* time spent unwinding on the worker */
  uint64_t frames;      /* frames unwound */
  size_t threads;       /* threads with a timer now */
  int signo;            /* the signal in use, 0 when disarmed */
} uv_pprof__sampler_stats_t;

/* Registers the sampler's fork handlers (once). Called when a server
 * starts, long before any arming: a fork already under way when the handlers
 * are registered runs none of them, and if the first arming raced with it
 * the child would inherit the handler. Any thread. */
void uv_pprof__sampler_prepare(void);
/* Takes a reference on the sampler; the first one arms it: a free real-time
 * signal gets the handler, every thread a timer on its CPU clock (100 Hz of
 * its CPU time). Returns 0 or a negative libuv code (UV_EBUSY: no free
 * real-time signal; UV_ENOTSUP: unsupported architecture). Any thread. */
int uv_pprof__sampler_acquire(void);
/* Drops a reference; the last one removes the timers and the handler (the
 * previous disposition comes back); the buffers stay for the next window
 * until uv_pprof__sampler_trim. Any thread. */
void uv_pprof__sampler_release(void);
/* Gives threads started since the last call a timer, then unwinds every
 * sample taken so far and passes each to cb (in no particular order of
 * time), on the calling thread. Nothing when disarmed. Worker thread. */
void uv_pprof__sampler_drain(uv_pprof__cpu_sample_cb cb, void* arg);
/* Whether a drain is due: the ring is a quarter full, a thread's stack
 * bounds are to be learnt, or the last drain is DRAIN_NS (0.5 s) old. Each
 * drain wakes the worker, whose cold start costs more than a few samples,
 * so windows ask every 100 ms and drain only then. Any thread. */
int uv_pprof__sampler_due(void);
/* Frees what is kept from one window to the next (the unwinder's state:
 * libdw's session and the rule table; the ring and the thread table),
 * unless a window is open. Worker thread, when it
 * exits for idleness. */
void uv_pprof__sampler_trim(void);
/* The clock of sample times (CLOCK_MONOTONIC, ns). Any thread. */
int64_t uv_pprof__sampler_now(void);
/* The counters (since the process started) and the state now. Any
 * thread. */
void uv_pprof__sampler_stats(uv_pprof__sampler_stats_t* st);

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
  /* Non-zero: a small periodic job (a timeline sample, a /metrics scrape)
   * that does not keep the thread alive; it still exits
   * UV_PPROF__WORKER_IDLE_MS after its start or its last other job. */
  int light;
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
  const char* content_type; /* static string */
  char disposition[64];     /* attachment file name, or "" */
  const char* location;     /* Location header (redirects), static */
  const char* extra_header; /* one extra "Name: value" line, static */
  int go_error;             /* X-Go-Pprof: 1 */
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
  int busy;         /* the router owns it (see uv_pprof__route) */
  void* route_data; /* the state of a busy request's owner */
  /* Set by that owner: the client went away (see uv_pprof__route_abandon). */
  void (*abandon)(uv_pprof__request_t* req);
  int endpoint;      /* metrics.c's index of the route, set when routed */
  uint64_t start_ns; /* uv_hrtime() when routed */
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
 * calls the owner's req->abandon, which cancels its timers; a job already on
 * the worker finishes on its own. */
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
   * the router calls loop_snapshot(loop, &snap) on the serving loop's thread
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
                                 uv_pprof__count_record_t* records, size_t n,
                                 uv_pprof__buf_t* out);
/* The "#\t0x<pc-1>\t<func>+0x<off>\t<file>:<line>" lines of one stack in
 * every debug=1 text (pcs: return addresses, leaf first; pass a function's
 * entry as entry + 1, as Go does for a goroutine's start). One line per
 * inlined frame, innermost first; "#\t0x<pc-1>" alone when nothing names
 * the address; no file:line when the file is unknown. Aligned as Go's
 * text/tabwriter aligns such a run of lines; no blank line after. Worker
 * thread only (it symbolizes). Returns 0 or UV_ENOMEM. */
int uv_pprof__text_frames(const uintptr_t* pcs, size_t npcs,
                          uv_pprof__buf_t* out);

/* cmdline.c: argv joined by NUL, no trailing byte. */
int uv_pprof__cmdline(uv_pprof__buf_t* out);

/* symbol.c: answers /debug/pprof/symbol (GET and POST, as Go's
 * net/http/pprof) from uv_pprof's worker thread. Loop thread; owns req from
 * then on, as uv_pprof__route does. */
void uv_pprof__serve_symbol(uv_pprof__request_t* req);

/* cpu.c: /debug/pprof/profile?seconds=N. Loop thread; owns req from then
 * on, as uv_pprof__route does. */
#define UV_PPROF__CPU_DEFAULT_SECONDS 30
#define UV_PPROF__CPU_MAX_SECONDS 3600
#define UV_PPROF__CPU_MAX_WINDOWS 8 /* profiles at once; more get 503 */
void uv_pprof__serve_cpu(uv_pprof__request_t* req);
/* The duration a raw query asks for, as Go reads it: "seconds" parsed as a
 * base-10 int64, UV_PPROF__CPU_DEFAULT_SECONDS when absent, invalid or
 * <= 0. The bound is the caller's to check. */
long long uv_pprof__cpu_seconds(const char* query);

/* ---- src/handles.c: the live libuv handles of every registered loop ---- */

typedef struct uv_pprof__handles_loop_s uv_pprof__handles_loop_t;

/* Registers `loop`; on its thread. A `remote` loop (one the server is not
 * on) gets an unref'd uv_async_t through which the serving loop asks it for
 * walks. Returns 0 and *out, or a negative libuv code. */
int uv_pprof__handles_attach(uv_loop_t* loop, int remote,
                             uv_pprof__handles_loop_t** out);
/* Unregisters it; on its thread. Walks asked of it complete without it;
 * its async handle closes when the loop next runs. Detaching the serving
 * loop makes every snapshot still waiting give up (UV_ECANCELED). */
void uv_pprof__handles_detach(uv_pprof__handles_loop_t* l);
/* Every handle uv_pprof opens is owned right after its init and disowned in
 * its close callback, so that walks skip it. Serving loop's thread. */
void uv_pprof__handle_own(const void* handle);
void uv_pprof__handle_disown(const void* handle);
/* Starts creation-stack capture in libuv_pprof_track. Returns 0, or
 * UV_ENOENT when that library is not in the process. */
int uv_pprof__handles_track(void);

#define UV_PPROF__HANDLE_ACTIVE 1
#define UV_PPROF__HANDLE_REF 2
#define UV_PPROF__HANDLE_CLOSING 4

typedef struct uv_pprof__handle_s {
  uintptr_t addr;
  uintptr_t loop;
  uintptr_t cb;           /* what runs next: the type's callback, close_cb
                             while closing; 0 when none is set */
  const char* cb_field;   /* the callback's field ("timer_cb"), or NULL */
  uint64_t a;             /* timer: due in (ms); signal: signum; process: pid */
  uint64_t b;             /* timer: repeat (ms) */
  const char* path;       /* pipe name, watched path, or NULL */
  int fd;                 /* -1 when none */
  int type;               /* uv_handle_type */
  int state;              /* UV_PPROF__HANDLE_* */
  uint64_t id;            /* the same in every snapshot while it lives */
  int64_t age_ns;         /* since its init (tracked) or since first seen */
  const uintptr_t* stack; /* creation stack: return addresses, the caller
                             of the init first; NULL when unknown */
  size_t nstack;
} uv_pprof__handle_t;

typedef struct uv_pprof__loop_reqs_s {
  uintptr_t loop;
  uint64_t active_reqs; /* uv_loop_t.active_reqs, read when its walk ended */
} uv_pprof__loop_reqs_t;

typedef struct uv_pprof__handles_snap_s {
  uv_pprof__handle_t* handles; /* loop by loop, in each loop's walk order */
  size_t count;
  uintptr_t* missing; /* loops that did not answer in time */
  size_t nmissing;
  uv_pprof__loop_reqs_t* answered; /* the loops that did */
  size_t nanswered;
  int tracker;               /* libuv_pprof_track is in the process */
  uintptr_t* pcs;            /* private: the stacks' storage */
  struct collect_s* collect; /* private */
} uv_pprof__handles_snap_t;

/* On the serving loop's thread: starts its walk (in slices over the next
 * loop iterations) and asks every other registered loop for its walk.
 * Returns 0 or a negative libuv code. */
int uv_pprof__handles_collect(uv_loop_t* serving,
                              uv_pprof__handles_snap_t** out);
/* On the worker: waits (at most 2 s) for the loops' walks, then fills
 * handles, ids, ages and creation stacks. Returns 0, UV_ECANCELED when the
 * server stopped meanwhile, or UV_ENOMEM. */
int uv_pprof__handles_complete(uv_pprof__handles_snap_t* snap);
/* Any thread; also for a snapshot that was never completed. */
void uv_pprof__handles_free(uv_pprof__handles_snap_t* snap);
/* Test hooks: the most handles one slice of a walk visits (0, the default:
 * as many as fit in its time), and the number of slices run so far. */
extern atomic_size_t uv_pprof__handles_slice_cap;
extern atomic_size_t uv_pprof__handles_slices;

/* ---- src/memstat.c: the process's memory figures ----------------------- */

typedef enum {
  UV_PPROF__ALLOC_JEMALLOC, /* jemalloc is malloc: je has its stats */
  UV_PPROF__ALLOC_GLIBC,    /* glibc's malloc: mi has mallinfo2() */
  UV_PPROF__ALLOC_OTHER     /* another malloc (a sanitizer's): no figures */
} uv_pprof__alloc_kind_t;

typedef struct uv_pprof__memstat_s {
  uv_pprof__alloc_kind_t kind;
  const char* object; /* the object defining malloc (basename), or "" */
  uv_pprof__je_stats_t je;
  struct {
    uint64_t arena, ordblks, hblks, hblkhd, uordblks, fordblks, keepcost;
  } mi;
  uint64_t heap_alloc; /* Go's HeapAlloc: stats.allocated, glibc
                          uordblks + hblkhd, 0 for OTHER */
  uint64_t heap_inuse; /* Go's HeapInuse: stats.active, glibc as above */
  uint64_t rss;        /* resident now (/proc/self/statm), bytes */
  uint64_t max_rss;    /* peak (getrusage), bytes */
} uv_pprof__memstat_t;

/* Reads the allocator's figures and RSS. Worker thread (jemalloc's stats
 * epoch is refreshed; /proc is read). */
void uv_pprof__memstat_read(uv_pprof__memstat_t* m);
/* The resident set now (/proc/self/statm), bytes; 0 when unreadable. Worker
 * thread (reads /proc). */
uint64_t uv_pprof__memstat_rss(void);

/* ---- src/metrics.c: /metrics and the request accounting ---------------- */

/* Notes which endpoint req is for and when it was routed. Loop thread, at
 * the start of uv_pprof__route. */
void uv_pprof__metrics_begin(uv_pprof__request_t* req);
/* Counts req's answer (status class, duration) for its endpoint. Loop
 * thread, when the answer is about to be written. */
void uv_pprof__metrics_observe(const uv_pprof__request_t* req);
/* /metrics: Prometheus' text format, rendered on the worker. Loop thread;
 * owns req from then on, as uv_pprof__route does. */
void uv_pprof__serve_metrics(uv_pprof__request_t* req);

/* ---- src/timeline.c: the ring of periodic memory samples --------------- */

#define UV_PPROF__TIMELINE_ROWS 10080 /* a week at one sample a minute */
#define UV_PPROF__TIMELINE_MAX_SECONDS 86400

typedef struct uv_pprof__timeline_s uv_pprof__timeline_t;

/* Starts sampling every `seconds` on the server's loop (one unref'd timer;
 * the first sample is taken at once). Serving loop's thread. Returns 0 and
 * *out, or UV_ENOMEM. */
int uv_pprof__timeline_start(uv_pprof__server_t* server, unsigned seconds,
                             uv_pprof__timeline_t** out);
/* Stops it; after the server has closed (no job of it is left on the
 * worker). The memory is freed once the timer has closed. */
void uv_pprof__timeline_stop(uv_pprof__timeline_t* t);
/* The sampling interval in seconds, 0 when no timeline runs. Any thread. */
unsigned uv_pprof__timeline_interval(void);
/* /debug/pprof/timeline: CSV, or an SVG chart with ?format=svg. Loop
 * thread; owns req from then on, as uv_pprof__route does. */
void uv_pprof__serve_timeline(uv_pprof__request_t* req);

/* ---- uv_pprof.c -------------------------------------------------------- */

/* One registered loop as /metrics reports it. */
typedef struct uv_pprof__loop_info_s {
  uintptr_t loop;
  int serving;
  uint64_t idle_ns;       /* uv_metrics_idle_time() */
  uint64_t measured_ns;   /* since uv_pprof turned idle time on */
  uint64_t idle_since_ns; /* idle time in that span */
} uv_pprof__loop_info_t;

/* Fills out[0..max) with the registered loops, returns their number (which
 * may exceed max). Any thread: idle time is read under libuv's own lock. */
size_t uv_pprof__loops_info(uv_pprof__loop_info_t* out, size_t max);

/* Wall clock in ns since the Unix epoch. */
int64_t uv_pprof__now_ns(void);

#endif /* UV_PPROF_INTERNAL_H */
