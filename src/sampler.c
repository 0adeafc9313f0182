/* The CPU sampler. A timer on each thread's own CPU-time clock sends that
 * thread a real-time signal every 10 ms of its CPU; the handler copies the
 * interrupted registers and the top of the stack into a preallocated
 * lock-free ring. Draining (on uv_pprof's worker) unwinds those copies
 * (unwind.c), reading only the copy. The first acquire installs all of it,
 * the last release removes all of it. The same signal and handler serve
 * captures: one thread asked, by a queued signal, to copy its registers and
 * stack into one buffer (stall sampling, src/stall.c). docs/INTERNALS.md,
 * "CPU sampler", gives the reasons and the signal-safety argument. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "proc.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define STACK_MAX \
  UV_PPROF__STACK_COPY_MAX /* bytes of stack copied per sample */
#define MAX_THREADS 16384
#define REC_ALIGN 64
#define RING_MIN (1u << 20)
#define RING_MAX (16u << 20)
#define PAD_RECORD UINT32_MAX
#define NO_RECORD UINT64_MAX /* a position no record ever has */
#define MAX_WEIGHT 1000      /* overruns counted per sample, at most */
#define NAME_NS 1000000000   /* between two reads of a thread's name */
/* Between two listings of the threads when their number has not changed. */
#define LIST_NS 1000000000
#define DRAIN_NS 500000000 /* between two drains, at most */

#define NREGS UV_PPROF__NREGS

/* The registers unwinding starts from, in DWARF numbering. */
#if defined(__x86_64__)
#define ARCH_SUPPORTED 1
#define RED_ZONE 128

/* Async-signal-safe. */
static uintptr_t read_regs(const ucontext_t* uc, uint64_t* regs) {
  static const int order[NREGS] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI,
                                   REG_RDI, REG_RBP, REG_RSP, REG_R8,  REG_R9,
                                   REG_R10, REG_R11, REG_R12, REG_R13, REG_R14,
                                   REG_R15, REG_RIP};
  int i;

  for (i = 0; i < NREGS; i++)
    regs[i] = (uint64_t)uc->uc_mcontext.gregs[order[i]];
  return (uintptr_t)regs[7];
}
#elif defined(__aarch64__)
#define ARCH_SUPPORTED 1
#define RED_ZONE 0

/* Async-signal-safe. */
static uintptr_t read_regs(const ucontext_t* uc, uint64_t* regs) {
  int i;

  for (i = 0; i < 31; i++)
    regs[i] = uc->uc_mcontext.regs[i];
  regs[31] = uc->uc_mcontext.sp;
  regs[32] = uc->uc_mcontext.pc;
  return (uintptr_t)regs[31];
}
#else
#define ARCH_SUPPORTED 0
#define RED_ZONE 0

/* Async-signal-safe. */
static uintptr_t read_regs(const ucontext_t* uc, uint64_t* regs) {
  regs[0] = 0;
  return 0;
}
#endif

/* The registers a blocked thread's copy knows: its stack pointer and pc. */
static void set_sp_pc(uv_pprof__capture_t* c, uintptr_t sp, uintptr_t pc) {
#if defined(__x86_64__)
  c->regs[7] = sp;
  c->regs[16] = pc;
  c->known = (1u << 7) | (1u << 16);
#elif defined(__aarch64__)
  c->regs[31] = sp;
  c->regs[32] = pc;
  c->known = ((uint64_t)1 << 31) | ((uint64_t)1 << 32);
#else
  c->regs[0] = pc;
  c->known = 0;
#endif
}

/* One thread that has (or had) a timer. `tid` and the bounds are read by
 * the handler; the bounds change under a sequence lock (odd: being
 * written). The rest is the worker's. */
typedef struct {
  int tid;
  unsigned seq;
  uintptr_t self; /* the thread pointer the bounds belong to */
  uintptr_t lo;   /* [lo, top): the thread's own stack, safe to read */
  uintptr_t top;
  timer_t timer;
  int state;
  uintptr_t tried_self; /* the last learning attempt: its thread pointer */
  uintptr_t tried_sp;   /* ... and the lowest sp tried with it */
  uint64_t retire_at;   /* DEAD: free once the drain has read this far */
  int64_t named;        /* when its name was last read */
  char name[16];
} thread_t;

enum { THREAD_FREE, THREAD_LIVE, THREAD_DEAD };

/* A sample in the ring. `pos` is stored last (release): the record is
 * complete once it equals the record's ring position. */
typedef struct {
  uint64_t pos;
  uint32_t size;   /* bytes, a multiple of REC_ALIGN; padding to the end */
  uint32_t thread; /* index in S.threads, or PAD_RECORD */
  int32_t tid;
  uint32_t stack_len;
  int64_t time;
  int64_t weight;
  uintptr_t self;
  uintptr_t sp;
  uintptr_t stack_addr; /* where the copy in `stack` starts */
  uint32_t fast;        /* copied within learned bounds */
  uint32_t unused;
  uint64_t regs[NREGS];
  unsigned char stack[];
} record_t;

