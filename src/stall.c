/* Stall detection. Each loop gets two unref'd hooks, a prepare and a check
 * handle, that publish where it is in its iteration (plain stores) and add
 * the iteration's busy time to a fixed histogram. One watchdog thread
 * tells a loop held by its callbacks from one waiting: it looks at a loop
 * when its iteration could first reach the threshold, and asks the kernel
 * where the loop's thread is (/proc/self/task/TID/syscall: in epoll_wait on
 * the loop's backend fd is waiting). While a loop waits the watchdog
 * sleeps: the loop's next prepare or check wakes it (one eventfd write), so
 * does a timer on the loop thread's CPU clock (a callback burning CPU right
 * after an I/O wake-up, before any hook), and a look every 10 s finds a
 * loop stuck in a blocking call since then. A held loop is sampled every
 * 10 ms until it polls again: through the CPU sampler's signal when its
 * thread runs, by copying its stack from /proc's sp when it is blocked in
 * a system call (a signal would cut a sleep or a poll short).
 * docs/INTERNALS.md, "Stall detection". */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loop.h"

#define TICK_NS 10000000ull /* sampling period during a stall */
#define FIRST_TRIES 5       /* ticks a stall's first sample is tried */
#define OVER                                                                  \
  8                             /* iterations past the threshold kept for the \
                                   watchdog to reconcile */
#define RECORDED 8              /* starts of the last stalls recorded */
#define ASK_WAIT_NS 10000000ull /* how long a capture is waited for */
#define NEVER UINT64_MAX
#define QUIET_CPU_NS                                                          \
  2000000ull                     /* the loop's CPU time after which a waiting \
                                    loop is looked at again */
#define SAFETY_NS 10000000000ull /* between two looks at a waiting loop */

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* Upper bounds of the busy-time buckets, ns; +Inf follows. */
static const uint64_t bounds_ns[UV_PPROF__STALL_BUCKETS - 1] = {
    1000000,    2000000,    5000000,    10000000,  20000000,
    50000000,   100000000,  200000000,  500000000, 1000000000,
    2000000000, 5000000000, 10000000000};

enum { PREPARED, CHECKED };

/* What the watchdog knows of a loop. */
enum {
  ACTIVE,     /* evaluated at next_ns: when its iteration could be a stall */
  QUIET,      /* waiting for events: woken by its hooks or its CPU timer */
  CANDIDATE,  /* held past the threshold, its first sample not taken yet */
  STALLED,    /* held past the threshold: sampled every TICK_NS */
  SUPPRESSED, /* its thread is outside uv_run: until the next prepare */
  OFF         /* its thread is gone, or /proc cannot tell */
};

struct uv_pprof__stall_loop_s {
  /* ---- what every iteration's hooks touch, together (fewer cache lines
   * between two polls) ------------------------------------------------------
   */
  uv_loop_t* loop;
  pthread_t thread;
  uint64_t split_idle; /* uv_metrics_idle_time() at the last split */
  uint64_t threshold_ns;
  int ran; /* a prepare has run */
  /* published by the hooks under the sequence lock `seq` */
  unsigned seq; /* odd while being written */
  int state;    /* PREPARED or CHECKED */
  int tid;      /* the loop's thread */
  int wake_me;  /* atomic: the next hook wakes the watchdog */
  unsigned over_count;
  uint64_t s_ms; /* uv_now() at the last prepare: the iteration's start */
  uint64_t w_ms; /* uv_now() at the last check: the last return from
                    polling */
  uint64_t last_start_ms; /* the last iteration the check saw end: its
                             start (a return from polling) */
  uint64_t last_busy_ns;  /* ... and its time in callbacks */
  /* the histogram: the loop's thread adds, readers load */
  uint64_t busy_ns;
  uint64_t iterations;
  uint64_t buckets[UV_PPROF__STALL_BUCKETS];
  /* ---- the loop's thread, at times -----------------------------------------
   */
  /* Iterations the check hook measured past the threshold, for the
   * watchdog to record those it did not see live (it ran late: a loaded
   * machine): a ring written by the hook, `over_count` published last. */
  struct {
    uint64_t start_ms;
    uint64_t busy_ns;
  } over[OVER];
  uv_prepare_t prepare;
  uv_check_t check;
  int open_handles;
  /* ---- set at attach -------------------------------------------------------
   */
  uint64_t id;
  int backend_fd;
  uint64_t report_ns; /* 0: no report */
  unsigned threshold_ms;
  /* ---- the watchdog's, under W.mu ------------------------------------------
   */
  int mode;
  uint64_t next_ns; /* next evaluation, NEVER: none */
  unsigned suppressed_seq;
  unsigned quiet_seq; /* QUIET: the hooks' seq when it went quiet */
  timer_t cpu_timer;  /* on the loop thread's CPU clock, to the watchdog */
  int has_cpu_timer;
  int cpu_tid;        /* the thread whose clock it is on */
  uint64_t waited_ms; /* the loop was seen waiting then: whatever holds it
                         now began later (its clock may lag: the watchdog
                         can run before the woken loop updates it) */
  unsigned over_seen; /* entries of `over` reconciled */
  uint64_t recorded[RECORDED]; /* starts of the last stalls recorded */
  unsigned nrecorded;
  struct {
    uint64_t since_ms;   /* CANDIDATE: held since then, */
    uint64_t noticed_ns; /* noticed then, */
    int tries;           /* its first sample tried this many times */
  } candidate;
  struct {
    uint64_t start_ms;
    uint64_t noticed_ns;
    uint64_t seen_ns;    /* the last tick that found it still held */
    uint64_t sampled_ns; /* the last sample: the next stands for the time
                            since */
    int reported;
    uv_pprof__stall_t* rec;
    uv_pprof__syscall_t blocked; /* the last blocked sample's call */
    uintptr_t pcs[UV_PPROF__STALL_MAX_FRAMES];
    size_t npcs;
    int phase;
    int type;
  } stall;
  /* ---- counters, atomic ----------------------------------------------------
   */
  uint64_t stalls;
  uint64_t stall_ns;
  uint64_t noticed_after_ns; /* the last stall: noticed this long after it
                                began */
  uv_pprof__stall_loop_t* next;
};

