/* bench_mutex: what libuv_pprof_track's pthread_mutex_lock (the mutex
 * profile, src/track/mutex.c) costs, against the same code without it, in
 * one run. Each row is a child process of this binary: without the
 * tracker, with it preloaded and UV_PPROF_MUTEX unset (off: the call is
 * passed on), and with UV_PPROF_MUTEX=1 and =100 (on: a trylock first;
 * contended calls sampled). Per row: an uncontended lock/unlock pair on
 * one thread (ns, the fastest of 7 runs of 2M pairs), and two threads
 * taking one mutex in turn around a tiny critical section (ns per lock,
 * the median of 7 runs of 200k locks each).
 *
 * Usage: bench_mutex */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe.h"

#define PAIRS 2000000
#define LOCKS 200000
#define RUNS 7

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

/* One row: this binary again, as `--child`, with `env` before it. */
static void row(const char* self, const char* name, const char* env,
                double base[2]) {
  char cmd[2048];
  double u;
  double c;
  FILE* f;

  snprintf(cmd, sizeof(cmd), "env %s %s --child", env, self);
  f = popen(cmd, "r");
  if (f == NULL || fscanf(f, "%lf %lf", &u, &c) != 2) {
    fprintf(stderr, "bench_mutex: %s failed\n", cmd);
    exit(1);
  }
  pclose(f);
  if (base[0] == 0) {
    base[0] = u;
    base[1] = c;
  }
  printf("%-40s %9.1f %+8.1f %11.1f %7.2f\n", name, u, u - base[0], c,
         c / base[1]);
}

int main(int argc, char** argv) {
  double base[2] = {0, 0};
  char env[1024];

  if (argc > 1 && strcmp(argv[1], "--child") == 0) {
    printf("%f %f\n", uncontended(), contended());
    return 0;
  }
  printf("%-40s %9s %8s %11s %7s\n", "", "pair ns", "added", "contended",
         "ratio");
  printf("%-40s %9s %8s %11s %7s\n\n", "", "(1 thread)", "", "ns/lock", "");
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
