/* bench_mutex: what libuv_pprof_track's pthread_mutex_lock (the mutex
 * profile, src/track/mutex.c) costs, against the same code without it, in
 * one run. Each row is a child process of this binary: without the
 * tracker, with it preloaded and UV_PPROF_MUTEX unset (off: the call is
 * passed on), and with UV_PPROF_MUTEX=1 and =100 (on: a trylock first;
 * contended calls sampled). Per row: an uncontended lock/unlock pair on
 * one thread (ns, the fastest of 7 runs of 2M pairs); two threads taking
 * one mutex in turn around a tiny critical section (ns per lock, the
 * median of 7 runs of 200k locks each: mostly uncontended, glibc lets a
 * thread take its mutex again); and a waiter that locks while another
 * thread holds the mutex (for a 50 us sleep, then hands over): the
 * waiter's CPU time in pthread_mutex_lock (futex wait and wake, and the
 * tracker's work: stack, clock, row), the median of 7 runs of 2000 locks,
 * and at rate 1 how many of those the tracker counted contended per run.
 *
 * Usage: bench_mutex */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe.h"
#include "track.h"

#define PAIRS 2000000
#define LOCKS 200000
#define RUNS 7
#define HOLDS 2000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long shared;

static double now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double uncontended(void) {
  double best = 1e30;
  int r;
  int i;

  for (r = 0; r < RUNS; r++) {
    double t0 = now_ns();
    double ns;
    for (i = 0; i < PAIRS; i++) {
      pthread_mutex_lock(&mu);
      pthread_mutex_unlock(&mu);
    }
    ns = (now_ns() - t0) / PAIRS;
    if (ns < best)
      best = ns;
  }
  return best;
}

static void* take_turns(void* arg) {
  int i;

  for (i = 0; i < LOCKS; i++) {
    pthread_mutex_lock(&mu);
    shared++;
    pthread_mutex_unlock(&mu);
  }
  return arg;
}

static double contended(void) {
  double v[RUNS];
  int r;

  for (r = 0; r < RUNS; r++) {
    pthread_t t[2];
    double t0 = now_ns();
    pthread_create(&t[0], NULL, take_turns, NULL);
    pthread_create(&t[1], NULL, take_turns, NULL);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    v[r] = (now_ns() - t0) / (2.0 * LOCKS);
  }
  return probe_median(v, RUNS);
}

static double thread_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void nap(long ns) {
  struct timespec ts = {0, ns};

  nanosleep(&ts, NULL);
}

static volatile unsigned held;  /* the holder's turn that holds the mutex */
static volatile unsigned taken; /* the waiter's turn that took it */
static double waiter_cpu;

/* Takes the mutex, says so, keeps it for a 50 us sleep, then waits for the
 * waiter to have taken it in turn. */
static void* hold(void* arg) {
  unsigned i;

  for (i = 1; i <= HOLDS; i++) {
    pthread_mutex_lock(&mu);
    __atomic_store_n(&held, i, __ATOMIC_RELEASE);
    nap(50000);
    pthread_mutex_unlock(&mu);
    while (__atomic_load_n(&taken, __ATOMIC_ACQUIRE) != i)
      sched_yield();
  }
  return arg;
}

/* Locks while the holder holds it: the waiter's CPU time in
 * pthread_mutex_lock (the futex wait and wake, and the tracker's work). */
static void* wait_for(void* arg) {
  double cpu = 0;
  unsigned i;

  for (i = 1; i <= HOLDS; i++) {
    double t0;
    while (__atomic_load_n(&held, __ATOMIC_ACQUIRE) != i)
      sched_yield();
    t0 = thread_cpu_ns();
    pthread_mutex_lock(&mu);
    cpu += thread_cpu_ns() - t0;
    shared++;
    pthread_mutex_unlock(&mu);
    __atomic_store_n(&taken, i, __ATOMIC_RELEASE);
  }
  waiter_cpu = cpu;
  return arg;
}