static struct {
  uv_mutex_t mu;
  uv_thread_t thread;
  int running;
  int stop;
  int epfd;
  int evfd;
  uv_pprof__stall_loop_t* loops;
  uint64_t next_id;
  uv_pprof__capture_t* capture; /* mapped on the first stall */
  int capturing;                /* the sampler's signal is held */
  uintptr_t run_start;          /* uv_run's code, for "outside uv_run" */
  uintptr_t run_end;
  uint64_t wakeups; /* the watchdog's, for the benches (atomic) */
  int sigfd;        /* the CPU timers' signal, read by the watchdog */
  int signo;
  int tid; /* the watchdog thread's */
  uv_cond_t started;
} W = {.epfd = -1, .evfd = -1, .sigfd = -1};

static uv_once_t once = UV_ONCE_INIT;

/* fork: the child has no watchdog thread (and no capture buffer: it is not
 * inherited), its copies of the loops are forgotten (their hooks run on,
 * harmlessly, until uv_pprof_stop); a uv_pprof_start in it starts anew.
 * The record of stalls is locked across the fork too, after W.mu as the
 * watchdog takes them. */
static void on_fork_prepare(void) {
  uv_mutex_lock(&W.mu);
  uv_pprof__stallrec_lock();
}

static void on_fork_parent(void) {
  uv_pprof__stallrec_unlock();
  uv_mutex_unlock(&W.mu);
}

/* The watchdog's descriptors, those it has. W.mu held. */
static void close_fds(void) {
  if (W.epfd >= 0)
    close(W.epfd);
  if (W.evfd >= 0)
    close(W.evfd);
  if (W.sigfd >= 0)
    close(W.sigfd);
  W.epfd = W.evfd = W.sigfd = -1;
}

static void on_fork_child(void) {
  uv_pprof__stallrec_unlock();
  W.running = 0;
  W.stop = 0;
  W.loops = NULL;
  W.capture = NULL;
  W.capturing = 0;
  close_fds();
  uv_mutex_unlock(&W.mu);
}

static void init_once(void) {
  if (uv_mutex_init(&W.mu) != 0 || uv_cond_init(&W.started) != 0 ||
      pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child) != 0)
    abort();
}

static uint64_t now_ns(void) {
  return uv_hrtime();
}

/* libuv's clock has millisecond steps (it truncates): a time read from it
 * stands for the middle of its millisecond. */
static uint64_t ms_to_ns(uint64_t ms) {
  return ms * 1000000 + 500000;
}

/* ---- the hooks (the loop's thread) --------------------------------------- */

/* The fields published between publish_begin and publish_end are written
 * with publish(): release stores rather than a fence after the odd seq
 * (which ThreadSanitizer cannot follow), so that the odd seq cannot move
 * below them. Plain moves on x86-64. */
#define publish(field, value) \
  __atomic_store_n(&(field), (value), __ATOMIC_RELEASE)

static void publish_begin(uv_pprof__stall_loop_t* l) {
  __atomic_store_n(&l->seq, l->seq + 1, __ATOMIC_RELAXED);
}

static void publish_end(uv_pprof__stall_loop_t* l) {
  __atomic_store_n(&l->seq, l->seq + 1, __ATOMIC_RELEASE);
}

static void wake_watchdog(void) {
  uint64_t one = 1;

  if (write(W.evfd, &one, sizeof(one)) < 0) {
    /* full (it already has a wake-up to read) or gone: nothing to do */
  }
}

/* The thread running the loop: the one of uv_pprof_start, unless the host
 * moved the loop to another (a pthread_self() compare per iteration). */
