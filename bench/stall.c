/* bench_stall: what stall detection costs a host, and how soon it notices a
 * stall, against the same host without it, in one run.
 *
 * Idle: loops with nothing to do but wait, uv_pprof on them with detection
 * off (stall_ms = 0) and on: the loop's iterations and the watchdog
 * thread's wake-ups over 3 s, for a loop with no active handle and for one
 * woken by a 1 s timer.
 *
 * Throughput: three loops, each kept polling without blocking by an idle
 * handle whose callback does about 10 microseconds of work (about 100k
 * iterations a second): without uv_pprof, with uv_pprof and detection off,
 * with detection on. They run one at a time, in rotating order, `runs`
 * rounds of 0.5 s each; per run the iterations per wall second and the
 * loop thread's CPU time per iteration; the table shows each one's median
 * against the loop without uv_pprof. Then the same with an empty callback
 * (under a million iterations a second, epoll_wait included), 60 rounds
 * of 50 ms runs: the CPU time detection adds to an iteration, in ns, the
 * median and the fastest run (the least disturbed by other processes),
 * against the 100 ns that are 1 % of an iteration at 100k iterations a
 * second.
 *
 * Noticed after: stalls of 120 ms (threshold 50 ms) on a loop that waits
 * between them, started by a timer (the check hook before the timers
 * wakes the watchdog) and by a uv_async_t sent from another thread (no
 * hook runs before the callback: the timer on the loop thread's CPU clock
 * wakes the watchdog after 2 ms of CPU): how long after each stall began
 * the watchdog noticed it.
 *
 * Usage: bench_stall [runs, default 15] */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "loop.h"
#include "probe.h"

#define MAX_RUNS 64
#define EMPTY_RUNS 60 /* short runs: the fastest is the code's own cost */
#define THRESHOLD_MS 50
#define STALL_MS 120
#define STALLS 15

enum { NONE, OFF, ON, NMODES };
static const char* const mode_names[NMODES] = {"without uv_pprof",
                                               "uv_pprof, stall detection off",
                                               "uv_pprof, stall detection on"};

