/* libuv_pprof_track's lock contention sampling, for /debug/pprof/mutex:
 * pthread_mutex_lock (and so uv_mutex_lock, which calls it) interposed.
 * Off (UV_PPROF_MUTEX unset or 0) it only passes the call on. On, a lock
 * is first tried: taken at once, that is all it costs; contended, 1 in
 * `rate` such calls (as Go's SetMutexProfileFraction) records the stack of
 * the waiting caller, taken before it blocks, and how long it waited.
 * Records are folded by stack into a bounded table that libuv_pprof reads
 * through track.h. The shared library defines pthread_mutex_lock itself
 * (preloaded or linked before libc); the static one defines
 * __wrap_pthread_mutex_lock for `ld --wrap`. */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../hash.h"
#include "track.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define MAX_ROWS 1024 /* stacks recorded */

typedef int (*lock_fn)(pthread_mutex_t*);

typedef struct {
  uint64_t hash;
  uint64_t count;
  uint64_t delay_ns;
  uint32_t depth;
  uintptr_t pcs[UV_PPROF_TRACK_MAX_DEPTH];
} row_t;

static unsigned rate; /* atomic; 0: off */
static row_t* rows;   /* open addressing on the stack hash */
static size_t nrows;  /* rows in use, at most MAX_ROWS */
static pthread_mutex_t rows_mu = PTHREAD_MUTEX_INITIALIZER;
static TLS int inside;   /* this thread is recording: locks pass */
static TLS uint64_t rng; /* this thread's sampling draws */

#ifdef UV_PPROF_TRACK_WRAP
int __real_pthread_mutex_lock(pthread_mutex_t* m);
#define WRAPPER __wrap_pthread_mutex_lock
static lock_fn real_lock(void) {
  return __real_pthread_mutex_lock;
}
#else
#define WRAPPER pthread_mutex_lock
/* libc's, the next definition after this one. A call before it is known
 * (another library's constructor) resolves it then. */
static lock_fn real_lock(void) {
  static lock_fn fn;
  lock_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

  if (f == NULL) {
    *(void**)&f = dlsym(RTLD_NEXT, "pthread_mutex_lock");
    __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
  }
  return f;
}
#endif

/* UV_PPROF_MUTEX: digits only; anything else leaves it off (uv_pprof_start
 * says so on stderr). */
static unsigned parse_rate(const char* v) {
  unsigned long n = 0;
  size_t i;

  if (v == NULL || v[0] == '\0')
    return 0;
  for (i = 0; v[i] != '\0'; i++) {
    if (v[i] < '0' || v[i] > '9' || i >= 10)
      return 0;
    n = n * 10 + (unsigned long)(v[i] - '0');
  }
  return n <= 0x7fffffff ? (unsigned)n : 0;
}

/* backtrace() loads libgcc's unwinder on its first use: done here, never
 * inside a lock call. */
static void warm_up(void) {
  void* frames[2];

  if (!inside) {
    inside = 1;
    backtrace(frames, 2);
    inside = 0;
  }
}

__attribute__((constructor)) static void read_env(void) {
  unsigned r = parse_rate(getenv("UV_PPROF_MUTEX"));

  if (r != 0)
    warm_up();
  __atomic_store_n(&rate, r, __ATOMIC_RELAXED);
}

/* One draw in `r` (xorshift64*, seeded per thread from its TLS address). */
static int sampled(unsigned r) {
  uint64_t x = rng;

  if (r == 1)
    return 1;
  if (x == 0)
    x = uv_pprof__hash64((uint64_t)(uintptr_t)&rng) | 1;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng = x;
  return (x * 0x2545f4914f6cdd1dull) % r == 0;
}

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Adds one wait to the row of its stack. The real lock on our own mutex
 * (`inside` is set, so the call passes straight through). */