static void note_thread(uv_pprof__stall_loop_t* l) {
  pthread_t self = pthread_self();

  if (!pthread_equal(self, l->thread)) {
    l->thread = self;
    __atomic_store_n(&l->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
  }
}

/* The watchdog, waiting for this loop to do something, asked to be woken. */
static void maybe_wake(uv_pprof__stall_loop_t* l) {
  /* No fence: the watchdog asks while it sees the thread blocked in
   * epoll_wait (go_quiet), so the hook that follows sees the request. */
  if (__atomic_load_n(&l->wake_me, __ATOMIC_RELAXED) &&
      __atomic_exchange_n(&l->wake_me, 0, __ATOMIC_RELAXED))
    wake_watchdog();
}

static void on_prepare(uv_prepare_t* handle) {
  uv_pprof__stall_loop_t* l = handle->data;
  uint64_t now = uv_now(l->loop);

  uv_pprof__site_note(UV_PPROF__SITE_PREPARE, __builtin_return_address(0));
  note_thread(l);
  publish_begin(l);
  if (!l->ran) {
    /* The first iteration since uv_pprof_start: what ran before it (the
     * host on its way to uv_run) is no iteration of the loop. */
    l->ran = 1;
    publish(l->w_ms, now);
    l->split_idle = uv_metrics_idle_time(l->loop);
  }
  publish(l->state, PREPARED);
  publish(l->s_ms, now);
  publish_end(l);
  maybe_wake(l);
}

/* Ends the iteration that started at the previous return from polling: its
 * callbacks' time is the time between the two returns less the wait. The
 * loop's clock has millisecond steps: while it has not moved, the time is
 * under a millisecond and libuv's lock is not taken (the next split counts
 * those iterations' waits too, so the sum stays exact). */
static void on_check(uv_check_t* handle) {
  uv_pprof__stall_loop_t* l = handle->data;
  uint64_t w = uv_now(l->loop);
  uint64_t busy = 0;
  size_t b;

  uv_pprof__site_note(UV_PPROF__SITE_CHECK, __builtin_return_address(0));
  if (w != l->w_ms) {
    uint64_t idle = uv_metrics_idle_time(l->loop);
    uint64_t wall = (w - l->w_ms) * 1000000;
    uint64_t wait = idle >= l->split_idle ? idle - l->split_idle : 0;
    busy = wall > wait ? wall - wait : 0;
    l->split_idle = idle;
  }
  for (b = 0; b < UV_PPROF__ARRAY_SIZE(bounds_ns) && busy > bounds_ns[b]; b++)
    ;
  __atomic_store_n(&l->buckets[b], l->buckets[b] + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&l->busy_ns, l->busy_ns + busy, __ATOMIC_RELAXED);
  __atomic_store_n(&l->iterations, l->iterations + 1, __ATOMIC_RELAXED);
  if (busy >= l->threshold_ns) {
    unsigned k = l->over_count % OVER;
    /* Release stores: a watchdog that reads the new entry also sees the
     * count that tells it its old one is gone (reconcile). */
    __atomic_store_n(&l->over[k].start_ms, l->w_ms, __ATOMIC_RELEASE);
    __atomic_store_n(&l->over[k].busy_ns, busy, __ATOMIC_RELEASE);
    __atomic_store_n(&l->over_count, l->over_count + 1, __ATOMIC_RELEASE);
  }
  publish_begin(l);
  publish(l->state, CHECKED);
  publish(l->last_start_ms, l->w_ms);
  publish(l->last_busy_ns, busy);
  publish(l->w_ms, w);
  publish_end(l);
  maybe_wake(l);
}

typedef struct {
  unsigned seq;
  int state;
  int tid;
  uint64_t s_ms;
  uint64_t w_ms;
  uint64_t last_start_ms;
  uint64_t last_busy_ns;
} hooks_t;

/* A consistent copy of what the hooks published. W.mu held. */
static void read_hooks(const uv_pprof__stall_loop_t* l, hooks_t* h) {
  for (;;) {
    unsigned seq = __atomic_load_n(&l->seq, __ATOMIC_ACQUIRE);
    if (seq & 1) {
      sched_yield();
      continue;
    }
    /* Acquire loads rather than a fence (see publish): the second read of
     * seq cannot move above them. */
    h->state = __atomic_load_n(&l->state, __ATOMIC_ACQUIRE);
    h->s_ms = __atomic_load_n(&l->s_ms, __ATOMIC_ACQUIRE);
    h->w_ms = __atomic_load_n(&l->w_ms, __ATOMIC_ACQUIRE);
    h->last_start_ms = __atomic_load_n(&l->last_start_ms, __ATOMIC_ACQUIRE);
    h->last_busy_ns = __atomic_load_n(&l->last_busy_ns, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&l->seq, __ATOMIC_RELAXED) == seq) {
      h->seq = seq;
      h->tid = __atomic_load_n(&l->tid, __ATOMIC_RELAXED);
      return;
    }
  }
}

/* Since when the loop has been running callbacks without polling: the last
 * return from polling that the hooks or the loop's clock show, or the last
 * time the watchdog saw it waiting, whichever is later. */
static uint64_t held_since_ms(const hooks_t* h, uint64_t clock_ms,
                              uint64_t waited_ms) {
  uint64_t since = h->state == CHECKED  ? h->w_ms
                   : clock_ms > h->s_ms ? clock_ms
                                        : h->w_ms;

  return since > waited_ms ? since : waited_ms;
}

/* ---- samples ------------------------------------------------------------- */

static int find_uv_run(void) {
  Dl_info info;
  const ElfW(Sym) * sym;

  if (dladdr1((void*)uv_run, &info, (void**)&sym, RTLD_DL_SYMENT) == 0 ||
      sym == NULL || info.dli_saddr == NULL || sym->st_size == 0)
    return -1;
  W.run_start = (uintptr_t)info.dli_saddr;
  W.run_end = W.run_start + sym->st_size;
  return 0;
}

typedef struct {
  uintptr_t pcs[UV_PPROF__STALL_MAX_FRAMES];
  size_t npcs; /* 0: no sample */
  int complete;
} sample_t;

/* A whole stack (unwound to the thread's entry) with no uv_run frame: the
 * thread is not in the loop at all. */
static int outside_uv_run(const sample_t* s) {
  size_t i;

  if (s->npcs == 0 || !s->complete || W.run_end == 0)
    return 0;
  for (i = 0; i < s->npcs; i++)
    if (s->pcs[i] >= W.run_start && s->pcs[i] < W.run_end)
      return 0;
  return 1;
}

