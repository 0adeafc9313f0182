/* The loop-access layer: everything that touches a libuv loop from outside
 * the request path. The one reader of libuv's private layout
 * (libuv_internals.c), the set of uv_pprof's own handles (own.c), the live
 * handles of every registered loop (handles.c), uv_pprof's worker thread and
 * its way back to a loop (worker.c), and the registry of loops (loops.c).
 * Depends on base.h and proc.h. */
#ifndef UV_PPROF_LOOP_H
#define UV_PPROF_LOOP_H

#include "proc.h"

/* ---- src/libuv_internals.c: libuv's private layout, behind one door ----- */

/* A handle's callback and the facts the goroutine profile shows, read from
 * libuv's private fields (see the list in libuv_internals.c). */
typedef struct uv_pprof__uvi_facts_s {
  uintptr_t cb;     /* what runs next: the type's callback, close_cb while
                       closing; 0 when none is set */
  int field;        /* the callback's field: uv_pprof__uvi_cb_field(field) */
  uint64_t a;       /* timer: due in (ms); signal: signum; process: pid */
  uint64_t b;       /* timer: repeat (ms) */
  const char* path; /* pipe name, watched path, or NULL; valid until the
                       handle changes (or in the caller's buffer) */
  size_t path_len;
  int fd; /* -1 when none */
} uv_pprof__uvi_facts_t;

/* Reads h's callback and facts. Everything is a field read or a call that
 * reads fields: no system call. `buf` (of `size` bytes) holds a path that
 * must be copied out of libuv (an fs_poll's). h's loop's thread. */
void uv_pprof__uvi_facts(const uv_handle_t* h, uv_pprof__uvi_facts_t* out,
                         char* buf, size_t size);
/* The name of a callback field ("timer_cb"), NULL for none. */
const char* uv_pprof__uvi_cb_field(int field);
/* Whether libuv's private layout is what this file expects on `loop`: a new
 * handle joins the tail of the loop's handle queue, and uv_walk skips a
 * handle marked internal. Checked once per loop, before its first walk; when
 * it fails, walks fall back to uv_walk in one go and nothing is marked
 * internal. The loop's thread. */
int uv_pprof__uvi_layout_ok(uv_loop_t* loop);
/* Test hook: non-zero makes uv_pprof__uvi_layout_ok() answer 0, as on a
 * libuv whose layout changed. */
extern atomic_int uv_pprof__uvi_unknown_layout;
/* Marks h with libuv's internal flag: uv_walk (a host's, or node's report)
 * never shows it, uv_loop_close does not count it. Only where the layout
 * check passed (made here on h's loop if none was made yet); elsewhere h
 * stays visible. h's loop's thread. */
void uv_pprof__uvi_set_internal(uv_handle_t* h);
/* Whether h carries that flag (the loop's own handles do). */
int uv_pprof__uvi_internal(const uv_handle_t* h);
/* The loop's requests in flight (uv_loop_t.active_reqs). Its thread. */
unsigned uv_pprof__uvi_active_reqs(const uv_loop_t* loop);
/* Whether handles of the loop are closing (uv_loop_t.closing_handles): the
 * next iteration runs their close callbacks. Its thread. */
int uv_pprof__uvi_closing(const uv_loop_t* loop);
/* The loop's clock (uv_now()) read from any thread: through
 * process_vm_readv, so that a loop freed behind uv_pprof's back (a host that
 * skipped uv_pprof_stop) is an error, never a crash. Returns 0 or
 * UV_EFAULT. */
int uv_pprof__uvi_loop_time(const uv_loop_t* loop, uint64_t* ms);
/* A walk over the loop's handle queue in slices, keeping its place with
 * `mark`, a handle of ours on that loop (so that libuv keeps the place valid:
 * handles closed between slices leave the queue, new ones join its tail).
 * walk_begin puts mark at the head of the queue. walk_slice calls visit(h,
 * arg) for each handle after mark in queue order that uv_walk would show
 * (none marked internal), until the queue ends or visit returns non-zero,
 * then moves mark just before the first handle not visited; it returns 1
 * when the queue has ended. Only when uv_pprof__uvi_layout_ok(); the loop's
 * thread. */