static void add(const uintptr_t* pcs, size_t depth, uint64_t delay) {
  uint64_t h = depth;
  size_t mask = 2 * MAX_ROWS - 1;
  size_t i;
  size_t j;

  for (i = 0; i < depth; i++)
    h = uv_pprof__hash64(h ^ pcs[i]);
  real_lock()(&rows_mu);
  if (rows == NULL)
    rows = calloc(2 * MAX_ROWS, sizeof(*rows));
  for (j = (size_t)h & mask; rows != NULL; j = (j + 1) & mask) {
    row_t* r = &rows[j];
    if (r->count == 0) {
      if (nrows >= MAX_ROWS)
        break; /* full: this stack is not recorded */
      r->hash = h;
      r->depth = (uint32_t)depth;
      memcpy(r->pcs, pcs, depth * sizeof(*pcs));
      nrows++;
    } else if (r->hash != h || r->depth != depth ||
               memcmp(r->pcs, pcs, depth * sizeof(*pcs)) != 0) {
      continue;
    }
    r->count++;
    r->delay_ns += delay;
    break;
  }
  pthread_mutex_unlock(&rows_mu);
}

/* The contended path of a sampled call: the caller's stack first (nothing
 * of the host's is held yet), then the wait itself, timed. */
static __attribute__((noinline)) int wait_recorded(pthread_mutex_t* m,
                                                   void* ra) {
  void* frames[UV_PPROF_TRACK_MAX_DEPTH + 4];
  uint64_t t0;
  int rc;
  int n;
  int i;

  inside = 1;
  n = backtrace(frames, (int)UV_PPROF_TRACK_MAX_DEPTH + 4);
  for (i = 0; i < n && i < 4 && frames[i] != ra; i++)
    ;
  if (i == n || i == 4) { /* not found: keep the caller alone */
    frames[0] = ra;
    i = 0;
    n = 1;
  }
  if (n - i > (int)UV_PPROF_TRACK_MAX_DEPTH)
    n = i + (int)UV_PPROF_TRACK_MAX_DEPTH;
  inside = 0;
  t0 = now_ns();
  rc = real_lock()(m);
  if (rc == 0) {
    uint64_t delay = now_ns() - t0;
    inside = 1;
    add((const uintptr_t*)(frames + i), (size_t)(n - i), delay);
    inside = 0;
  }
  return rc;
}

EXPORT int WRAPPER(pthread_mutex_t* m);
int WRAPPER(pthread_mutex_t* m) {
  unsigned r = __atomic_load_n(&rate, __ATOMIC_RELAXED);
  int rc;

  if (r == 0 || inside)
    return real_lock()(m);
  rc = pthread_mutex_trylock(m);
  if (rc != EBUSY)
    return rc; /* taken without waiting (or an error lock would give) */
  if (!sampled(r))
    return real_lock()(m);
  return wait_recorded(m, __builtin_return_address(0));
}

/* ---- the API of track.h -------------------------------------------------- */

EXPORT unsigned uv_pprof_track_mutex_rate_v1(int set);
EXPORT size_t uv_pprof_track_mutex_rows_v1(uv_pprof_track_mutex_row_t* out,
                                           size_t max);

unsigned uv_pprof_track_mutex_rate_v1(int set) {
  if (set > 0)
    warm_up();
  if (set >= 0)
    return __atomic_exchange_n(&rate, (unsigned)set, __ATOMIC_RELAXED);
  return __atomic_load_n(&rate, __ATOMIC_RELAXED);
}

size_t uv_pprof_track_mutex_rows_v1(uv_pprof_track_mutex_row_t* out,
                                    size_t max) {
  size_t n = 0;
  size_t j;

  inside = 1;
  real_lock()(&rows_mu);
  for (j = 0; rows != NULL && j < 2 * MAX_ROWS; j++) {
    if (rows[j].count == 0)
      continue;
    if (n < max) {
      out[n].count = rows[j].count;
      out[n].delay_ns = rows[j].delay_ns;
      out[n].depth = rows[j].depth;
      memcpy(out[n].pcs, rows[j].pcs, rows[j].depth * sizeof(uintptr_t));
    }
    n++;
  }
  pthread_mutex_unlock(&rows_mu);
  inside = 0;
  return n;
}