static int hold_capture(void) {
  int err;

  if (W.capturing)
    return 0;
  if (W.capture == NULL) {
    void* p = mmap(NULL, sizeof(*W.capture), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
      return UV_ENOMEM;
    madvise(p, sizeof(*W.capture), MADV_DONTFORK);
    W.capture = p;
  }
  err = uv_pprof__sampler_capture_acquire(W.capture);
  if (err == 0)
    W.capturing = 1;
  return err;
}

static void drop_capture(void) {
  if (W.capturing) {
    uv_pprof__sampler_capture_release();
    W.capturing = 0;
  }
}

/* Copies thread `tid`'s registers and stack into W.capture, as `st` (read
 * just before) found it: a thread blocked in a system call is copied from
 * its sp without a signal, then checked to be still blocked there; a
 * running one copies its own stack in the sampler's signal handler (waited
 * for ASK_WAIT_NS at most). Returns 1 when the copy is there. W.mu
 * released. Watchdog thread. */
static int capture(int tid, const uv_pprof__syscall_t* st) {
  uv_pprof__syscall_t again;
  uint64_t deadline;

  if (!W.capturing)
    return 0;
  if (st->state == UV_PPROF__THREAD_IN_SYSCALL) {
    uv_pprof__sampler_capture_blocked(tid, st->sp, st->pc);
    /* It must not have moved while its stack was read. */
    return uv_pprof__thread_syscall(tid, &again) == 0 &&
           again.state == st->state && again.nr == st->nr &&
           again.sp == st->sp && again.pc == st->pc;
  }
  if (uv_pprof__sampler_capture_ask(tid) != 0)
    return 0;
  deadline = now_ns() + ASK_WAIT_NS;
  while (__atomic_load_n(&W.capture->state, __ATOMIC_ACQUIRE) !=
         UV_PPROF__CAPTURE_DONE) {
    struct timespec pause = {0, 50000};
    if (now_ns() >= deadline)
      return 0; /* late: its answer will be ignored */
    nanosleep(&pause, NULL);
  }
  return 1;
}

/* Unwinds the copy in W.capture (the first time, libdw loads: W.mu
 * released). */
static void unwind_capture(int tid, sample_t* s) {
  uv_pprof__capture_t* c = W.capture;
  uv_pprof__stack_copy_t copy;

  copy.tid = tid;
  copy.regs = c->regs;
  copy.known = c->known;
  copy.stack_addr = c->stack_addr;
  copy.stack = c->stack;
  copy.stack_len = c->stack_len;
  s->npcs = uv_pprof__sampler_unwind(
      &copy, s->pcs, UV_PPROF__ARRAY_SIZE(s->pcs), &s->complete);
}

/* ---- the watchdog's decisions (W.mu held) ------------------------------- */

static uv_pprof__stall_loop_t* find_id(uint64_t id) {
  uv_pprof__stall_loop_t* l;

  for (l = W.loops; l != NULL; l = l->next)
    if (l->id == id)
      return l;
  return NULL;
}

static int any_stalled(void) {
  uv_pprof__stall_loop_t* l;

  for (l = W.loops; l != NULL; l = l->next)
    if (l->mode == STALLED)
      return 1;
  return 0;
}

/* A timer on thread `tid`'s CPU clock (the kernel's encoding of it, as
 * pthread_getcpuclockid's) whose signal, with the loop's id, goes to the
 * watchdog thread, where it is blocked and read from W.sigfd. */
static void make_cpu_timer(uv_pprof__stall_loop_t* l, int tid) {
  struct sigevent ev;
  clockid_t clock = (clockid_t)((~(unsigned)tid << 3) | 6);

  if (W.sigfd < 0)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = W.signo;
  ev.sigev_value.sival_int = (int)l->id;
  ev.sigev_notify_thread_id = W.tid;
  if (timer_create(clock, &ev, &l->cpu_timer) == 0) {
    l->has_cpu_timer = 1;
    l->cpu_tid = tid;
  }
}

/* The loop waits for events: the watchdog sleeps until the loop's next
 * prepare or check (they write its eventfd when asked), its thread burns
 * QUIET_CPU_NS of CPU (a callback right after an I/O wake-up, before any
 * hook: the timer signals the watchdog, never the loop), or SAFETY_NS pass
 * (a loop blocked in a callback since an I/O wake-up uses no CPU and runs
 * no hook). A hook that ran before the request is seen in its seq. */
static void go_quiet(uv_pprof__stall_loop_t* l, const hooks_t* h,
                     uint64_t now) {
  struct itimerspec one;
  uv_pprof__syscall_t st;
  hooks_t again;

  l->mode = QUIET;
  l->quiet_seq = h->seq;
  l->waited_ms = now / 1000000;
  l->next_ns = now + SAFETY_NS;
  /* A sequentially consistent exchange (xchg) orders the request before
   * the read of the hooks that follows, as a full fence would. */
  __atomic_exchange_n(&l->wake_me, 1, __ATOMIC_SEQ_CST);
  if (l->has_cpu_timer && l->cpu_tid != h->tid) { /* the loop moved */
    timer_delete(l->cpu_timer);
    l->has_cpu_timer = 0;
  }
  if (!l->has_cpu_timer)
    make_cpu_timer(l, h->tid);
  if (l->has_cpu_timer) {
    memset(&one, 0, sizeof(one));
    one.it_value.tv_nsec = QUIET_CPU_NS;
    timer_settime(l->cpu_timer, 0, &one, NULL);
  }
  /* The request is seen by the loop's next hook if the thread is still
   * blocked in epoll_wait after it was made (the kernel orders the look at
   * the thread before the thread runs again); a hook that ran since the
   * first look shows in seq. Else: looked at again at once. */
  if (uv_pprof__thread_syscall(h->tid, &st) != 0 ||
      !uv_pprof__syscall_waits_on(&st, l->backend_fd)) {
    l->mode = ACTIVE;
    l->next_ns = now + 1;
    return;
  }
  read_hooks(l, &again);
  if (again.seq != h->seq) {
    l->mode = ACTIVE;
    l->next_ns = now + 1;
  }
}

static void end_stall(uv_pprof__stall_loop_t* l, const hooks_t* h,
                      uint64_t now) {
  uint64_t start = ms_to_ns(l->stall.start_ms);
  uint64_t held;

  /* Exact when the check hook has timed the iteration; else halfway
   * between the last tick that saw it held and this one. */
  if (h->state == CHECKED && h->last_start_ms == l->stall.start_ms)
    held = h->last_busy_ns;
  else
    held = (l->stall.seen_ns + now) / 2 - start;
  /* Never less than what /metrics already showed of it in progress. */
  if (held < l->stall.seen_ns - start)
    held = l->stall.seen_ns - start;
  if (l->stall.rec != NULL)
    uv_pprof__stallrec_end(l->stall.rec, (int64_t)held);
  l->stall.rec = NULL;
  __atomic_fetch_add(&l->stall_ns, held, __ATOMIC_RELAXED);
  l->mode = ACTIVE;
  if (!any_stalled())
    drop_capture();
}

/* The first sample stands for the time before it too. */
static void add_sample(uv_pprof__stall_loop_t* l, const sample_t* s,
                       uint64_t now) {
  uint64_t weight = now - l->stall.sampled_ns;

  if (s != NULL) {
    if (s->npcs == 0)
      return;
    memcpy(l->stall.pcs, s->pcs, s->npcs * sizeof(s->pcs[0]));
    l->stall.npcs = s->npcs;
    uv_pprof__site_classify(s->pcs, s->npcs, &l->stall.phase, &l->stall.type);
  }
  l->stall.sampled_ns = now;
  if (l->stall.rec != NULL)
    uv_pprof__stallrec_sample(l->stall.rec, l->stall.pcs, l->stall.npcs,
                              l->stall.phase, l->stall.type, weight);
}

/* Writes the report with W.mu released, once per stall. */
static void maybe_report(uv_pprof__stall_loop_t** lp, uint64_t now) {
  uv_pprof__stall_loop_t* l = *lp;
  uv_pprof__stall_report_t r;
  uintptr_t pcs[UV_PPROF__STALL_MAX_FRAMES];
  uint64_t id = l->id;

  if (l->report_ns == 0 || l->stall.reported ||
      now - ms_to_ns(l->stall.start_ms) < l->report_ns)
    return;
  l->stall.reported = 1;
  memset(&r, 0, sizeof(r));
  r.loop = (uintptr_t)l->loop;
  r.tid = __atomic_load_n(&l->tid, __ATOMIC_RELAXED);
  r.held_ns = now - ms_to_ns(l->stall.start_ms);
  r.threshold_ms = l->threshold_ms;
  memcpy(pcs, l->stall.pcs, l->stall.npcs * sizeof(pcs[0]));
  r.pcs = pcs;
  r.npcs = l->stall.npcs;
  r.phase = l->stall.phase;
  r.type = l->stall.type;
  uv_mutex_unlock(&W.mu);
  uv_pprof__stall_report(&r);
  uv_mutex_lock(&W.mu);
  *lp = find_id(id);
}

static void note_recorded(uv_pprof__stall_loop_t* l, uint64_t start_ms) {
  l->recorded[l->nrecorded++ % RECORDED] = start_ms;
}

/* Whether a stall recorded lately began within the busy run of an
 * iteration that started then and was busy that long. */
static int covered(const uv_pprof__stall_loop_t* l, uint64_t start_ms,
                   uint64_t busy_ns) {
  uint64_t end = start_ms + busy_ns / 1000000 + 1;
  unsigned i;

  for (i = 0; i < RECORDED && i < l->nrecorded; i++)
    if (l->recorded[i] >= start_ms && l->recorded[i] <= end)
      return 1;
  return 0;
}

/* Not looked at until its next prepare (the host runs the loop again); the
 * check hook's measure of the iteration it was in is no stall either. */
static void suppress(uv_pprof__stall_loop_t* l, const hooks_t* h,
                     uint64_t since_ms) {
  hooks_t again;

  note_recorded(l, since_ms);
  l->mode = SUPPRESSED;
  l->suppressed_seq = h->seq;
  /* The hooks make no fence: a prepare running now may miss the request
   * (the look every SAFETY_NS finds it back in uv_run then). */
  l->next_ns = now_ns() + SAFETY_NS;
  /* A sequentially consistent exchange (xchg) orders the request before
   * the read of the hooks that follows, as a full fence would. */
  __atomic_exchange_n(&l->wake_me, 1, __ATOMIC_SEQ_CST);
  read_hooks(l, &again);
  if (again.seq != h->seq)
    l->next_ns = now_ns();
  if (!any_stalled())
    drop_capture();
}

/* A tick of a held loop: has it polled since (or gone back to waiting)?
 * If not, one more sample. */
static void tick_stalled(uv_pprof__stall_loop_t* l, const hooks_t* h,
                         uint64_t since_ms, uint64_t now) {
  uv_pprof__syscall_t st;
  hooks_t again;
  sample_t s;
  uint64_t id = l->id;
  int tid = h->tid;
  int got;
  int err;

  if (since_ms != l->stall.start_ms) {
    end_stall(l, h, now);
    l->next_ns = now + 1;
    return;
  }
  err = uv_pprof__thread_syscall(tid, &st);
  if (err == 0 && uv_pprof__syscall_waits_on(&st, l->backend_fd)) {
    end_stall(l, h, now);
    l->next_ns = now + 1;
    return;
  }
  l->stall.seen_ns = now;
  l->next_ns = now + TICK_NS;
  if (err != 0)
    return;
  if (st.state == UV_PPROF__THREAD_IN_SYSCALL &&
      l->stall.blocked.state == st.state && l->stall.blocked.nr == st.nr &&
      l->stall.blocked.sp == st.sp && l->stall.blocked.pc == st.pc &&
      l->stall.npcs > 0) {
    add_sample(l, NULL, now); /* still in the same call: the same stack */
  } else {
    s.npcs = 0;
    uv_mutex_unlock(&W.mu);
    got = capture(tid, &st);
    uv_mutex_lock(&W.mu);
    l = find_id(id);
    if (l == NULL || l->mode != STALLED)
      return;
    read_hooks(l, &again);
    if (again.seq != h->seq)
      return; /* it moved on meanwhile: the next tick ends the stall */
    if (got) {
      uv_mutex_unlock(&W.mu);
      unwind_capture(tid, &s);
      uv_mutex_lock(&W.mu);
      l = find_id(id);
      if (l == NULL || l->mode != STALLED)
        return;
    }
    if (outside_uv_run(&s)) { /* it left the loop: the stall ended */
      end_stall(l, &again, l->stall.seen_ns);
      suppress(l, &again, now / 1000000);
      return;
    }
    add_sample(l, &s, now_ns());
    l->stall.blocked = st;
    if (s.npcs == 0)
      l->stall.blocked.state = -1;
  }
  maybe_report(&l, now);
}

/* A stall that ended before it could be sampled: recorded at once, with
 * the time the check hook measured and no stack. noticed_ns 0: it was not
 * noticed while it lasted. */
static void record_unsampled(uv_pprof__stall_loop_t* l, uint64_t since_ms,
                             uint64_t busy_ns, uint64_t noticed_ns) {
  uv_pprof__stall_t* rec;

  if (covered(l, since_ms, busy_ns))
    return;
  rec =
      uv_pprof__stallrec_begin((uintptr_t)l->loop, (int64_t)ms_to_ns(since_ms));
  if (rec != NULL)
    uv_pprof__stallrec_end(rec, (int64_t)busy_ns);
  if (noticed_ns != 0)
    __atomic_store_n(&l->noticed_after_ns, noticed_ns - ms_to_ns(since_ms),
                     __ATOMIC_RELAXED);
  __atomic_fetch_add(&l->stalls, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&l->stall_ns, busy_ns, __ATOMIC_RELAXED);
  note_recorded(l, since_ms);
}

/* The iterations the check hook measured past the threshold that no stall
 * recorded covers (none starts within the iteration's busy run): the
 * watchdog ran too late to see them live. */
static void reconcile(uv_pprof__stall_loop_t* l) {
  unsigned count = __atomic_load_n(&l->over_count, __ATOMIC_ACQUIRE);

  if (count - l->over_seen > OVER)
    l->over_seen = count - OVER; /* overwritten: those are lost */
  for (; l->over_seen != count; l->over_seen++) {
    unsigned k = l->over_seen % OVER;
    uint64_t start_ms = __atomic_load_n(&l->over[k].start_ms, __ATOMIC_ACQUIRE);
    uint64_t busy_ns = __atomic_load_n(&l->over[k].busy_ns, __ATOMIC_ACQUIRE);

    /* The check hook may have been writing this entry anew meanwhile. */
    if (__atomic_load_n(&l->over_count, __ATOMIC_RELAXED) - l->over_seen >=
        OVER)
      continue;
    record_unsampled(l, start_ms, busy_ns, 0);
  }
}

/* The loop has been held past its threshold: sample it, and unless the
 * sample shows its thread outside uv_run (the host left the loop: that is
 * no stall), a stall begins. A sample that did not come (the thread waited
 * for a CPU longer than ASK_WAIT_NS) is tried again at the next ticks
 * before the stall begins without it. */
static void begin_stall(uv_pprof__stall_loop_t* l, const hooks_t* h,
                        uint64_t since_ms, const uv_pprof__syscall_t* st,
                        uint64_t now) {
  uint64_t id = l->id;
  uint64_t clock_ms;
  hooks_t again;
  sample_t s;
  int got = 0;

  s.npcs = 0;
  s.complete = 0;
  if (hold_capture() == 0) { /* else no signal: a stall without stacks */
    uv_mutex_unlock(&W.mu);
    got = capture(h->tid, st);
    uv_mutex_lock(&W.mu);
    l = find_id(id);
    if (l == NULL)
      return;
  }
  read_hooks(l, &again);
  if (uv_pprof__uvi_loop_time(l->loop, &clock_ms) != 0)
    clock_ms = again.s_ms;
  if (again.seq != h->seq ||
      held_since_ms(&again, clock_ms, l->waited_ms) != since_ms) {
    /* It moved on before it was sampled: its iteration, when the check
     * hook measured it past the threshold, was a stall all the same. */
    if (again.state == CHECKED && again.last_start_ms == since_ms &&
        again.last_busy_ns >= l->threshold_ns)
      record_unsampled(l, since_ms, again.last_busy_ns,
                       l->mode == CANDIDATE ? l->candidate.noticed_ns : now);
    l->mode = ACTIVE;
    l->next_ns = now + 1;
    if (!any_stalled())
      drop_capture();
    return;
  }
  if (got) { /* a copy of the thread while it was held: unwound now */
    uv_mutex_unlock(&W.mu);
    unwind_capture(h->tid, &s);
    uv_mutex_lock(&W.mu);
    l = find_id(id);
    if (l == NULL)
      return;
  }
  if (outside_uv_run(&s)) {
    suppress(l, &again, since_ms);
    return;
  }
  if (l->mode != CANDIDATE) {
    l->candidate.since_ms = since_ms;
    l->candidate.noticed_ns = now;
    l->candidate.tries = 0;
  }
  if (s.npcs == 0 && ++l->candidate.tries < FIRST_TRIES) {
    l->mode = CANDIDATE;
    l->next_ns = now + TICK_NS;
    return;
  }
  now = l->candidate.noticed_ns;
  memset(&l->stall, 0, sizeof(l->stall));
  l->stall.start_ms = since_ms;
  l->stall.noticed_ns = now;
  l->stall.seen_ns = now;
  l->stall.sampled_ns = ms_to_ns(since_ms);
  l->stall.blocked = *st;
  l->stall.phase = UV_PPROF__PHASE_UNKNOWN;
  l->stall.rec =
      uv_pprof__stallrec_begin((uintptr_t)l->loop, (int64_t)ms_to_ns(since_ms));
  __atomic_store_n(&l->noticed_after_ns, now - ms_to_ns(since_ms),
                   __ATOMIC_RELAXED);
  __atomic_fetch_add(&l->stalls, 1, __ATOMIC_RELAXED);
  note_recorded(l, since_ms);
  l->mode = STALLED;
  l->next_ns = now + TICK_NS;
  add_sample(l, &s, now);
  if (s.npcs == 0)
    l->stall.blocked.state = -1;
}

static void evaluate(uv_pprof__stall_loop_t* l, uint64_t now) {
  uv_pprof__syscall_t st;
  uint64_t clock_ms;
  uint64_t since_ms;
  hooks_t h;
  int err;

  read_hooks(l, &h);
  reconcile(l);
  if (l->mode == SUPPRESSED) {
    if (h.seq == l->suppressed_seq) {
      l->next_ns = now + SAFETY_NS;
      return;
    }
    /* Back in the loop: what held it before this iteration was not. */
    l->mode = ACTIVE;
    if (h.s_ms > l->waited_ms)
      l->waited_ms = h.s_ms;
  }
  if (uv_pprof__uvi_loop_time(l->loop, &clock_ms) != 0)
    clock_ms = h.s_ms;
  since_ms = held_since_ms(&h, clock_ms, l->waited_ms);
  if (l->mode == STALLED) {
    tick_stalled(l, &h, since_ms, now);
    return;
  }
  if (l->mode == CANDIDATE && since_ms != l->candidate.since_ms)
    l->mode = ACTIVE; /* it polled before its first sample */
  /* Held for the threshold at least, whatever the clock's truncation. */
  if (now < (since_ms + 1) * 1000000 + l->threshold_ns) {
    l->mode = ACTIVE;
    l->next_ns = (since_ms + 1) * 1000000 + l->threshold_ns;
    return;
  }
  err = uv_pprof__thread_syscall(h.tid, &st);
  if (err != 0) {
    /* Gone (a thread that ended without uv_pprof_stop), or /proc cannot
     * say: no stall detection for this loop. */
    if (err != UV_ESRCH && err != UV_ENOENT)
      fprintf(stderr,
              "uv_pprof: stall detection is off for loop 0x%" PRIxPTR
              ": /proc/self/task/%d/syscall cannot be read (%s)\n",
              (uintptr_t)l->loop, h.tid, uv_strerror(err));
    l->mode = OFF;
    l->next_ns = NEVER;
    return;
  }
  if (uv_pprof__syscall_waits_on(&st, l->backend_fd)) {
    go_quiet(l, &h, now);
    return;
  }
  begin_stall(l, &h, since_ms, &st, now);
}

/* A waiting loop woke (a hook ran since, or its CPU timer fired): look at
 * it now. It was waiting at waited_ms (go_quiet's): whatever holds it
 * began later. */
static void wake_loop(uv_pprof__stall_loop_t* l, uint64_t now) {
  l->mode = ACTIVE;
  l->next_ns = now;
}

/* ---- the watchdog thread ------------------------------------------------- */

/* Unlike the worker it keeps the normal policy: its wake-ups are short
 * (tens of microseconds) and must come on time, a batch thread waits for
 * the CPU behind the very loop it is to notice. */
static void run(void* arg) {
  struct epoll_event evs[16];

  pthread_setname_np(pthread_self(), "uv_pprof_stall");
  uv_pprof__je_thread_unsampled();
  uv_mutex_lock(&W.mu);
  W.tid = (int)syscall(SYS_gettid);
  uv_cond_signal(&W.started);
  while (!W.stop) {
    uint64_t now = now_ns();
    uint64_t next = NEVER;
    uv_pprof__stall_loop_t* l;
    int timeout;
    int n;
    int i;

    for (;;) {
      for (l = W.loops; l != NULL && l->next_ns > now; l = l->next)
        ;
      if (l == NULL || W.stop)
        break;
      evaluate(l, now); /* always moves next_ns past now */
      now = now_ns();
    }
    for (l = W.loops; l != NULL; l = l->next)
      if (l->next_ns < next)
        next = l->next_ns;
    timeout = next == NEVER ? -1
              : next <= now ? 0
                            : (int)((next - now + 999999) / 1000000);
    uv_mutex_unlock(&W.mu);
    n = epoll_wait(W.epfd, evs, UV_PPROF__ARRAY_SIZE(evs), timeout);
    __atomic_fetch_add(&W.wakeups, 1, __ATOMIC_RELAXED);
    uv_mutex_lock(&W.mu);
    now = now_ns();
    for (i = 0; i < n; i++) {
      if (evs[i].data.u64 == 0) {
        uint64_t v;
        if (read(W.evfd, &v, sizeof(v)) < 0) {
          /* EAGAIN: another wake-up read it */
        }
        /* A hook asked for it: a suppressed loop back in uv_run, a
         * waiting one that ran an iteration since. */
        for (l = W.loops; l != NULL; l = l->next) {
          hooks_t h;
          if (l->mode == SUPPRESSED) {
            l->next_ns = now;
          } else if (l->mode == QUIET) {
            read_hooks(l, &h);
            if (h.seq != l->quiet_seq)
              wake_loop(l, now);
          }
        }
      } else {
        struct signalfd_siginfo si[8];
        ssize_t got = read(W.sigfd, si, sizeof(si));
        int k;
        /* A waiting loop's thread used QUIET_CPU_NS since. */
        for (k = 0; got > 0 && k < got / (ssize_t)sizeof(si[0]); k++) {
          l = find_id((uint64_t)(unsigned)si[k].ssi_int);
          if (l != NULL && l->mode == QUIET)
            wake_loop(l, now);
        }
      }
    }
  }
  drop_capture();
  uv_mutex_unlock(&W.mu);
}

/* The CPU timers' signal: the lowest real-time signal nobody handles (the
 * CPU sampler takes the highest). It is only ever sent to the watchdog
 * thread, which blocks it: its disposition never applies. 0: none. */
static int pick_timer_signal(void) {
  int sig;

  for (sig = SIGRTMIN + 1; sig < SIGRTMAX - 1; sig++) {
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL)
      return sig;
  }
  return 0;
}

