/* uv_pprof_plainhost: a libuv program that knows nothing of uv_pprof, for
 * the attach tests (test/attach.py runs it under the uv-pprof launcher or
 * with LD_PRELOAD). Exits with status 9 after SECONDS when all went well.
 *
 *   shortloop SECONDS  a short-lived loop first (a timer, uv_run,
 *                      uv_loop_close), then the main loop with 4 timers,
 *                      which starts a thread running a loop of its own with
 *                      2
 *   spawn SECONDS      the main loop with 4 timers spawns this program as
 *                      `child` (which runs a loop of its own for 0.5 s)
 *   child              that child: exits 0
 *   nowait N [busy]    N calls of uv_run(UV_RUN_NOWAIT), as neovim runs
 *                      its loop, in blocks alternating with N calls of
 *                      libuv's own uv_run (found in libuv's scope: past any
 *                      preloaded wrapper); prints the fastest block of each
 *                      in ns per call (bench/attach.c). busy: a pending timer,
 * so that each call is a whole iteration (epoll_wait included)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define CHECK(expr)                                                 \
  do {                                                              \
    if (!(expr)) {                                                  \
      fprintf(stderr, "plainhost: line %d: %s\n", __LINE__, #expr); \
      exit(1);                                                      \
    }                                                               \
  } while (0)

static uv_timer_t timers[4];
static uv_timer_t stop;
static uv_timer_t starter;
static uv_thread_t thread;
static uv_loop_t thread_loop;
static uv_timer_t thread_timers[2];
static uv_async_t thread_stop;
static int child_status = -1;

static void noop(uv_timer_t* t) {
  (void)t;
}

static void on_once(uv_timer_t* t) {
  uv_close((uv_handle_t*)t, NULL);
}

static void close_all(uv_handle_t* h, void* arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void on_thread_stop(uv_async_t* a) {
  uv_walk(a->loop, close_all, NULL);
}

static void thread_main(void* arg) {
  (void)arg;
  uv_run(&thread_loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&thread_loop) == 0);
}

/* The main loop, once it runs, starts the thread with a loop of its own. */
static void on_start_thread(uv_timer_t* t) {
  CHECK(uv_thread_create(&thread, thread_main, NULL) == 0);
  uv_close((uv_handle_t*)t, NULL);
}

static void on_stop(uv_timer_t* t) {
  uv_async_send(&thread_stop);
  uv_walk(t->loop, close_all, NULL);
}

static void start_timers(uv_loop_t* loop, uv_timer_t* ts, int n) {
  int i;

  for (i = 0; i < n; i++) {
    CHECK(uv_timer_init(loop, &ts[i]) == 0);
    CHECK(uv_timer_start(&ts[i], noop, 3600000, 0) == 0);
  }
}

/* A lookup on a loop of its own, gone before the real work starts. */
static void short_loop(void) {
  uv_loop_t tmp;
  uv_timer_t t;

  CHECK(uv_loop_init(&tmp) == 0);
  CHECK(uv_timer_init(&tmp, &t) == 0);
  CHECK(uv_timer_start(&t, on_once, 10, 0) == 0);
  CHECK(uv_run(&tmp, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&tmp) == 0);
}

#define BLOCKS 20

/* ns per call of n uv_run(NOWAIT) calls: through the PLT (fn NULL: what
 * the program links, a preloaded wrapper included), or fn. */
static double time_calls(uv_loop_t* loop, int (*fn)(uv_loop_t*, uv_run_mode),
                         long n) {
  uint64_t t0 = uv_hrtime();
  long i;

  if (fn == NULL)
    for (i = 0; i < n; i++)
      uv_run(loop, UV_RUN_NOWAIT);
  else
    for (i = 0; i < n; i++)
      fn(loop, UV_RUN_NOWAIT);
  return (double)(uv_hrtime() - t0) / (double)n;
}

static void on_exit_cb(uv_process_t* p, int64_t status, int sig) {
  child_status = sig != 0 ? 128 + sig : (int)status;
  uv_close((uv_handle_t*)p, NULL);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  uv_loop_t* loop;
  int seconds = argc > 2 ? atoi(argv[2]) : 3;

  if (strcmp(mode, "child") == 0) {
    loop = uv_default_loop();
    CHECK(uv_timer_init(loop, &stop) == 0);
    CHECK(uv_timer_start(&stop, on_once, 500, 0) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(loop) == 0);
    return 0;
  }
  if (strcmp(mode, "nowait") == 0) {
    long n = (argc > 2 ? atol(argv[2]) : 10000000) / BLOCKS;
    int (*direct)(uv_loop_t*, uv_run_mode);
    void* libuv = dlopen("libuv.so.1", RTLD_LAZY | RTLD_NOLOAD);
    double via = 1e300;
    double own = 1e300;
    int b;
    CHECK(libuv != NULL);
    *(void**)&direct = dlsym(libuv, "uv_run");
    CHECK(direct != NULL);
    loop = uv_default_loop();
    if (argc > 3 && strcmp(argv[3], "busy") == 0) {
      start_timers(loop, timers, 1);
    }
    /* The fastest block of each: what other processes take from a block
     * only adds. The order alternates: neither always runs first. */
    for (b = 0; b < BLOCKS; b++) {
      double a = time_calls(loop, b % 2 ? direct : NULL, n);
      double d = time_calls(loop, b % 2 ? NULL : direct, n);
      if (b % 2) {
        double t = a;
        a = d;
        d = t;
      }
      via = a < via ? a : via;
      own = d < own ? d : own;
    }
    printf("%.2f %.2f\n", via, own);
    return 0;
  }
  if (strcmp(mode, "shortloop") != 0 && strcmp(mode, "spawn") != 0) {
    fprintf(stderr, "usage: %s shortloop|spawn SECONDS | child\n", argv[0]);
    return 2;
  }
  if (strcmp(mode, "shortloop") == 0)
    short_loop();
  loop = uv_default_loop();
  start_timers(loop, timers, 4);
  CHECK(uv_timer_init(loop, &stop) == 0);
  CHECK(uv_timer_start(&stop, on_stop, (uint64_t)seconds * 1000, 0) == 0);
  CHECK(uv_loop_init(&thread_loop) == 0);
  CHECK(uv_async_init(&thread_loop, &thread_stop, on_thread_stop) == 0);
  if (strcmp(mode, "shortloop") == 0)
    start_timers(&thread_loop, thread_timers, 2);
  CHECK(uv_timer_init(loop, &starter) == 0);
  CHECK(uv_timer_start(&starter, on_start_thread, 0, 0) == 0);
  if (strcmp(mode, "spawn") == 0) {
    static uv_process_t proc;
    uv_process_options_t o;
    char* args[] = {argv[0], "child", NULL};
    memset(&o, 0, sizeof(o));
    o.file = argv[0];
    o.args = args;
    o.exit_cb = on_exit_cb;
    CHECK(uv_spawn(loop, &proc, &o) == 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_thread_join(&thread) == 0);
  CHECK(uv_loop_close(loop) == 0);
  if (strcmp(mode, "spawn") == 0)
    CHECK(child_status == 0);
  return 9;
}
