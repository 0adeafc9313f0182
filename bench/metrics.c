/* bench_metrics: what /metrics and the timeline cost the host's loop, and
 * what measuring loop utilisation costs it, each against a baseline of the
 * same run.
 *
 * Stall rows: a host loop with N live handles (timers, as bench_goroutine
 * makes them) and uv_pprof; a uv_prepare_t reads the loop thread's CPU
 * clock before each poll, so each loop iteration's CPU time (a blocked poll
 * takes none) is known, without the time the VM gave the CPU to someone
 * else. Per row: the longest iteration while it runs (median of
 * the runs), and the end-to-end time of the request. Baselines: the same
 * host quiet, and the goroutine endpoint, which walks the same handles.
 * The timeline row is a second host (uv_pprof stopped and started again
 * with timeline_seconds = 1): the longest iteration over each 1 s window
 * holding one sample. The last row is what a plain uv_walk that only
 * counts costs (a loop of its own, not running), the cheaper count the
 * timeline does not use.
 *
 * Idle rows: loop iterations over 3 s of an idle host (a loop with no
 * active handle of its own but the prepare) with uv_pprof off, on with the
 * timeline off, and on with the timeline at 1 s: off must add none.
 *
 * Idle-time rows: round trips of a uv_async_t between a thread and a loop
 * (each one a blocking poll), the loop without and with
 * UV_METRICS_IDLE_TIME, which uv_pprof_start configures.
 *
 * Usage: bench_metrics [runs, default 7] [handles, default 100000] */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "probe.h"
#include "uv_pprof.h"

#define MAX_RUNS 31

typedef struct {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_timer_t* timers;
  size_t ntimers;
  uv_prepare_t prepare;
  uv_async_t stop;
  uint64_t last; /* thread CPU ns at the last prepare */
  atomic_uint_fast64_t max_iter_ns;
  atomic_uint_fast64_t iterations;
  int port;
} host_t;

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static void on_prepare(uv_prepare_t* p) {
  host_t* h = p->data;
  uint64_t now = thread_cpu_ns();
  uint64_t busy = now - h->last;

  h->last = now;
  if (busy > atomic_load(&h->max_iter_ns))
    atomic_store(&h->max_iter_ns, busy);
  atomic_fetch_add(&h->iterations, 1);
}

static void on_tick(uv_timer_t* t) {
  (void)t;
}