/* The CPU timers' signalfd, in the watchdog's epoll as 1. Without it,
 * waiting loops are looked at every SAFETY_NS only. */
static void open_timer_signal(void) {
  struct epoll_event ev;
  sigset_t set;

  W.signo = pick_timer_signal();
  if (W.signo == 0)
    return;
  sigemptyset(&set);
  sigaddset(&set, W.signo);
  W.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (W.sigfd < 0)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.u64 = 1;
  if (epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.sigfd, &ev) != 0) {
    close(W.sigfd);
    W.sigfd = -1;
  }
}

/* Opens the watchdog's epoll (with its eventfd and signalfd) and starts
 * it. W.mu held. */
static int start_watchdog(void) {
  struct epoll_event ev;
  sigset_t all;
  sigset_t old;
  int err;

  W.epfd = epoll_create1(EPOLL_CLOEXEC);
  W.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (W.epfd < 0 || W.evfd < 0) {
    err = uv_translate_sys_error(errno);
    goto fail;
  }
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.evfd, &ev) != 0) {
    err = uv_translate_sys_error(errno);
    goto fail;
  }
  open_timer_signal();
  W.tid = 0;
  if (W.run_end == 0)
    find_uv_run();
  W.stop = 0;
  /* Every signal blocked, as the worker: the host's handlers never run on
   * uv_pprof's thread. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = uv_thread_create(&W.thread, run, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0) {
    W.running = 1;
    while (W.tid == 0) /* the CPU timers are aimed at it */
      uv_cond_wait(&W.started, &W.mu);
    return 0;
  }