static struct {
  uv_mutex_t mu;
  int users;     /* acquire count */
  int sig_users; /* the handler's users: CPU arming, captures */
  int signo;
  struct sigaction old; /* the disposition we replaced */
  pid_t pid;
  size_t page;
  /* read by the handler */
  unsigned generation;
  int armed;
  int active;                   /* handlers running now */
  uv_pprof__capture_t* capture; /* the captures' buffer, or NULL */
  uint32_t capture_token;       /* the capture asked for, 0: none */
  unsigned char* ring;
  size_t ring_size; /* a power of 2 */
  uint64_t head;    /* next free byte (producers) */
  uint64_t tail;    /* next unread byte (the drain) */
  thread_t* threads;
  /* the worker's */
  uint32_t nused; /* threads[0..nused) have been used */
  uint32_t* free_slots;
  size_t nfree;
  uint32_t* live; /* LIVE slots, sorted by tid */
  size_t nlive;
  int64_t drained; /* when the last drain started (atomic) */
  int want_drain;  /* a handler copied a stack of unknown bounds (atomic) */
  int64_t listed;  /* when the threads were last listed */
  nlink_t nlink;   /* /proc/self/task's link count then (threads + 2) */
  char* maps;      /* /proc/self/maps as read during this drain, or NULL */
  uv_pprof__sampler_stats_t stats; /* counters updated atomically */
} S;

static uv_once_t once = UV_ONCE_INIT;

/* ---- the signal handler -------------------------------------------------- */

/* Async-signal-safe. */
static int64_t monotonic_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Async-signal-safe. Reads the learned bounds of t; returns 1 and the range
 * to copy when sp lies on the thread's own stack, which stays mapped while
 * the thread runs on it. */
static int stack_range(thread_t* t, uintptr_t sp, uintptr_t* from,
                       size_t* len) {
  unsigned seq = __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
  uintptr_t self;
  uintptr_t lo;
  uintptr_t top;

  if (seq & 1)
    return 0;
  /* Acquire loads rather than a fence (which ThreadSanitizer cannot
   * follow): the second read of seq cannot move above them. Plain loads on
   * x86-64. */
  self = __atomic_load_n(&t->self, __ATOMIC_ACQUIRE);
  lo = __atomic_load_n(&t->lo, __ATOMIC_ACQUIRE);
  top = __atomic_load_n(&t->top, __ATOMIC_ACQUIRE);
  if (__atomic_load_n(&t->seq, __ATOMIC_RELAXED) != seq)
    return 0;
  if (self == 0 || self != (uintptr_t)__builtin_thread_pointer() || sp < lo ||
      sp >= top || sp % sizeof(uint64_t) != 0)
    return 0;
  *from = sp - lo > RED_ZONE ? sp - RED_ZONE : lo;
  *len = top - *from < STACK_MAX ? top - *from : STACK_MAX;
  *len -= *len % sizeof(uint64_t);
  return 1;
}

/* Async-signal-safe. A plain word copy: no memcpy, which ASan would check
 * against the red zones it keeps in live stack frames. */
__attribute__((no_sanitize_address)) static void copy_words(unsigned char* dst,
                                                            uintptr_t from,
                                                            size_t len) {
  const volatile uint64_t* src = (const volatile uint64_t*)from;
  uint64_t* out = (uint64_t*)dst;
  size_t i;

  for (i = 0; i < len / sizeof(uint64_t); i++)
    out[i] = src[i];
}

/* Async-signal-safe. Copies up to STACK_MAX bytes from sp, stopping at the
 * first page that cannot be read: the kernel checks every page. */
static size_t copy_checked(unsigned char* dst, uintptr_t sp) {
  struct iovec local = {dst, STACK_MAX};
  struct iovec remote[STACK_MAX / 4096 + 1];
  uintptr_t at = sp;
  size_t n = 0;
  long got;

  while (at < sp + STACK_MAX && n < UV_PPROF__ARRAY_SIZE(remote)) {
    uintptr_t end = (at & ~(uintptr_t)(S.page - 1)) + S.page;
    if (end > sp + STACK_MAX)
      end = sp + STACK_MAX;
    remote[n].iov_base = (void*)at;
    remote[n].iov_len = end - at;
    n++;
    at = end;
  }
  got = syscall(SYS_process_vm_readv, (long)S.pid, &local, 1L, remote,
                (unsigned long)n, 0UL);
  return got > 0 ? (size_t)got : 0;
}

/* Async-signal-safe. Copies the stack from the red zone below sp, as the
 * fast path does (a leaf keeps values there, and an epilogue's CFI still
 * finds the frame pointer it just popped there: without it the unwinding
 * stops at the caller), or from sp when the red zone cannot be read (sp at
 * the bottom of its mapping). Returns the length; *from is where the copy
 * starts. */
static size_t copy_from_red_zone(unsigned char* dst, uintptr_t sp,
                                 uintptr_t* from) {
  size_t len;

  if (RED_ZONE > 0 && sp > RED_ZONE) {
    *from = sp - RED_ZONE;
    len = copy_checked(dst, *from);
    if (len > RED_ZONE)
      return len;
  }
  *from = sp;
  return copy_checked(dst, sp);
}