/* The waiter's CPU ns per lock, median of RUNS. */
static double waiting(void) {
  double v[RUNS];
  int r;

  for (r = 0; r < RUNS; r++) {
    pthread_t t[2];
    held = taken = 0;
    pthread_create(&t[0], NULL, hold, NULL);
    pthread_create(&t[1], NULL, wait_for, NULL);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    v[r] = waiter_cpu / HOLDS;
  }
  return probe_median(v, RUNS);
}

/* Contended calls the tracker counted (rate 1: every one), or -1. */
static long sampled(void) {
  uv_pprof_track_mutex_rows_fn rows = (uv_pprof_track_mutex_rows_fn)dlsym(
      RTLD_DEFAULT, UV_PPROF_TRACK_MUTEX_ROWS_SYM);
  uv_pprof_track_mutex_row_t out[64];
  size_t n;
  size_t i;
  long count = 0;

  if (rows == NULL)
    return -1;
  n = rows(out, 64);
  for (i = 0; i < n && i < 64; i++)
    count += (long)out[i].count;
  return count;
}

/* One row: this binary again, as `--child`, with `env` before it. */
static void row(const char* self, const char* name, const char* env,
                double base[3]) {
  char cmd[2048];
  double u;
  double c;
  double w;
  long k;
  FILE* f;

  snprintf(cmd, sizeof(cmd), "env %s %s --child", env, self);
  f = popen(cmd, "r");
  if (f == NULL || fscanf(f, "%lf %lf %lf %ld", &u, &c, &w, &k) != 4) {
    fprintf(stderr, "bench_mutex: %s failed\n", cmd);
    exit(1);
  }
  pclose(f);
  if (base[0] == 0) {
    base[0] = u;
    base[1] = c;
    base[2] = w;
  }
  printf("%-40s %9.1f %+8.1f %11.1f %7.2f %10.0f %+8.0f", name, u, u - base[0],
         c, c / base[1], w, w - base[2]);
  if (k >= 0 && strstr(env, "UV_PPROF_MUTEX=1 ") != NULL)
    printf(" %9ld", k);
  printf("\n");
}

int main(int argc, char** argv) {
  double base[3] = {0, 0, 0};
  char env[1024];

  if (argc > 1 && strcmp(argv[1], "--child") == 0) {
    double u = uncontended();
    double c = contended();
    long before = sampled();
    double w = waiting();
    long after = sampled();
    printf("%f %f %f %ld\n", u, c, w,
           before >= 0 ? (after - before) / RUNS : -1L);
    return 0;
  }
  printf("%-40s %9s %8s %11s %7s %10s %8s %9s\n", "", "pair ns", "added",
         "in turns", "ratio", "waiter", "added", "contended");
  printf("%-40s %9s %8s %11s %7s %10s %8s %9s\n\n", "", "(1 thread)", "",
         "ns/lock", "", "CPU ns/lock", "", "per run");
  row(argv[0], "without the tracker", "-u LD_PRELOAD -u UV_PPROF_MUTEX", base);
  snprintf(env, sizeof(env), "-u UV_PPROF_MUTEX LD_PRELOAD=%s",
           UV_PPROF_TRACK_LIBRARY);
  row(argv[0], "tracker, UV_PPROF_MUTEX unset (off)", env, base);
  snprintf(env, sizeof(env), "UV_PPROF_MUTEX=100 LD_PRELOAD=%s",
           UV_PPROF_TRACK_LIBRARY);
  row(argv[0], "tracker, UV_PPROF_MUTEX=100", env, base);
  snprintf(env, sizeof(env), "UV_PPROF_MUTEX=1 LD_PRELOAD=%s",
           UV_PPROF_TRACK_LIBRARY);
  row(argv[0], "tracker, UV_PPROF_MUTEX=1 (every one)", env, base);
  return 0;
}