fail:
  close_fds();
  return err;
}

/* Stops and joins it once no loop is left. W.mu held; released meanwhile. */
static void stop_watchdog(void) {
  W.stop = 1;
  wake_watchdog();
  uv_mutex_unlock(&W.mu);
  uv_thread_join(&W.thread);
  uv_mutex_lock(&W.mu);
  W.running = 0;
  close_fds();
  if (W.capture != NULL)
    munmap(W.capture, sizeof(*W.capture));
  W.capture = NULL;
}

/* ---- attach and detach (the loop's thread) ------------------------------- */

static void on_hook_close(uv_handle_t* handle) {
  uv_pprof__stall_loop_t* l = handle->data;

  uv_pprof__handle_disown(handle);
  if (--l->open_handles == 0)
    free(l);
}

int uv_pprof__stall_attach(uv_loop_t* loop, unsigned threshold_ms,
                           unsigned report_s, uv_pprof__stall_loop_t** out) {
  uv_pprof__stall_loop_t* l;
  int err;

  *out = NULL;
  if (threshold_ms == 0)
    return 0;
  uv_once(&once, init_once);
  l = calloc(1, sizeof(*l));
  if (l == NULL)
    return UV_ENOMEM;
  l->loop = loop;
  l->backend_fd = uv_backend_fd(loop);
  l->threshold_ms = threshold_ms;
  l->threshold_ns = (uint64_t)threshold_ms * 1000000;
  l->report_ns = (uint64_t)report_s * 1000000000;
  l->thread = pthread_self();
  l->tid = (int)syscall(SYS_gettid);
  l->state = CHECKED;
  l->w_ms = l->s_ms = uv_now(loop);
  l->split_idle = uv_metrics_idle_time(loop);
  /* Not looked at before its first prepare: until then the thread is
   * likely still on its way to uv_run (node runs the main script first). A
   * stall in the first iteration's timers goes unseen. */
  l->mode = SUPPRESSED;
  l->suppressed_seq = 0;
  l->wake_me = 1;
  l->next_ns = NEVER;
  err = uv_prepare_init(loop, &l->prepare);
  if (err != 0) {
    free(l);
    return err;
  }
  uv_check_init(loop, &l->check);
  l->prepare.data = l->check.data = l;
  l->open_handles = 2;
  uv_pprof__handle_own(&l->prepare); /* and hidden from the host's walks */
  uv_pprof__handle_own(&l->check);
  uv_unref((uv_handle_t*)&l->prepare);
  uv_unref((uv_handle_t*)&l->check);
  uv_mutex_lock(&W.mu);
  err = W.running ? 0 : start_watchdog();
  if (err == 0) {
    l->id = ++W.next_id;
    l->next = W.loops;
    W.loops = l;
    wake_watchdog();
  }
  uv_mutex_unlock(&W.mu);
  if (err != 0) {
    uv_close((uv_handle_t*)&l->prepare, on_hook_close);
    uv_close((uv_handle_t*)&l->check, on_hook_close);
    return err;
  }
  uv_prepare_start(&l->prepare, on_prepare);
  uv_check_start(&l->check, on_check);
  uv_pprof__site_teach(loop);
  *out = l;
  return 0;
}