static void on_close_walk(uv_handle_t* handle, void* arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

static void on_stop(uv_async_t* a) {
  host_t* h = a->data;

  uv_pprof_stop(&h->loop);
  uv_walk(&h->loop, on_close_walk, NULL);
}

static void run_host(void* arg) {
  host_t* h = arg;

  uv_run(&h->loop, UV_RUN_DEFAULT);
}

/* A host with n timers; uv_pprof on it when `pprof`, with the timeline at
 * `timeline` seconds. */
static void host_start(host_t* h, size_t n, int pprof, unsigned timeline) {
  uv_pprof_options_t o;
  struct sockaddr_storage ss;
  size_t i;

  memset(h, 0, sizeof(*h));
  h->timers = calloc(n + 1, sizeof(*h->timers));
  h->ntimers = n;
  if (h->timers == NULL || uv_loop_init(&h->loop) != 0)
    exit(1);
  for (i = 0; i < n; i++) {
    uv_timer_init(&h->loop, &h->timers[i]);
    uv_timer_start(&h->timers[i], on_tick, 3600000, 0);
  }
  uv_prepare_init(&h->loop, &h->prepare);
  h->prepare.data = h;
  uv_prepare_start(&h->prepare, on_prepare);
  uv_async_init(&h->loop, &h->stop, on_stop);
  h->stop.data = h;
  if (pprof) {
    uv_pprof_options_init(&o);
    o.port = 0;
    o.quiet = 1;
    o.timeline_seconds = timeline;
    if (uv_pprof_start_ex(&h->loop, &o) != 0 ||
        uv_pprof_address(&h->loop, &ss) != 0)
      exit(1);
    h->port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  }
  uv_thread_create(&h->thread, run_host, h);
}

static void host_stop(host_t* h) {
  uv_async_send(&h->stop);
  uv_thread_join(&h->thread);
  if (uv_loop_close(&h->loop) != 0)
    fprintf(stderr, "bench_metrics: uv_loop_close failed\n");
  free(h->timers);
}

/* One GET on a fresh connection; the time from connect to the answer's
 * last byte in ms. */
static double get(int port, const char* path) {
  uint64_t t0 = uv_hrtime();
  int fd = probe_connect(port);

  probe_get(fd, path, 200);
  close(fd);
  return (double)(uv_hrtime() - t0) / 1e6;
}

/* The longest iteration (ms) over `ms` of nothing asked. */
static double quiet(host_t* h, int ms) {
  atomic_store(&h->max_iter_ns, 0);
  usleep((useconds_t)ms * 1000);
  return (double)atomic_load(&h->max_iter_ns) / 1e6;
}

static void request_row(host_t* h, const char* path, int runs, double* time_ms,
                        double* iter_ms) {
  double t[MAX_RUNS];
  double it[MAX_RUNS];
  int i;

  for (i = 0; i < runs; i++) {
    atomic_store(&h->max_iter_ns, 0);
    t[i] = get(h->port, path);
    usleep(20000); /* the worker's answer comes back through the loop */
    it[i] = (double)atomic_load(&h->max_iter_ns) / 1e6;
  }
  *time_ms = probe_median(t, runs);
  *iter_ms = probe_median(it, runs);
}

/* ---- the alternative: a plain uv_walk count ------------------------------ */

static void count_one(uv_handle_t* handle, void* arg) {
  (void)handle;
  (*(size_t*)arg)++;
}

/* CPU ms of one uv_walk that only counts n timers (median of runs). */
static double plain_walk(size_t n, int runs) {
  uv_timer_t* timers = calloc(n, sizeof(*timers));
  double ms[MAX_RUNS];
  uv_loop_t loop;
  size_t i;
  int r;

  if (timers == NULL || uv_loop_init(&loop) != 0)
    exit(1);
  for (i = 0; i < n; i++)
    uv_timer_init(&loop, &timers[i]);
  for (r = 0; r < runs; r++) {
    size_t count = 0;
    uint64_t t0 = thread_cpu_ns();
    uv_walk(&loop, count_one, &count);
    ms[r] = (double)(thread_cpu_ns() - t0) / 1e6;
    if (count != n)
      exit(1);
  }
  for (i = 0; i < n; i++)
    uv_close((uv_handle_t*)&timers[i], NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(timers);
  return probe_median(ms, runs);
}

/* ---- idle-time measurement: async round trips --------------------------- */

typedef struct {
  uv_loop_t loop;
  uv_async_t async;
  uv_sem_t back;
  int left;
} pong_t;

static void on_ping(uv_async_t* a) {
  pong_t* p = a->data;

  if (--p->left <= 0)
    uv_close((uv_handle_t*)a, NULL);
  uv_sem_post(&p->back);
}

static void run_pong(void* arg) {
  pong_t* p = arg;

  uv_run(&p->loop, UV_RUN_DEFAULT);
}

/* ns per round trip over n round trips. */
static double round_trip(int n, int measure_idle) {
  pong_t p;
  uv_thread_t t;
  uint64_t t0;
  int i;

  memset(&p, 0, sizeof(p));
  p.left = n;
  if (uv_loop_init(&p.loop) != 0 || uv_sem_init(&p.back, 0) != 0)
    exit(1);
  if (measure_idle)
    uv_loop_configure(&p.loop, UV_METRICS_IDLE_TIME);
  uv_async_init(&p.loop, &p.async, on_ping);
  p.async.data = &p;
  uv_thread_create(&t, run_pong, &p);
  t0 = uv_hrtime();
  for (i = 0; i < n; i++) {
    uv_async_send(&p.async);
    uv_sem_wait(&p.back);
  }
  t0 = uv_hrtime() - t0;
  uv_thread_join(&t);
  uv_loop_close(&p.loop);
  uv_sem_destroy(&p.back);
  return (double)t0 / n;
}

int main(int argc, char** argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 7;
  size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
  double q;
  double t;
  double it;
  double gt;
  double git;
  double samples[MAX_RUNS];
  double rt[2][MAX_RUNS];
  uint64_t iters[3];
  host_t h;
  int i;
  int k;

  if (runs < 1 || runs > MAX_RUNS || n == 0) {
    fprintf(stderr, "usage: %s [runs 1..%d] [handles]\n", argv[0], MAX_RUNS);
    return 2;
  }

  host_start(&h, n, 1, 0);
  get(h.port, "/metrics"); /* untimed: first worker start, first walk */
  get(h.port, "/debug/pprof/goroutine?debug=1");
  q = quiet(&h, 1000);
  request_row(&h, "/debug/pprof/goroutine?debug=1", runs, &gt, &git);
  request_row(&h, "/metrics", runs, &t, &it);
  host_stop(&h);

  host_start(&h, n, 1, 1);
  usleep(1500000); /* the first sample, taken at start */
  for (i = 0; i < runs; i++)
    samples[i] = quiet(&h, 1000);
  host_stop(&h);

  printf(
      "%zu live handles, median of %d runs; longest loop iteration in the "
      "loop thread's CPU time\n\n",
      n, runs);
  printf("%-34s %9s %12s %10s\n", "", "time ms", "longest ms", "vs walk");
  printf("%-34s %9s %12.3f %10s\n", "quiet host (1 s)", "-", q, "-");
  printf("%-34s %9.1f %12.3f %10.2f\n", "GET goroutine?debug=1 (baseline)", gt,
         git, 1.0);
  printf("%-34s %9.1f %12.3f %10.2f\n", "GET /metrics", t, it, it / git);
  printf("%-34s %9s %12.3f %10.2f\n", "timeline sample (1 s window)", "-",
         probe_median(samples, runs), probe_median(samples, runs) / git);
  q = plain_walk(n, runs);
  printf("%-34s %9s %12.3f %10.2f\n", "plain uv_walk count (not used)", "-", q,
         q / git);

  /* Idle: iterations over 3 s with no handle of the host's own active. */
  for (k = 0; k < 3; k++) {
    host_start(&h, 0, k > 0, k == 2 ? 1 : 0);
    usleep(200000);
    atomic_store(&h.iterations, 0);
    usleep(3000000);
    iters[k] = atomic_load(&h.iterations);
    host_stop(&h);
  }
  printf("\nloop iterations of an idle host over 3 s\n\n");
  printf("%-34s %9" PRIu64 "\n", "no uv_pprof", (uint64_t)iters[0]);
  printf("%-34s %9" PRIu64 "\n", "uv_pprof on, timeline off",
         (uint64_t)iters[1]);
  printf("%-34s %9" PRIu64 "\n", "uv_pprof on, timeline 1 s",
         (uint64_t)iters[2]);

  for (i = 0; i < runs; i++) {
    rt[0][i] = round_trip(20000, 0);
    rt[1][i] = round_trip(20000, 1);
  }
  q = probe_median(rt[0], runs);
  t = probe_median(rt[1], runs);
  printf(
      "\nuv_async_t round trips thread -> loop -> thread, ns each (20000, "
      "median of %d)\n\n",
      runs);
  printf("%-34s %9.0f %10s\n", "loop as configured by the host", q, "1.00");
  printf("%-34s %9.0f %10.2f\n", "with UV_METRICS_IDLE_TIME", t, t / q);
  return 0;
}
