/* uv_pprof_uihost: the host of the built-in UI's browser tests and bench
 * (test/ui/, bench/ui.js). It serves uv_pprof on 127.0.0.1, port 0, prints
 * "port=N" and runs until stdin closes. What it does meanwhile is chosen by
 * its arguments, so that each profile's answer is known:
 *   cpu          ui_burn_loop on the loop thread and ui_burn_thread on a
 *                thread named "ui-burner" burn CPU 3:1
 *   timers N     N timers calling ui_timer_cb (100k handles)
 *   stacks N     N allocations of 64 bytes, each from its own call stack
 *                (with jemalloc and lg_prof_sample:0: N heap stacks)
 *   churn        timers calling ui_old_timer_cb close one by one while
 *                timers calling ui_new_timer_cb open (a goroutine diff)
 *   evil         timers whose callback's symbol is HTML with a script */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <uv.h>

#include "uv_pprof.h"

#define CHURN_TIMERS 200

static uv_loop_t* loop;
static uv_pipe_t in;
static atomic_int stopping;
static int burning;
static pthread_t burner;
static uv_idle_t burn_idle;
static uv_timer_t* timers;
static size_t ntimers;
static uv_timer_t churn_tick;
static size_t churned;
static size_t churn_first; /* timers[churn_first..] are the old ones */
static void** blocks;
static size_t nblocks;

/* ---- cpu: 3:1 of CPU time, loop thread : second thread ------------------ */

static volatile double sink_loop;
static volatile int sink_a;
static volatile int sink_b;
static volatile double sink_thread;
/* Read at run time, so that GCC makes no constant-propagated clone. */
static volatile int chunk = 200000;
static atomic_llong loop_cpu_ns;
static int64_t loop_start_ns;

static int64_t thread_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) static void ui_burn_loop(int n) {
  double x = sink_loop;
  int i;

  for (i = 0; i < n; i++)
    x = x * 1.0000001 + 0.5;
  sink_loop = x;
}

__attribute__((noinline)) static void ui_burn_thread(int n) {
  double x = sink_thread;
  int i;

  for (i = 0; i < n; i++)
    x = x * 0.9999999 + 0.25;
  sink_thread = x;
}

static void on_burn(uv_idle_t* idle) {
  ui_burn_loop(chunk);
  atomic_store(&loop_cpu_ns, thread_cpu_ns() - loop_start_ns);
}

/* Burns only while its CPU time is below a third of the loop thread's. */
static void* burn_thread(void* arg) {
  int64_t start = thread_cpu_ns();
  struct timespec ms = {0, 1000000};

  pthread_setname_np(pthread_self(), "ui-burner");
  while (!atomic_load(&stopping)) {
    if ((thread_cpu_ns() - start) * 3 < atomic_load(&loop_cpu_ns))
      ui_burn_thread(chunk);
    else
      nanosleep(&ms, NULL);
  }
  return NULL;
}

/* ---- timers ------------------------------------------------------------ */

__attribute__((noinline)) static void ui_timer_cb(uv_timer_t* t) {
}
__attribute__((noinline)) static void ui_old_timer_cb(uv_timer_t* t) {
}
__attribute__((noinline)) static void ui_new_timer_cb(uv_timer_t* t) {
}
/* A perf-map-like name with markup in it: the UI must show it as text. */
static void ui_evil_cb(uv_timer_t* t) __asm__(
    "\"LazyCompile:*<img src=x onerror=window.__pwned=1>"
    "<script>window.__pwned=2</script> /srv/app.js:1\"");
__attribute__((noinline)) static void ui_evil_cb(uv_timer_t* t) {
}

static void start_timers(size_t n, uv_timer_cb cb) {
  size_t i;

  for (i = 0; i < n; i++, ntimers++) {
    uv_timer_init(loop, &timers[ntimers]);
    uv_timer_start(&timers[ntimers], cb, 3600 * 1000, 0);
  }
}

/* Every 100 ms one old timer closes and one new timer starts. */
static void on_churn(uv_timer_t* t) {
  if (churned >= CHURN_TIMERS)
    return;
  uv_close((uv_handle_t*)&timers[churn_first + churned], NULL);
  start_timers(1, ui_new_timer_cb);
  churned++;
}

/* ---- stacks: n allocations, each from its own call stack ---------------- */

__attribute__((noinline)) static void ui_alloc_leaf(size_t i) {
  blocks[i] = malloc(64);
  __asm__ volatile("" ::: "memory"); /* no tail call: every frame stays */
}