void uv_pprof__stall_detach(uv_pprof__stall_loop_t* l) {
  uv_pprof__stall_loop_t** p;
  hooks_t h;

  if (l == NULL)
    return;
  uv_mutex_lock(&W.mu);
  for (p = &W.loops; *p != NULL; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      break;
    }
  if (l->has_cpu_timer)
    timer_delete(l->cpu_timer);
  l->has_cpu_timer = 0;
  if (l->mode == STALLED) { /* it is running this: the stall is over */
    read_hooks(l, &h);
    end_stall(l, &h, now_ns());
  }
  if (W.loops == NULL && W.running)
    stop_watchdog();
  uv_mutex_unlock(&W.mu);
  uv_prepare_stop(&l->prepare);
  uv_check_stop(&l->check);
  uv_close((uv_handle_t*)&l->prepare, on_hook_close);
  uv_close((uv_handle_t*)&l->check, on_hook_close);
}

/* ---- figures ------------------------------------------------------------- */

size_t uv_pprof__stall_loops(uv_pprof__stall_stats_t* out, size_t max) {
  uv_pprof__stall_loop_t* l;
  size_t n = 0;
  size_t b;

  uv_once(&once, init_once);
  uv_mutex_lock(&W.mu);
  for (l = W.loops; l != NULL; l = l->next, n++) {
    uv_pprof__stall_stats_t* s = &out[n];
    if (n >= max)
      continue;
    s->loop = (uintptr_t)l->loop;
    for (b = 0; b < UV_PPROF__STALL_BUCKETS; b++)
      s->buckets[b] = __atomic_load_n(&l->buckets[b], __ATOMIC_RELAXED);
    s->busy_ns = __atomic_load_n(&l->busy_ns, __ATOMIC_RELAXED);
    s->stalls = __atomic_load_n(&l->stalls, __ATOMIC_RELAXED);
    s->stall_ns = __atomic_load_n(&l->stall_ns, __ATOMIC_RELAXED);
    s->in_progress_ns = 0;
    s->noticed_ns = __atomic_load_n(&l->noticed_after_ns, __ATOMIC_RELAXED);
    if (l->mode == STALLED)
      s->in_progress_ns = l->stall.seen_ns - ms_to_ns(l->stall.start_ms);
  }
  uv_mutex_unlock(&W.mu);
  return n;
}

const uint64_t* uv_pprof__stall_bounds(void) {
  return bounds_ns;
}

uint64_t uv_pprof__stall_wakeups(void) {
  return __atomic_load_n(&W.wakeups, __ATOMIC_RELAXED);
}