void uv_pprof__uvi_walk_begin(uv_handle_t* mark);
int uv_pprof__uvi_walk_slice(uv_handle_t* mark,
                             int (*visit)(uv_handle_t* h, void* arg),
                             void* arg);

/* ---- src/own.c: uv_pprof's own handles ---------------------------------- */

/* Every handle uv_pprof opens is owned right after its init and disowned in
 * its close callback, so that walks skip it. Serving loop's thread. */
void uv_pprof__handle_own(const void* handle);
void uv_pprof__handle_disown(const void* handle);
/* A walk's slice asks uv_pprof__own_has under the set's lock; own_lock
 * returns the number of own handles (0: no need to ask). */
size_t uv_pprof__own_lock(void);
void uv_pprof__own_unlock(void);
/* fork(): in the child, after uv_pprof__own_lock() in the prepare handler,
 * the set's lock made anew. */
void uv_pprof__own_fork_child(void);
int uv_pprof__own_has(const void* handle);

/* ---- src/worker.c: uv_pprof's own thread -------------------------------- */

/* The worker thread exits after this long without work. */
#define UV_PPROF__WORKER_IDLE_MS 10000

typedef struct uv_pprof__worker_s uv_pprof__worker_t;
typedef struct uv_pprof__job_s uv_pprof__job_t;

/* Runs on the worker thread. */
typedef void (*uv_pprof__work_cb)(uv_pprof__job_t* job);
/* Runs on the loop thread once work is done. `cancelled` when the worker is
 * being stopped: the job must then only free what it owns, and must not
 * touch a loop or wait for anything, since a job whose work was running
 * when the server stopped gets its done(job, 1) on the worker thread, after
 * its work (uv_pprof_stop never waits for it). */
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

/* Creates the worker of `loop`: one unref'd wake-up, no thread yet.
 * Returns NULL when out of memory or when the wake-up cannot start. */
uv_pprof__worker_t* uv_pprof__worker_new(uv_loop_t* loop);
/* Queues a job, starting the thread if needed. Loop thread only.
 * Returns 0 or a negative libuv code (the job is then not queued). */
int uv_pprof__worker_submit(uv_pprof__worker_t* w, uv_pprof__job_t* job);
/* Tells the thread to stop, calls done(job, 1) for every job not running
 * (queued, or finished and not yet delivered) and closes the wake-up;
 * never waits for the thread. A job that is running finishes on the
 * thread, which calls its done(job, 1) there. w is freed once the wake-up
 * has closed and the thread has exited. Loop thread. */
void uv_pprof__worker_close(uv_pprof__worker_t* w);
/* A call made under the lock every worker job runs under (see
 * uv_pprof__worker_exclusive). fn and arg are the caller's; the rest is
 * worker.c's. */
typedef struct uv_pprof__exclusive_s {
  void (*fn)(void* arg);
  void* arg;
  struct uv_pprof__exclusive_s* next;
  int queued;
} uv_pprof__exclusive_t;

/* Calls e->fn(e->arg) while no worker job of any server runs: at once on
 * the calling thread when none does, else on the worker thread whose job
 * is running, as soon as that job is done and before any other starts. It
 * never waits for a job: uv_pprof_stop and uv_pprof_start reset and set the
 * process-wide state jobs use (the history, the flight recorder) this way,
 * since a stopped server's last job may still be running. e must stay
 * valid until fn has run; asked for again before that, it runs once. Any
 * thread, holding no lock fn takes. */
void uv_pprof__worker_exclusive(uv_pprof__exclusive_t* e);
/* Worker threads of every server not exited yet (after a stop, a thread
 * finishes its job and frees its tables on its own). Tests wait for 0
 * before their process ends, which would otherwise cut a thread short.
 * Any thread. */
int uv_pprof__worker_threads(void);
/* fork(): the prepare handler takes the worker's lock, the parent's gives
 * it back, the child's makes it anew and forgets the thread (not copied). */
void uv_pprof__worker_fork_prepare(uv_pprof__worker_t* w);
void uv_pprof__worker_fork_parent(uv_pprof__worker_t* w);
void uv_pprof__worker_fork_child(uv_pprof__worker_t* w);

/* ---- src/wakeup.c: waking a loop's thread without touching the loop ---- */