static uint64_t now_ns(void) {
  return uv_hrtime();
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Starts uv_pprof on `loop` (its thread), detection at `stall_ms`. */
static void start_pprof(uv_loop_t* loop, unsigned stall_ms) {
  uv_pprof_options_t o;

  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  o.stall_ms = stall_ms;
  if (uv_pprof_start_ex(loop, &o) != 0)
    exit(1);
}

/* ---- a loop on a thread of its own, driven by calls --------------------- */

typedef struct {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t call;
  uv_check_t count; /* unref'd: counts iterations */
  uv_idle_t idle;
  uv_timer_t timer;
  uv_mutex_t mu;
  uv_cond_t cond;
  void (*fn)(void*);
  void* arg;
  int done;
  atomic_uint_fast64_t iterations;
  unsigned stall_ms;
  int mode;
} host_t;

static void on_count(uv_check_t* c) {
  host_t* h = c->data;

  atomic_fetch_add(&h->iterations, 1);
}

static void on_call(uv_async_t* a) {
  host_t* h = a->data;

  h->fn(h->arg);
  uv_mutex_lock(&h->mu);
  h->done = 1;
  uv_cond_signal(&h->cond);
  uv_mutex_unlock(&h->mu);
}

/* Runs fn(arg) on the host's loop and waits for it. */
static void call(host_t* h, void (*fn)(void*), void* arg) {
  uv_mutex_lock(&h->mu);
  h->fn = fn;
  h->arg = arg;
  h->done = 0;
  uv_async_send(&h->call);
  while (!h->done)
    uv_cond_wait(&h->cond, &h->mu);
  uv_mutex_unlock(&h->mu);
}

static void run_host(void* arg) {
  host_t* h = arg;

  if (h->mode != NONE)
    start_pprof(&h->loop, h->mode == ON ? h->stall_ms : 0);
  uv_run(&h->loop, UV_RUN_DEFAULT);
}

static void host_start(host_t* h, int mode, unsigned stall_ms) {
  memset(h, 0, sizeof(*h));
  h->mode = mode;
  h->stall_ms = stall_ms;
  if (uv_loop_init(&h->loop) != 0 || uv_mutex_init(&h->mu) != 0 ||
      uv_cond_init(&h->cond) != 0)
    exit(1);
  uv_async_init(&h->loop, &h->call, on_call);
  h->call.data = h;
  uv_check_init(&h->loop, &h->count);
  h->count.data = h;
  uv_check_start(&h->count, on_count);
  uv_unref((uv_handle_t*)&h->count);
  uv_idle_init(&h->loop, &h->idle);
  h->idle.data = h;
  uv_timer_init(&h->loop, &h->timer);
  h->timer.data = h;
  uv_thread_create(&h->thread, run_host, h);
}

static void close_all(uv_handle_t* handle, void* arg) {
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

static void stop_on_loop(void* arg) {
  host_t* h = arg;

  uv_pprof_stop(&h->loop);
  uv_walk(&h->loop, close_all, NULL);
}

static void host_stop(host_t* h) {
  call(h, stop_on_loop, h);
  uv_thread_join(&h->thread);
  if (uv_loop_close(&h->loop) != 0)
    fprintf(stderr, "bench_stall: uv_loop_close failed\n");
}

/* ---- idle ------------------------------------------------------------------
 */

static void on_tick(uv_timer_t* t) {
}

static void start_ticks(void* arg) {
  host_t* h = arg;

  uv_timer_start(&h->timer, on_tick, 1000, 1000);
}

/* Iterations of the host and wake-ups of the watchdog over 3 s. */
static void idle_row(const char* name, host_t* h) {
  uint64_t i0;
  uint64_t w0;

  usleep(500000); /* settled */
  i0 = atomic_load(&h->iterations);
  w0 = uv_pprof__stall_wakeups();
  sleep(3);
  printf("%-44s %10llu %10llu\n", name,
         (unsigned long long)(atomic_load(&h->iterations) - i0),
         (unsigned long long)(uv_pprof__stall_wakeups() - w0));
}

/* ---- throughput -------------------------------------------------------------
 */

typedef struct {
  host_t* h;
  uint64_t iterations;
  uint64_t cpu_ns;
  uint64_t wall_ns;
} run_t;

static run_t* running;
static unsigned run_ms = 500;

/* About 10 us of work per iteration (100k iterations a second): FNV-1a
 * over 6 KiB. */
static void on_work(uv_idle_t* idle) {
  static unsigned char buf[6144];
  static uint32_t sink;
  uint32_t hash = 2166136261u;
  size_t i;

  for (i = 0; i < sizeof(buf); i++)
    hash = (hash ^ buf[i]) * 16777619u;
  sink += hash;
}

/* No work: the iteration's own cost, hooks included. */
static void on_nothing(uv_idle_t* idle) {
}

static uv_idle_cb work = on_work;

static void on_run_end(uv_timer_t* t) {
  host_t* h = t->data;

  uv_idle_stop(&h->idle);
  running->iterations = atomic_load(&h->iterations) - running->iterations;
  running->cpu_ns = thread_cpu_ns() - running->cpu_ns;
  running->wall_ns = now_ns() - running->wall_ns;
}

static void start_run(void* arg) {
  host_t* h = arg;

  running->iterations = atomic_load(&h->iterations);
  running->cpu_ns = thread_cpu_ns();
  running->wall_ns = now_ns();
  uv_update_time(&h->loop);
  uv_idle_start(&h->idle, work);
  uv_timer_start(&h->timer, on_run_end, run_ms, 0);
}

static void one_run(host_t* h, run_t* r) {
  running = r;
  r->h = h;
  call(h, start_run, h);
  usleep((run_ms + 200) * 1000);
}

/* ---- noticed after
 * ----------------------------------------------------------- */

typedef struct {
  host_t* h;
  double noticed_ms[STALLS];
  int n;
} stalls_t;

static stalls_t* measuring;

static __attribute__((noinline)) void stall_for(uint64_t ns) {
  uint64_t end = now_ns() + ns;

  while (now_ns() < end)
    ;
}

/* After its spin the loop reads when the watchdog noticed it. */
static void note_stall(host_t* h) {
  uv_pprof__stall_stats_t st[8];
  size_t n = uv_pprof__stall_loops(st, 8);
  size_t i;

  for (i = 0; i < n && i < 8; i++)
    if (st[i].loop == (uintptr_t)&h->loop && measuring->n < STALLS)
      measuring->noticed_ms[measuring->n++] = (double)st[i].noticed_ns / 1e6;
}

static void on_stall_timer(uv_timer_t* t) {
  stall_for(STALL_MS * 1000000ull);
  note_stall(t->data);
}

static void start_timer_stalls(void* arg) {
  host_t* h = arg;

  uv_timer_start(&h->timer, on_stall_timer, 400, 400);
}

static void stop_timer(void* arg) {
  uv_timer_stop(&((host_t*)arg)->timer);
}

static uv_async_t stall_async;

static void on_stall_async(uv_async_t* a) {
  stall_for(STALL_MS * 1000000ull);
  note_stall(a->data);
}

static void init_async(void* arg) {
  host_t* h = arg;

  uv_async_init(&h->loop, &stall_async, on_stall_async);
  stall_async.data = h;
}

static void noticed_row(const char* name, stalls_t* s) {
  double v[STALLS];
  double max = 0;
  int i;

  memcpy(v, s->noticed_ms, sizeof(v));
  for (i = 0; i < s->n; i++)
    if (v[i] > max)
      max = v[i];
  printf("%-44s %6d %10.1f %10.1f\n", name, s->n,
         s->n > 0 ? probe_median(v, s->n) : 0.0, max);
}

int main(int argc, char** argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 15;
  host_t hosts[NMODES];
  run_t r[NMODES][MAX_RUNS];
  double rate[NMODES][MAX_RUNS];
  double cpu[NMODES][MAX_RUNS];
  double med_rate[NMODES];
  double med_cpu[NMODES];
  double min_cpu[NMODES];
  stalls_t s;
  host_t idle_on;
  host_t idle_off;
  int k;
  int m;

  if (runs < 1 || runs > MAX_RUNS)
    runs = 15;

  /* Idle. The first loop started holds the server. */
  host_start(&idle_off, OFF, 0);
  usleep(200000);
  host_start(&idle_on, ON, THRESHOLD_MS);
  printf(
      "idle loops, 3 s each                         iterations "
      "  watchdog\n\n");
  idle_row("no active handle, detection off", &idle_off);
  idle_row("no active handle, detection on", &idle_on);
  call(&idle_off, start_ticks, &idle_off);
  idle_row("a 1 s timer, detection off", &idle_off);
  call(&idle_off, stop_timer, &idle_off);
  call(&idle_on, start_ticks, &idle_on);
  idle_row("a 1 s timer, detection on", &idle_on);
  call(&idle_on, stop_timer, &idle_on);

  /* Throughput. */
  for (m = 0; m < NMODES; m++)
    host_start(&hosts[m], m, THRESHOLD_MS);
  usleep(300000);
  for (k = 0; k < runs; k++)
    for (m = 0; m < NMODES; m++) {
      int mode = (m + k) % NMODES;
      one_run(&hosts[mode], &r[mode][k]);
      rate[mode][k] =
          (double)r[mode][k].iterations * 1e9 / (double)r[mode][k].wall_ns;
      cpu[mode][k] = (double)r[mode][k].cpu_ns / (double)r[mode][k].iterations;
    }
  for (m = 0; m < NMODES; m++) {
    min_cpu[m] = cpu[m][0];
    for (k = 1; k < runs; k++)
      if (cpu[m][k] < min_cpu[m])
        min_cpu[m] = cpu[m][k];
    med_rate[m] = probe_median(rate[m], runs);
    med_cpu[m] = probe_median(cpu[m], runs);
  }
  printf(
      "\nloop kept busy (an idle handle, 6 KiB hashed per iteration), "
      "%d runs of 0.5 s\n%-32s %12s %7s %10s %7s %10s %7s\n\n",
      runs, "", "iter/s (med)", "ratio", "CPU ns/it", "ratio", "(fastest)",
      "ratio");
  for (m = 0; m < NMODES; m++)
    printf("%-32s %12.0f %7.3f %10.0f %7.3f %10.0f %7.3f\n", mode_names[m],
           med_rate[m], med_rate[m] / med_rate[NONE], med_cpu[m],
           med_cpu[m] / med_cpu[NONE], min_cpu[m], min_cpu[m] / min_cpu[NONE]);
  work = on_nothing;
  run_ms = 50;
  for (k = 0; k < EMPTY_RUNS; k++)
    for (m = 0; m < NMODES; m++) {
      int mode = (m + k) % NMODES;
      one_run(&hosts[mode], &r[mode][k]);
      cpu[mode][k] = (double)r[mode][k].cpu_ns / (double)r[mode][k].iterations;
    }
  for (m = 0; m < NMODES; m++) {
    min_cpu[m] = cpu[m][0];
    for (k = 1; k < EMPTY_RUNS; k++)
      if (cpu[m][k] < min_cpu[m])
        min_cpu[m] = cpu[m][k];
    med_cpu[m] = probe_median(cpu[m], EMPTY_RUNS);
  }
  printf(
      "\nempty iterations (an idle handle, no work), %d runs of 0.05 s\n"
      "%-32s %10s %10s %10s %10s\n\n",
      EMPTY_RUNS, "", "CPU ns/it", "added", "(fastest)", "added");
  for (m = 0; m < NMODES; m++)
    printf("%-32s %10.1f %10.1f %10.1f %10.1f\n", mode_names[m], med_cpu[m],
           med_cpu[m] - med_cpu[NONE], min_cpu[m], min_cpu[m] - min_cpu[NONE]);
  for (m = 0; m < NMODES; m++)
    host_stop(&hosts[m]);

  /* Noticed after. */
  printf(
      "\nstalls of %d ms, threshold %d ms        stalls  median ms     "
      "max ms\n(noticed this long after they began)\n\n",
      STALL_MS, THRESHOLD_MS);
  memset(&s, 0, sizeof(s));
  measuring = &s;
  call(&idle_on, start_timer_stalls, &idle_on);
  while (s.n < STALLS)
    usleep(100000);
  call(&idle_on, stop_timer, &idle_on);
  noticed_row("in a timer callback (check hook)", &s);
  memset(&s, 0, sizeof(s));
  call(&idle_on, init_async, &idle_on);
  while (s.n < STALLS) {
    uv_async_send(&stall_async);
    usleep(400000);
  }
  noticed_row("in an async callback (CPU timer)", &s);

  host_stop(&idle_on);
  host_stop(&idle_off);
  return 0;
}
