/* uv_pprof_metricshost: the host of the /metrics and timeline tests, with
 * facts the tests know exactly. uv_pprof_start() on its main loop (reading
 * UV_PPROF, UV_PPROF_TIMELINE) and on a second loop on its own thread, then:
 *   main loop:   5 active timers, 3 idle and 2 prepare handles (never
 *                started), 2 threadpool requests that never finish;
 *   second loop: 4 active timers, 1 idle handle whose callback sleeps 5 ms
 *                (the loop never waits for events: utilisation ~1), 1
 *                threadpool request that never finishes;
 *   64 MiB kept live, every page written.
 * Prints "port=P main=0x.. second=0x.." on stdout once both loops are
 * registered, and runs until it is killed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "uv_pprof.h"

#define LIVE_BYTES (64u << 20)

static uv_loop_t main_loop;
static uv_loop_t second_loop;
static uv_sem_t never; /* the threadpool requests wait on it for ever */
static uv_sem_t second_ready;
static int second_rc;

static void on_timer(uv_timer_t* t) {
  (void)t;
}

static void on_busy(uv_idle_t* h) {
  (void)h;
  usleep(5000);
}

static void block_forever(uv_work_t* w) {
  (void)w;
  uv_sem_wait(&never);
}

static void after_work(uv_work_t* w, int status) {
  (void)w;
  (void)status;
}

static void check(int rc, const char* what) {
  if (rc != 0) {
    fprintf(stderr, "metricshost: %s: %s\n", what, uv_strerror(rc));
    exit(1);
  }
}

static void start_timers(uv_loop_t* loop, uv_timer_t* t, int n,
                         uint64_t repeat) {
  int i;

  for (i = 0; i < n; i++) {
    check(uv_timer_init(loop, &t[i]), "uv_timer_init");
    check(uv_timer_start(&t[i], on_timer, repeat, repeat), "uv_timer_start");
  }
}

static void second_main(void* arg) {
  static uv_timer_t timers[4];
  static uv_idle_t busy;
  static uv_work_t work;

  (void)arg;
  check(uv_loop_init(&second_loop), "uv_loop_init");
  second_rc = uv_pprof_start(&second_loop);
  start_timers(&second_loop, timers, 4, 1000);
  check(uv_idle_init(&second_loop, &busy), "uv_idle_init");
  check(uv_idle_start(&busy, on_busy), "uv_idle_start");
  check(uv_queue_work(&second_loop, &work, block_forever, after_work),
        "uv_queue_work");
  uv_sem_post(&second_ready);
  uv_run(&second_loop, UV_RUN_DEFAULT);
}

int main(void) {
  static uv_timer_t timers[5];
  static uv_idle_t idles[3];
  static uv_prepare_t prepares[2];
  static uv_work_t work[2];
  struct sockaddr_storage addr;
  uv_thread_t thread;
  char* live;
  int i;

  live = malloc(LIVE_BYTES);
  if (live == NULL)
    return 1;
  memset(live, 0x5a, LIVE_BYTES);
  check(uv_sem_init(&never, 0), "uv_sem_init");
  check(uv_sem_init(&second_ready, 0), "uv_sem_init");
  check(uv_loop_init(&main_loop), "uv_loop_init");
  check(uv_pprof_start(&main_loop), "uv_pprof_start");
  check(uv_pprof_address(&main_loop, &addr), "uv_pprof_address");
  start_timers(&main_loop, timers, 5, 100);
  for (i = 0; i < 3; i++)
    check(uv_idle_init(&main_loop, &idles[i]), "uv_idle_init");
  for (i = 0; i < 2; i++) {
    check(uv_prepare_init(&main_loop, &prepares[i]), "uv_prepare_init");
    check(uv_queue_work(&main_loop, &work[i], block_forever, after_work),
          "uv_queue_work");
  }
  check(uv_thread_create(&thread, second_main, NULL), "uv_thread_create");
  uv_sem_wait(&second_ready);
  check(second_rc, "uv_pprof_start on the second loop");
  printf("port=%d main=0x%" PRIxPTR " second=0x%" PRIxPTR "\n",
         ntohs(((struct sockaddr_in*)&addr)->sin_port), (uintptr_t)&main_loop,
         (uintptr_t)&second_loop);
  fflush(stdout);
  uv_run(&main_loop, UV_RUN_DEFAULT);
  live[0] = 0; /* keeps the block live for the compiler */
  return 0;
}