/* Async-signal-safe. Reserves `size` bytes (padding the end of the ring when
 * they would not fit before it); NULL when the ring is full. */
static record_t* reserve(size_t size, uint64_t* pos) {
  uint64_t head = __atomic_load_n(&S.head, __ATOMIC_RELAXED);
  size_t mask = S.ring_size - 1;
  size_t pad;
  record_t* r;

  for (;;) {
    uint64_t tail = __atomic_load_n(&S.tail, __ATOMIC_ACQUIRE);
    size_t off = (size_t)(head & mask);
    pad = off + size > S.ring_size ? S.ring_size - off : 0;
    if (head + pad + size - tail > S.ring_size)
      return NULL;
    if (__atomic_compare_exchange_n(&S.head, &head, head + pad + size, 1,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
      break;
  }
  if (pad != 0) {
    r = (record_t*)(S.ring + (head & mask));
    r->size = (uint32_t)pad;
    r->thread = PAD_RECORD;
    __atomic_store_n(&r->pos, head, __ATOMIC_RELEASE);
    head += pad;
  }
  *pos = head;
  return (record_t*)(S.ring + (head & mask));
}

/* Async-signal-safe. */
static void take_sample(const siginfo_t* si, void* context) {
  uint64_t value = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
  uint32_t slot = (uint32_t)value;
  uint64_t regs[NREGS];
  uint64_t pos;
  thread_t* t;
  record_t* r;
  uintptr_t sp;
  uintptr_t from = 0;
  size_t len = 0;
  size_t size;
  int64_t start;
  int fast;

  if (!__atomic_load_n(&S.armed, __ATOMIC_SEQ_CST) ||
      (uint32_t)(value >> 32) !=
          __atomic_load_n(&S.generation, __ATOMIC_RELAXED) ||
      slot >= MAX_THREADS)
    return;
  start = monotonic_ns();
  t = &S.threads[slot];
  sp = read_regs(context, regs);
  fast = stack_range(t, sp, &from, &len);
  size = sizeof(record_t) + (fast ? len : STACK_MAX);
  size = (size + REC_ALIGN - 1) & ~(size_t)(REC_ALIGN - 1);
  r = reserve(size, &pos);
  if (r == NULL) {
    __atomic_fetch_add(&S.stats.lost, 1, __ATOMIC_RELAXED);
    return;
  }
  r->size = (uint32_t)size;
  r->thread = slot;
  r->tid = __atomic_load_n(&t->tid, __ATOMIC_ACQUIRE);
  r->time = start;
  r->weight = 1 + (si->si_overrun > 0 ? si->si_overrun : 0);
  if (r->weight > MAX_WEIGHT)
    r->weight = MAX_WEIGHT;
  r->self = (uintptr_t)__builtin_thread_pointer();
  r->sp = sp;
  r->fast = (uint32_t)fast;
  memcpy(r->regs, regs, sizeof(regs));
  if (fast) {
    copy_words(r->stack, from, len);
  } else {
    len = copy_from_red_zone(r->stack, sp, &from);
    __atomic_store_n(&S.want_drain, 1, __ATOMIC_RELAXED);
  }
  r->stack_addr = from;
  r->stack_len = (uint32_t)len;
  __atomic_store_n(&r->pos, pos, __ATOMIC_RELEASE);
  __atomic_fetch_add(&S.stats.samples, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&S.stats.stack_bytes, (uint64_t)len, __ATOMIC_RELAXED);
  __atomic_fetch_add(&S.stats.handler_ns, (uint64_t)(monotonic_ns() - start),
                     __ATOMIC_RELAXED);
}

/* Async-signal-safe. A capture asked of this thread: only the request
 * whose token is current, once (the state goes from asked to written to
 * done), into the registered buffer, never a pointer the signal carries. */
static void take_capture(const siginfo_t* si, void* context) {
  uint32_t token = (uint32_t)si->si_value.sival_int;
  uv_pprof__capture_t* c = __atomic_load_n(&S.capture, __ATOMIC_ACQUIRE);
  int asked = UV_PPROF__CAPTURE_ASKED;
  uintptr_t sp;

  if (c == NULL || token == 0 ||
      token != __atomic_load_n(&S.capture_token, __ATOMIC_ACQUIRE) ||
      !__atomic_compare_exchange_n(&c->state, &asked, UV_PPROF__CAPTURE_WRITING,
                                   0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    return;
  c->time = monotonic_ns();
  sp = read_regs(context, c->regs);
  c->known = UV_PPROF__REGS_ALL;
  c->stack_len = copy_from_red_zone(c->stack, sp, &c->stack_addr);
  __atomic_store_n(&c->state, UV_PPROF__CAPTURE_DONE, __ATOMIC_RELEASE);
}

/* Async-signal-safe. `active` lets disarming wait for handlers in flight;
 * one that starts after `armed` was cleared (or the capture buffer was
 * unregistered) touches nothing. */
static void on_signal(int signo, siginfo_t* si, void* context) {
  int saved = errno;

  __atomic_fetch_add(&S.active, 1, __ATOMIC_SEQ_CST);
  if (si->si_code == SI_TIMER)
    take_sample(si, context);
  else if (si->si_code == SI_QUEUE && si->si_pid == S.pid)
    take_capture(si, context);
  __atomic_fetch_sub(&S.active, 1, __ATOMIC_SEQ_CST);
  errno = saved;
}

/* ---- threads and their timers (the worker) ------------------------------ */

static void set_bounds(thread_t* t, uintptr_t self, uintptr_t lo,
                       uintptr_t top) {
  unsigned seq = t->seq;

  __atomic_store_n(&t->seq, seq + 1, __ATOMIC_RELAXED);
  /* Release stores rather than a fence (see stack_range): the odd seq
   * cannot move below them. */
  __atomic_store_n(&t->self, self, __ATOMIC_RELEASE);
  __atomic_store_n(&t->lo, lo, __ATOMIC_RELEASE);
  __atomic_store_n(&t->top, top, __ATOMIC_RELEASE);
  __atomic_store_n(&t->seq, seq + 2, __ATOMIC_RELEASE);
}

static void read_name(thread_t* t) {
  char path[64];
  char name[sizeof(t->name)];
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "/proc/self/task/%d/comm", t->tid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return; /* gone: keep the name it had */
  do
    n = read(fd, name, sizeof(name) - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0)
    return;
  name[n] = '\0';
  name[strcspn(name, "\n")] = '\0';
  memcpy(t->name, name, sizeof(name));
}

/* A timer on the thread's CPU clock, signalling that thread only. */
static int start_timer(uint32_t slot) {
  thread_t* t = &S.threads[slot];
  struct itimerspec period;
  struct sigevent ev;
  /* The kernel's clock id of a thread's CPU time (what glibc's
   * pthread_getcpuclockid builds): ~tid << 3 | CPUCLOCK_PERTHREAD | SCHED. */
  clockid_t clock = (clockid_t)((~(unsigned)t->tid << 3) | 6);

  memset(&ev, 0, sizeof(ev));
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = S.signo;
  ev.sigev_notify_thread_id = t->tid;
  ev.sigev_value.sival_ptr =
      (void*)(uintptr_t)(((uint64_t)S.generation << 32) | slot);
  if (timer_create(clock, &ev, &t->timer) != 0)
    return uv_translate_sys_error(errno);
  period.it_interval.tv_sec = 0;
  period.it_interval.tv_nsec = UV_PPROF__CPU_PERIOD_NS;
  period.it_value = period.it_interval;
  if (timer_settime(t->timer, 0, &period, NULL) != 0) {
    int err = uv_translate_sys_error(errno);
    timer_delete(t->timer);
    return err;
  }
  return 0;
}

/* A slot for a new thread, its timer started. Returns 0 or an error. */
static int add_thread(int tid, uint32_t* out) {
  uint32_t slot;
  thread_t* t;
  int err;

  if (S.nfree > 0)
    slot = S.free_slots[--S.nfree];
  else if (S.nused < MAX_THREADS)
    slot = S.nused++;
  else
    return UV_EAGAIN;
  t = &S.threads[slot];
  set_bounds(t, 0, 0, 0);
  __atomic_store_n(&t->tid, tid, __ATOMIC_RELEASE);
  t->tried_self = 0;
  t->tried_sp = 0;
  /* Read now, and again at its first sample of a later drain: threads are
   * often named just after they start. */
  t->named = S.drained - NAME_NS;
  t->name[0] = '\0';
  read_name(t);
  err = start_timer(slot);
  if (err != 0) {
    t->state = THREAD_FREE;
    S.free_slots[S.nfree++] = slot;
    return err;
  }
  t->state = THREAD_LIVE;
  *out = slot;
  return 0;
}

static int compare_ints(const void* a, const void* b) {
  int x = *(const int*)a;
  int y = *(const int*)b;

  return (x > y) - (x < y);
}

/* The tids of /proc/self/task, sorted. Returns 0 or an error. getdents64
 * into a buffer on the stack: opendir's 32 KiB buffer, malloc'ed and freed
 * at every census, made each one cost ~10 times as much. */
static int list_tids(int** tids, size_t* n) {
  uv_pprof__buf_t list;
  char dents[4096] __attribute__((aligned(8)));
  int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  long got;

  *tids = NULL;
  *n = 0;
  if (fd < 0)
    return uv_translate_sys_error(errno);
  uv_pprof__buf_init(&list);
  while ((got = syscall(SYS_getdents64, fd, dents, sizeof(dents))) > 0) {
    long at = 0;
    while (at < got) {
      /* struct linux_dirent64: ino, off, reclen, type, name */
      unsigned short reclen;
      const char* name = dents + at + 19;
      char* end;
      long tid;
      int v;
      memcpy(&reclen, dents + at + 16, sizeof(reclen));
      at += reclen;
      tid = strtol(name, &end, 10);
      v = (int)tid;
      if (*end == '\0' && tid > 0 && tid <= INT32_MAX)
        uv_pprof__buf_append(&list, &v, sizeof(v));
    }
  }
  close(fd);
  if (got < 0)
    list.oom = 1; /* an incomplete list would end live threads' timers */
  if (list.oom) {
    uv_pprof__buf_free(&list);
    return UV_ENOMEM;
  }
  *tids = (int*)list.base;
  *n = list.len / sizeof(int);
  if (*n > 1)
    qsort(*tids, *n, sizeof(int), compare_ints);
  return 0;
}

/* Gives every new thread a timer and retires those of threads that ended.
 * The slot of an ended thread is reused once the drain has read every
 * record reserved before the thread was found gone, so no record still to
 * read names it. Listing the threads costs ~10-60 us, so it is done when
 * their number changed (a stat), and at least every LIST_NS for a thread
 * that started as another ended. Returns the first error of a thread that
 * could not be given a timer (that thread is simply not sampled), or 0. */
static int census(void) {
  struct stat st;
  uint32_t* live;
  int* tids;
  size_t ntids;
  size_t i = 0;
  size_t j = 0;
  size_t n = 0;
  uint32_t k;
  int first_err = 0;
  int err;

  for (k = 0; k < S.nused; k++)
    if (S.threads[k].state == THREAD_DEAD && S.tail >= S.threads[k].retire_at) {
      S.threads[k].state = THREAD_FREE;
      S.free_slots[S.nfree++] = k;
    }
  if (stat("/proc/self/task", &st) != 0)
    st.st_nlink = 0;
  if (st.st_nlink != 0 && st.st_nlink == S.nlink &&
      S.drained - S.listed < LIST_NS)
    return 0;
  S.nlink = st.st_nlink; /* before listing: a change meanwhile is seen */
  S.listed = S.drained;
  err = list_tids(&tids, &ntids);
  if (err != 0)
    return err;
  live = malloc((S.nlive + ntids + 1) * sizeof(*live));
  if (live == NULL) {
    free(tids);
    return UV_ENOMEM;
  }
  while (i < S.nlive || j < ntids) {
    thread_t* t = i < S.nlive ? &S.threads[S.live[i]] : NULL;
    if (t != NULL && (j == ntids || t->tid < tids[j])) {
      timer_delete(t->timer); /* the thread has ended */
      t->state = THREAD_DEAD;
      t->retire_at = __atomic_load_n(&S.head, __ATOMIC_ACQUIRE);
      i++;
    } else if (t != NULL && t->tid == tids[j]) {
      live[n++] = S.live[i++];
      j++;
    } else {
      uint32_t slot;
      err = add_thread(tids[j++], &slot);
      if (err == 0)
        live[n++] = slot;
      else if (first_err == 0)
        first_err = err;
    }
  }
  free(tids);
  free(S.live);
  S.live = live;
  S.nlive = n;
  return first_err;
}

/* ---- stack bounds (the worker) ---------------------------------------- */

/* /proc/self/maps, read at most once per drain (at a window's start every
 * thread has bounds to learn). NULL when it cannot be read. */
static const char* maps_text(void) {
  uv_pprof__buf_t b;
  char chunk[4096];
  ssize_t n;
  int fd;

  if (S.maps != NULL)
    return S.maps;
  fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  uv_pprof__buf_init(&b);
  while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      uv_pprof__buf_append(&b, chunk, (size_t)n);
  close(fd);
  uv_pprof__buf_append(&b, "", 1);
  if (n < 0 || b.oom) {
    uv_pprof__buf_free(&b);
    return NULL;
  }
  S.maps = (char*)b.base;
  return S.maps;
}

/* The mapping of /proc/self/maps that contains addr. Returns 0 when found. */
static int find_mapping(uintptr_t addr, uintptr_t* start, uintptr_t* end,
                        int* is_stack) {
  const char* line = maps_text();

  while (line != NULL && *line != '\0') {
    const char* eol = strchr(line, '\n');
    char* p;
    unsigned long long s = strtoull(line, &p, 16);
    unsigned long long e = *p == '-' ? strtoull(p + 1, NULL, 16) : 0;
    if (eol == NULL)
      eol = line + strlen(line);
    if (addr >= s && addr < e) {
      *start = (uintptr_t)s;
      *end = (uintptr_t)e;
      *is_stack = eol - line >= 7 && memcmp(eol - 7, "[stack]", 7) == 0;
      return 0;
    }
    line = *eol == '\n' ? eol + 1 : eol;
  }
  return -1;
}

/* Learns where a thread's stack is from a sample of it, so that the handler
 * can copy it without a system call: for a thread whose thread pointer sits
 * at the top of the stack mapping that holds sp (glibc's threads), the
 * stack is [mapping start, thread pointer); for the main thread, [stack].
 * One attempt per thread pointer, again only for a deeper sp. */
static void learn_bounds(thread_t* t, const record_t* r) {
  uintptr_t start;
  uintptr_t end;
  int is_stack;

  if (r->fast || r->self == 0 ||
      (r->self == t->tried_self && r->sp >= t->tried_sp))
    return;
  t->tried_self = r->self;
  t->tried_sp = r->sp;
  if (find_mapping(r->sp, &start, &end, &is_stack) != 0)
    return;
  if (r->self > r->sp && r->self < end)
    set_bounds(t, r->self, start, r->self);
  else if (r->tid == S.pid && is_stack)
    set_bounds(t, r->self, start, end);
}

/* ---- arming and disarming ----------------------------------------------- */

static void disarm(void);

/* Whether the signal still has our handler: code that took it over since
 * keeps it. */
static int still_ours(void) {
  struct sigaction now;

  return sigaction(S.signo, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
         now.sa_sigaction == on_signal;
}

static void on_fork_prepare(void) {
  uv_mutex_lock(&S.mu);
}

static void on_fork_parent(void) {
  uv_mutex_unlock(&S.mu);
}

/* Drops the lists of live and free thread slots. */
static void forget_threads(void) {
  free(S.free_slots);
  free(S.live);
  S.free_slots = NULL;
  S.live = NULL;
  S.nlive = S.nfree = S.nused = 0;
  S.nlink = 0;
}

/* The child has no timers (fork does not copy them) and no ring or thread
 * table (MADV_DONTFORK); it gets the previous disposition back. */
static void on_fork_child(void) {
  S.ring = NULL;
  S.threads = NULL;
  if (S.sig_users > 0 && still_ours())
    sigaction(S.signo, &S.old, NULL);
  S.signo = 0;
  S.sig_users = 0;
  S.capture = NULL; /* the parent's capturer is not in the child */
  S.capture_token = 0;
  if (S.users > 0) {
    S.users = 0;
    S.armed = 0;
    S.active = 0; /* handlers of other threads were not copied */
    forget_threads();
  }
  uv_pprof__unwind_reset();
  uv_mutex_unlock(&S.mu);
}

static void init_once(void) {
  if (uv_mutex_init(&S.mu) != 0 ||
      pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child) != 0)
    abort();
}

/* The highest real-time signal nobody handles: V8 owns SIGPROF, glibc the
 * lowest real-time ones. */
static int pick_signal(void) {
  int sig;

  for (sig = SIGRTMAX; sig > SIGRTMIN; sig--) {
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL)
      return sig;
  }
  return 0;
}

/* MAP_POPULATE: the handlers must not fault the pages in, and one call
 * costs far less than a fault per page. */
static void* map(size_t size, int populate) {
  void* p =
      mmap(NULL, size, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);

  if (p == MAP_FAILED)
    return NULL;
  madvise(p, size, MADV_DONTFORK);
  return p;
}

static size_t ring_size(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t want = (size_t)(cpus > 0 ? cpus : 1) * (1u << 20);
  size_t size = RING_MIN;

  while (size < want && size < RING_MAX)
    size <<= 1;
  return size;
}

static void unmap_buffers(void) {
  if (S.ring != NULL)
    munmap(S.ring, S.ring_size);
  if (S.threads != NULL)
    munmap(S.threads, MAX_THREADS * sizeof(thread_t));
  S.ring = NULL;
  S.threads = NULL;
}

/* Takes a reference on the signal: the first one picks it and installs the
 * handler. Returns 0 or a negative libuv code. S.mu held. */
static int signal_hold(void) {
  struct sigaction sa;
  int signo;

  if (!ARCH_SUPPORTED)
    return UV_ENOTSUP;
  if (S.sig_users > 0) {
    S.sig_users++;
    return 0;
  }
  signo = pick_signal();
  if (signo == 0)
    return UV_EBUSY;
  S.pid = getpid();
  S.page = (size_t)sysconf(_SC_PAGESIZE);
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  if (sigaction(signo, &sa, &S.old) != 0)
    return uv_translate_sys_error(errno);
  S.signo = signo;
  S.sig_users = 1;
  return 0;
}

/* Drops a reference on the signal; the last one sets SIG_IGN, which
 * discards what is still pending in every thread, then gives the old
 * disposition back. Either way it waits for handlers still running, after
 * which none touches the ring, the thread table or a capture buffer that
 * was unregistered. S.mu held. */
static void signal_drop(void) {
  if (S.sig_users > 0 && --S.sig_users == 0) {
    if (S.signo != 0 && still_ours()) {
      struct sigaction ign;
      memset(&ign, 0, sizeof(ign));
      ign.sa_handler = SIG_IGN;
      sigaction(S.signo, &ign, NULL);
      sigaction(S.signo, &S.old, NULL);
    }
    S.signo = 0;
  }
  while (__atomic_load_n(&S.active, __ATOMIC_SEQ_CST) != 0)
    sched_yield();
}

/* The ring and the thread table of an earlier arming are used again (their
 * mapping, populated, costs more than the rest of arming). */
static int arm(void) {
  size_t size = ring_size();
  size_t i;
  int err;

  if (!ARCH_SUPPORTED)
    return UV_ENOTSUP;
  S.pid = getpid();
  S.page = (size_t)sysconf(_SC_PAGESIZE);
  __atomic_store_n(&S.drained, monotonic_ns(), __ATOMIC_RELAXED);
  if (S.ring != NULL && S.ring_size != size)
    unmap_buffers(); /* CPUs came or went */
  if (S.ring == NULL) {
    __atomic_store_n(&S.ring_size, size, __ATOMIC_RELAXED);
    S.ring = map(S.ring_size, 1);
  }
  if (S.threads == NULL)
    S.threads = map(MAX_THREADS * sizeof(thread_t), 0);
  S.free_slots = malloc(MAX_THREADS * sizeof(*S.free_slots));
  if (S.ring == NULL || S.threads == NULL || S.free_slots == NULL) {
    forget_threads();
    return UV_ENOMEM;
  }
  for (i = 0; i < S.ring_size; i += REC_ALIGN)
    ((record_t*)(S.ring + i))->pos = NO_RECORD;
  S.head = S.tail = 0;
  err = signal_hold();
  if (err != 0) {
    forget_threads();
    return err;
  }
  __atomic_store_n(&S.generation, S.generation + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&S.armed, 1, __ATOMIC_SEQ_CST);
  err = census();
  if (S.nlive == 0) {
    disarm();
    return err != 0 ? err : UV_ESRCH;
  }
  return 0;
}

/* Every timer first, so nothing new is sent; then the signal's reference
 * (signal_drop: the last one removes the handler, and it waits for handlers
 * still running, after which none touches the ring or the thread table,
 * kept for the next arming until uv_pprof__sampler_trim). */
static void disarm(void) {
  size_t i;

  __atomic_store_n(&S.armed, 0, __ATOMIC_SEQ_CST);
  for (i = 0; i < S.nlive; i++)
    timer_delete(S.threads[S.live[i]].timer);
  signal_drop();
  forget_threads();
}

/* ---- the interface ------------------------------------------------------ */

int64_t uv_pprof__sampler_now(void) {
  return monotonic_ns();
}

void uv_pprof__sampler_prepare(void) {
  uv_once(&once, init_once);
}

int uv_pprof__sampler_acquire(void) {
  int err = 0;

  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  if (S.users == 0)
    err = arm();
  if (err == 0)
    S.users++;
  uv_mutex_unlock(&S.mu);
  return err;
}

void uv_pprof__sampler_release(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  if (S.users > 0 && --S.users == 0)
    disarm();
  uv_mutex_unlock(&S.mu);
}

int uv_pprof__sampler_capture_acquire(uv_pprof__capture_t* c) {
  int err;

  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  err = S.capture != NULL ? UV_EBUSY : signal_hold();
  if (err == 0) {
    __atomic_store_n(&c->state, UV_PPROF__CAPTURE_FREE, __ATOMIC_RELAXED);
    __atomic_store_n(&S.capture, c, __ATOMIC_RELEASE);
  }
  uv_mutex_unlock(&S.mu);
  return err;
}

void uv_pprof__sampler_capture_release(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  if (S.capture != NULL) {
    __atomic_store_n(&S.capture_token, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&S.capture, NULL, __ATOMIC_RELEASE);
    signal_drop(); /* waits for a handler still writing into it */
  }
  uv_mutex_unlock(&S.mu);
}

int uv_pprof__sampler_capture_ask(int tid) {
  uv_pprof__capture_t* c;
  siginfo_t si;
  uint32_t token;
  int err = 0;

  uv_mutex_lock(&S.mu);
  c = S.capture;
  if (c == NULL || S.signo == 0) {
    uv_mutex_unlock(&S.mu);
    return UV_EINVAL;
  }
  token = S.capture_token + 1;
  if (token == 0)
    token = 1;
  c->tid = tid;
  c->stack_len = 0;
  __atomic_store_n(&c->state, UV_PPROF__CAPTURE_ASKED, __ATOMIC_RELAXED);
  __atomic_store_n(&S.capture_token, token, __ATOMIC_RELEASE);
  memset(&si, 0, sizeof(si));
  si.si_signo = S.signo;
  si.si_code = SI_QUEUE;
  si.si_pid = S.pid;
  si.si_uid = getuid();
  si.si_value.sival_int = (int)token;
  if (syscall(SYS_rt_tgsigqueueinfo, (long)S.pid, (long)tid, (long)S.signo,
              &si) != 0) {
    err = uv_translate_sys_error(errno);
    __atomic_store_n(&S.capture_token, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&c->state, UV_PPROF__CAPTURE_FREE, __ATOMIC_RELAXED);
  }
  uv_mutex_unlock(&S.mu);
  return err;
}

void uv_pprof__sampler_capture_blocked(int tid, uintptr_t sp, uintptr_t pc) {
  uv_pprof__capture_t* c;

  uv_mutex_lock(&S.mu);
  c = S.capture;
  if (c != NULL) {
    /* A late answer to an earlier request must not write meanwhile. */
    __atomic_store_n(&S.capture_token, 0, __ATOMIC_RELEASE);
    while (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) ==
           UV_PPROF__CAPTURE_WRITING)
      sched_yield();
    memset(c->regs, 0, sizeof(c->regs));
    c->tid = tid;
    c->time = monotonic_ns();
    set_sp_pc(c, sp, pc);
    c->stack_len = copy_from_red_zone(c->stack, sp, &c->stack_addr);
    __atomic_store_n(&c->state, UV_PPROF__CAPTURE_DONE, __ATOMIC_RELEASE);
  }
  uv_mutex_unlock(&S.mu);
}

size_t uv_pprof__sampler_unwind(const uv_pprof__stack_copy_t* c, uintptr_t* pcs,
                                size_t max, int* complete) {
  size_t n;

  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  uv_pprof__unwind_refresh();
  n = uv_pprof__unwind(c, UV_PPROF__UNWIND_RULES, pcs, max, complete);
  uv_mutex_unlock(&S.mu);
  return n;
}

/* Clears the record's bytes that a later record might start at, so that
 * only a committed record ever shows its own position there. */
static void retire(const record_t* r, uint64_t pos) {
  size_t off = (size_t)(pos & (S.ring_size - 1));
  size_t i;

  for (i = 0; i < r->size; i += REC_ALIGN)
    ((record_t*)(S.ring + off + i))->pos = NO_RECORD;
}

static void deliver(const record_t* r, uv_pprof__cpu_sample_cb cb, void* arg) {
  uintptr_t pcs[UV_PPROF__CPU_MAX_FRAMES];
  thread_t* t = &S.threads[r->thread];
  uv_pprof__stack_copy_t copy;
  uv_pprof__cpu_sample_t s;
  int64_t start = monotonic_ns();

  s.thread = "";
  if (t->state != THREAD_FREE && t->tid == r->tid) {
    learn_bounds(t, r);
    if (S.drained - t->named > NAME_NS) {
      t->named = S.drained; /* threads rename themselves: read it again */
      read_name(t);
    }
    s.thread = t->name;
  }
  s.time = r->time;
  s.tid = r->tid;
  s.weight = r->weight;
  copy.tid = r->tid;
  copy.regs = r->regs;
  copy.known = UV_PPROF__REGS_ALL;
  copy.stack_addr = r->stack_addr;
  copy.stack = r->stack;
  copy.stack_len = r->stack_len;
  s.copy = &copy;
  s.pcs = pcs;
  s.npcs = uv_pprof__unwind(&copy, UV_PPROF__UNWIND_RULES, pcs,
                            UV_PPROF__CPU_MAX_FRAMES, NULL);
  __atomic_fetch_add(&S.stats.unwind_ns, (uint64_t)(monotonic_ns() - start),
                     __ATOMIC_RELAXED);
  __atomic_fetch_add(&S.stats.frames, s.npcs, __ATOMIC_RELAXED);
  cb(&s, arg);
}

void uv_pprof__sampler_drain(uv_pprof__cpu_sample_cb cb, void* arg) {
  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  if (S.users == 0) {
    uv_mutex_unlock(&S.mu);
    return;
  }
  __atomic_store_n(&S.drained, monotonic_ns(), __ATOMIC_RELAXED);
  __atomic_store_n(&S.want_drain, 0, __ATOMIC_RELAXED);
  census();
  uv_pprof__unwind_refresh();
  for (;;) {
    uint64_t tail = S.tail;
    record_t* r = (record_t*)(S.ring + (tail & (S.ring_size - 1)));
    if (__atomic_load_n(&r->pos, __ATOMIC_ACQUIRE) != tail)
      break; /* not written yet (or being written) */
    if (r->thread != PAD_RECORD && r->thread < S.nused)
      deliver(r, cb, arg);
    tail += r->size;
    retire(r, S.tail);
    __atomic_store_n(&S.tail, tail, __ATOMIC_RELEASE);
  }
  free(S.maps);
  S.maps = NULL;
  uv_mutex_unlock(&S.mu);
}

int uv_pprof__sampler_due(void) {
  uint64_t head = __atomic_load_n(&S.head, __ATOMIC_RELAXED);
  uint64_t tail = __atomic_load_n(&S.tail, __ATOMIC_RELAXED);
  size_t size = __atomic_load_n(&S.ring_size, __ATOMIC_RELAXED);

  return head - tail >= size / 4 ||
         __atomic_load_n(&S.want_drain, __ATOMIC_RELAXED) ||
         monotonic_ns() - __atomic_load_n(&S.drained, __ATOMIC_RELAXED) >=
             DRAIN_NS;
}

void uv_pprof__sampler_trim(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  if (S.users == 0) {
    uv_pprof__unwind_reset();
    unmap_buffers();
  }
  uv_mutex_unlock(&S.mu);
}

void uv_pprof__sampler_stats(uv_pprof__sampler_stats_t* st) {
  uv_pprof__sampler_stats_t* s = &S.stats;

  uv_once(&once, init_once);
  uv_mutex_lock(&S.mu);
  st->samples = __atomic_load_n(&s->samples, __ATOMIC_RELAXED);
  st->lost = __atomic_load_n(&s->lost, __ATOMIC_RELAXED);
  st->handler_ns = __atomic_load_n(&s->handler_ns, __ATOMIC_RELAXED);
  st->stack_bytes = __atomic_load_n(&s->stack_bytes, __ATOMIC_RELAXED);
  st->unwind_ns = __atomic_load_n(&s->unwind_ns, __ATOMIC_RELAXED);
  st->frames = __atomic_load_n(&s->frames, __ATOMIC_RELAXED);
  st->threads = S.nlive;
  st->signo = S.sig_users > 0 ? S.signo : 0;
  uv_mutex_unlock(&S.mu);
}