typedef struct uv_pprof__wakeup_s uv_pprof__wakeup_t;
typedef void (*uv_pprof__wakeup_cb)(uv_pprof__wakeup_t* w);

struct uv_pprof__wakeup_s {
  uv_poll_t poll; /* poll.data is the wake-up itself */
  int fd;         /* eventfd, uv_pprof's own */
  uv_pprof__wakeup_cb cb;
  uv_close_cb close_cb;
  void* data; /* the owner's */
};

/* Opens the eventfd and polls it on `loop` (unref'd, owned, hidden): cb
 * runs on the loop's thread after one or more sends. Returns 0 or a
 * negative libuv code (nothing left open). Loop's thread. */
int uv_pprof__wakeup_init(uv_loop_t* loop, uv_pprof__wakeup_t* w,
                          uv_pprof__wakeup_cb cb);
/* Wakes the loop's thread. Any thread; reads nothing of the loop's, so it
 * is harmless after the loop was closed. Must not race with close. */
void uv_pprof__wakeup_send(uv_pprof__wakeup_t* w);
/* Closes the poll handle, then the eventfd, then calls cb with the poll
 * handle. Loop's thread; no send may follow. */
void uv_pprof__wakeup_close(uv_pprof__wakeup_t* w, uv_close_cb cb);
/* The symbolizer (src/symbolize.c) and the unwinder's idle-time trim have
 * one user at a time: this is the process-wide lock every worker job and
 * every idle exit's freeing runs under (with the calls deferred to it, see
 * uv_pprof__worker_exclusive), taken by the stall watchdog while it
 * symbolizes a report. Any thread; not recursive. */
void uv_pprof__symbolizer_lock(void);
void uv_pprof__symbolizer_unlock(void);

/* ---- src/handles.c: the live libuv handles of every registered loop ---- */

typedef struct uv_pprof__handles_loop_s uv_pprof__handles_loop_t;

/* Registers `loop`; on its thread. A `remote` loop (one the server is not
 * on) gets an unref'd wake-up through which the serving loop asks it for
 * walks. Returns 0 and *out, or a negative libuv code. */
int uv_pprof__handles_attach(uv_loop_t* loop, int remote,
                             uv_pprof__handles_loop_t** out);
/* Unregisters it; on its thread. Walks asked of it complete without it;
 * its wake-up closes when the loop next runs. Detaching the serving
 * loop makes every snapshot still waiting give up (UV_ECANCELED). */
void uv_pprof__handles_detach(uv_pprof__handles_loop_t* l);
/* fork(): the walks' lock, taken before; given back in the parent, made
 * anew in the child (with its condition). */
void uv_pprof__handles_fork_prepare(void);
void uv_pprof__handles_fork_parent(void);
void uv_pprof__handles_fork_child(void);
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
  uint64_t idle_ns;     /* uv_metrics_idle_time(), read then too */
  uint64_t read_at;     /* uv_hrtime() then */
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

/* ---- src/stall.c: stall detection -------------------------------------- */

#define UV_PPROF__STALL_DEFAULT_MS 50
#define UV_PPROF__STALL_MAX_MS 3600000
#define UV_PPROF__STALL_MIN_MS 10 /* the sampling period */
#define UV_PPROF__STALL_REPORT_DEFAULT_S 10
#define UV_PPROF__STALL_REPORT_MAX_S 86400
#define UV_PPROF__STALL_MAX_FRAMES 64
#define UV_PPROF__STALL_BUCKETS 14 /* 13 bounds (1 ms to 10 s), +Inf */

typedef struct uv_pprof__stall_loop_s uv_pprof__stall_loop_t;

/* Starts watching `loop` (its thread: the caller's) for stalls: iterations
 * whose callbacks run `threshold_ms` or longer; one stderr report once a
 * stall lasts `report_s` (0: none). Two unref'd hooks on the loop; the
 * watchdog thread starts with the first loop. threshold_ms 0: nothing, *out
 * NULL. Returns 0 or a negative libuv code. The loop's thread. */
int uv_pprof__stall_attach(uv_loop_t* loop, unsigned threshold_ms,
                           unsigned report_s, uv_pprof__stall_loop_t** out);
/* Stops watching it (a stall in progress ends now); the watchdog stops with
 * the last loop. The hooks close when the loop next runs. NULL: nothing.
 * The loop's thread. */