__attribute__((noinline)) static void ui_stack_b(int bit, size_t i);

/* The bits of i choose, level by level, which of two functions (and so
 * which return addresses) the stack passes through. */
__attribute__((noinline)) static void ui_stack_a(int bit, size_t i) {
  sink_a++; /* unlike ui_stack_b: GCC would fold identical functions */
  if (bit < 0)
    ui_alloc_leaf(i);
  else if (i >> bit & 1)
    ui_stack_b(bit - 1, i);
  else
    ui_stack_a(bit - 1, i);
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void ui_stack_b(int bit, size_t i) {
  sink_b += 2;
  if (bit < 0)
    ui_alloc_leaf(i);
  else if (i >> bit & 1)
    ui_stack_b(bit - 1, i);
  else
    ui_stack_a(bit - 1, i);
  __asm__ volatile("" ::: "memory");
}

static void make_stacks(size_t n) {
  int bits = 0;
  size_t i;

  while (((size_t)1 << bits) < n)
    bits++;
  blocks = calloc(n, sizeof(*blocks));
  for (i = 0; i < n; i++)
    ui_stack_a(bits - 1, i);
  nblocks = n;
}

/* ---- run ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  static char storage[256];
  *buf = uv_buf_init(storage, sizeof(storage));
}

static void close_cb(uv_handle_t* h, void* arg) {
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void on_stdin(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  size_t i;

  if (nread >= 0)
    return;
  atomic_store(&stopping, 1);
  if (burning)
    pthread_join(burner, NULL);
  uv_pprof_stop(loop);
  uv_walk(loop, close_cb, NULL);
  for (i = 0; i < nblocks; i++)
    free(blocks[i]);
}

static int usage(void) {
  fprintf(stderr,
          "usage: uv_pprof_uihost [cpu] [timers N] [stacks N] [churn] "
          "[evil]\n");
  return 2;
}

int main(int argc, char** argv) {
  uv_pprof_options_t options;
  struct sockaddr_storage ss;
  size_t want_timers = 0;
  size_t stacks = 0;
  int churn = 0;
  int evil = 0;
  int rc;
  int a;

  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "cpu") == 0)
      burning = 1;
    else if (strcmp(argv[a], "churn") == 0)
      churn = 1;
    else if (strcmp(argv[a], "evil") == 0)
      evil = 1;
    else if (strcmp(argv[a], "timers") == 0 && a + 1 < argc)
      want_timers = strtoul(argv[++a], NULL, 10);
    else if (strcmp(argv[a], "stacks") == 0 && a + 1 < argc)
      stacks = strtoul(argv[++a], NULL, 10);
    else
      return usage();
  }
  loop = uv_default_loop();
  timers = calloc(want_timers + 2 * CHURN_TIMERS + 8, sizeof(*timers));
  if (timers == NULL)
    return 1;
  uv_pprof_options_init(&options);
  options.port = 0;
  options.quiet = 1;
  rc = uv_pprof_start_ex(loop, &options);
  if (rc != 0 || uv_pprof_address(loop, &ss) != 0) {
    fprintf(stderr, "uv_pprof_start_ex: %s\n", uv_strerror(rc));
    return 1;
  }
  start_timers(want_timers, ui_timer_cb);
  if (churn) {
    churn_first = ntimers;
    start_timers(CHURN_TIMERS, ui_old_timer_cb);
    uv_timer_init(loop, &churn_tick);
    uv_timer_start(&churn_tick, on_churn, 100, 100);
  }
  if (evil)
    start_timers(3, ui_evil_cb);
  if (stacks > 0)
    make_stacks(stacks);
  if (burning) {
    loop_start_ns = thread_cpu_ns();
    uv_idle_init(loop, &burn_idle);
    uv_idle_start(&burn_idle, on_burn);
    pthread_create(&burner, NULL, burn_thread, NULL);
  }
  uv_pipe_init(loop, &in, 0);
  if (uv_pipe_open(&in, 0) != 0 ||
      uv_read_start((uv_stream_t*)&in, on_alloc, on_stdin) != 0) {
    fprintf(stderr, "stdin must be a pipe\n");
    return 1;
  }
  printf("port=%d\n", ntohs(((struct sockaddr_in*)&ss)->sin_port));
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  free(blocks);
  free(timers);
  return rc == 0 ? 0 : 1;
}