void uv_pprof__stall_detach(uv_pprof__stall_loop_t* l);

typedef struct uv_pprof__stall_stats_s {
  uintptr_t loop;
  uint64_t buckets[UV_PPROF__STALL_BUCKETS]; /* iterations by busy time,
                                                not cumulative */
  uint64_t busy_ns;        /* the sum of the iterations' busy times */
  uint64_t stalls;         /* stalls noticed, including one in progress */
  uint64_t stall_ns;       /* the finished stalls' time */
  uint64_t in_progress_ns; /* the stall in progress so far, or 0 */
  uint64_t noticed_ns;     /* the last stall: how long after its start the
                              watchdog noticed it */
} uv_pprof__stall_stats_t;

/* The watched loops' figures into out[0..max); returns their number (which
 * may exceed max). Any thread. */
size_t uv_pprof__stall_loops(uv_pprof__stall_stats_t* out, size_t max);
/* The busy-time buckets' upper bounds, ns (UV_PPROF__STALL_BUCKETS - 1). */
const uint64_t* uv_pprof__stall_bounds(void);
/* How many times the watchdog thread has woken up (benches). */
uint64_t uv_pprof__stall_wakeups(void);

/* ---- src/stallsite.c: the phase and handle type of a stalled stack ----- */

/* No pending phase: its callbacks (a write's or a connect's, fed to the
 * pending queue) are called through the same uv__stream_io as in the poll
 * phase, so their call site cannot tell the two apart. */
enum {
  UV_PPROF__PHASE_TIMERS,
  UV_PPROF__PHASE_IDLE,
  UV_PPROF__PHASE_PREPARE,
  UV_PPROF__PHASE_POLL,
  UV_PPROF__PHASE_CHECK,
  UV_PPROF__PHASE_CLOSING,
  UV_PPROF__PHASE_UNKNOWN
};

enum {
  UV_PPROF__SITE_TIMER,
  UV_PPROF__SITE_IDLE,
  UV_PPROF__SITE_PREPARE,
  UV_PPROF__SITE_CHECK,
  UV_PPROF__SITE_ASYNC,
  UV_PPROF__SITE_READ,
  UV_PPROF__SITE_CLOSE,
  UV_PPROF__SITE_COUNT
};

/* Notes the return address a callback of uv_pprof's own was called with
 * (__builtin_return_address(0)): the call site of libuv's dispatcher of
 * that kind. Any loop's thread. */
void uv_pprof__site_note(int site, const void* ret);
/* Starts, once per process, one short-lived handle of each other kind on
 * `loop` (a timer, an idle, an async, a pipe read), unref'd and owned, so
 * that their call sites are learnt in the loop's next iteration. Returns 0
 * or UV_ENOMEM. The loop's thread. */
int uv_pprof__site_teach(uv_loop_t* loop);
/* The phase and handle type of the innermost libuv dispatch in a stack
 * (pcs[0] the pc, then return addresses - 1): UV_PPROF__PHASE_UNKNOWN and
 * UV_UNKNOWN_HANDLE when no call site learnt is in it (or two disagree).
 * UV_STREAM stands for tcp, pipe and tty. Any thread. */
void uv_pprof__site_classify(const uintptr_t* pcs, size_t n, int* phase,
                             int* type);
/* "timers", "idle", "prepare", "poll", "check", "closing", or
 * NULL for UV_PPROF__PHASE_UNKNOWN. */
const char* uv_pprof__phase_name(int phase);

/* ---- src/stallrec.c: the record of stalls (the block profile's data) --- */

typedef struct uv_pprof__stall_s uv_pprof__stall_t;

/* A stall of `loop` that began at start_ns (uv_pprof__sampler_now()'s
 * clock) is in progress; NULL when out of memory. Any thread. */
uv_pprof__stall_t* uv_pprof__stallrec_begin(uintptr_t loop, int64_t start_ns);
/* One stack sampled during it (pcs[0] the pc, then return addresses - 1),
 * standing for weight_ns of it (the time since the sample before). */
void uv_pprof__stallrec_sample(uv_pprof__stall_t* s, const uintptr_t* pcs,
                               size_t n, int phase, int type,
                               uint64_t weight_ns);
/* It ended after delay_ns in callbacks: folded into the rows, freed. */
void uv_pprof__stallrec_end(uv_pprof__stall_t* s, int64_t delay_ns);

typedef struct uv_pprof__stallrec_row_s {
  uintptr_t loop;
  int phase; /* UV_PPROF__PHASE_* */
  int type;  /* uv_handle_type, UV_UNKNOWN_HANDLE when unknown */
  uintptr_t* pcs;
  size_t npcs; /* 0: the stall was never sampled */
  int64_t contentions;
  int64_t delay_ns;
  int in_progress; /* a stall still going on: its delay so far */
} uv_pprof__stallrec_row_t;

typedef struct uv_pprof__stallrec_snap_s {
  uv_pprof__stallrec_row_t* rows;
  size_t count;
  size_t cap;
  size_t in_progress;       /* stalls in progress */
  uint64_t dropped_stalls;  /* not recorded: the rows were full */
  uint64_t dropped_samples; /* beyond the distinct stacks kept per stall */
} uv_pprof__stallrec_snap_t;

/* A copy of every row and of the stalls in progress. Returns 0 or
 * UV_ENOMEM. Any thread. */
int uv_pprof__stallrec_snapshot(uv_pprof__stallrec_snap_t** out);
void uv_pprof__stallrec_snapshot_free(uv_pprof__stallrec_snap_t* snap);
/* Rows now (the index page's count), stalls in progress included. */
int64_t uv_pprof__stallrec_count(void);
/* Its lock, held across a fork by stall.c's handlers (the child unlocks
 * its copy: it was taken by the forking thread). */
void uv_pprof__stallrec_lock(void);
void uv_pprof__stallrec_unlock(void);

/* ---- src/report.c: the stderr report of a long stall -------------------- */

typedef struct uv_pprof__stall_report_s {
  uintptr_t loop;
  int tid;
  uint64_t held_ns;
  unsigned threshold_ms;
  const uintptr_t* pcs; /* the last sample; npcs 0: none */
  size_t npcs;
  int phase;
  int type;
} uv_pprof__stall_report_t;

/* Writes one report to stderr (one write). Takes the symbolizer's lock. */
void uv_pprof__stall_report(const uv_pprof__stall_report_t* r);

/* ---- src/loops.c: the registered loops ----------------------------------- */

/* Registers `loop` (on its thread): its handles are walked from now on
 * (`serving`: the server's loop, walked on request; else walked through a
 * wake-up of its own), libuv measures its idle time, and stalls of
 * stall_ms (0: off) are detected, reported after stall_report_s (0:
 * never). Returns 0, UV_EBUSY when it is registered already, or a negative
 * libuv code. */
int uv_pprof__loops_add(uv_loop_t* loop, int serving, unsigned stall_ms,
                        unsigned stall_report_s);
/* Unregisters it (on its thread). Returns 0, or UV_ENOENT when it was not
 * registered. */
int uv_pprof__loops_remove(uv_loop_t* loop);
/* Whether `loop` is registered. Any thread. */
int uv_pprof__loops_registered(uv_loop_t* loop);
/* Whether any loop is registered. Any thread; lock-free. */
int uv_pprof__loops_any(void);
/* fork(): the registry's lock, as the walks' (uv_pprof__handles_fork_*). */
void uv_pprof__loops_fork_prepare(void);
void uv_pprof__loops_fork_parent(void);
void uv_pprof__loops_fork_child(void);

/* One registered loop as /metrics reports it. */
typedef struct uv_pprof__loop_info_s {
  uintptr_t loop;
  int serving;
  uint64_t measured_since; /* uv_hrtime() when uv_pprof turned idle time on */
  uint64_t idle_at_start;  /* uv_metrics_idle_time() then */
} uv_pprof__loop_info_t;

/* Fills out[0..max) with the registered loops, returns their number (which
 * may exceed max). Any thread. Reads nothing of the loops themselves (a
 * host may have closed one without uv_pprof_stop): their idle time comes
 * with the handle walk, read on each loop's own thread. */
size_t uv_pprof__loops_info(uv_pprof__loop_info_t* out, size_t max);

#endif /* UV_PPROF_LOOP_H */
