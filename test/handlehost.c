/* uv_pprof_handlehost: the host of the handle-tracking tests. make_timers()
 * creates five timers, then uv_pprof_start() serves as UV_PPROF says (with
 * UV_PPROF_TRACK) while the loop runs on a thread of its own; the main thread
 * fetches each PATH argument with curl into the FILE argument after it,
 * stops everything and exits 0 only if uv_loop_close() returned 0. Built
 * three ways by test/CMakeLists.txt: plain (for LD_PRELOAD), linked with
 * libuv_pprof_track.so, and with libuv_pprof_track.a and ld --wrap.
 *
 * Usage: uv_pprof_handlehost PATH FILE [PATH FILE]... */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "uv_pprof.h"

#define NTIMERS 5

static uv_loop_t loop;
static uv_timer_t timers[NTIMERS];
static uv_async_t stop;

static void tick_tracked(uv_timer_t* t) {
  (void)t;
}

/* The function the tests look for as "created by". */
static __attribute__((noinline, noclone)) void make_timers(uv_loop_t* l) {
  int i;

  for (i = 0; i < NTIMERS; i++) {
    if (uv_timer_init(l, &timers[i]) != 0 ||
        uv_timer_start(&timers[i], tick_tracked, 3600000, 0) != 0)
      exit(2);
  }
}

static void on_stop(uv_async_t* a) {
  int i;

  uv_pprof_stop(&loop);
  for (i = 0; i < NTIMERS; i++)
    uv_close((uv_handle_t*)&timers[i], NULL);
  uv_close((uv_handle_t*)a, NULL);
}

static void run(void* arg) {
  (void)arg;
  uv_run(&loop, UV_RUN_DEFAULT);
}

int main(int argc, char** argv) {
  struct sockaddr_storage ss;
  uv_thread_t thread;
  int port;
  int i;

  if (argc < 3 || argc % 2 != 1) {
    fprintf(stderr, "usage: %s PATH FILE [PATH FILE]...\n", argv[0]);
    return 2;
  }
  if (uv_loop_init(&loop) != 0 || uv_async_init(&loop, &stop, on_stop) != 0)
    return 2;
  make_timers(&loop);
  if (uv_pprof_start(&loop) != 0 || uv_pprof_address(&loop, &ss) != 0)
    return 3;
  port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  if (uv_thread_create(&thread, run, NULL) != 0)
    return 2;
  for (i = 1; i + 1 < argc; i += 2) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "curl -sf -o '%s' 'http://127.0.0.1:%d%s'",
             argv[i + 1], port, argv[i]);
    if (system(cmd) != 0) {
      fprintf(stderr, "handlehost: %s failed\n", cmd);
      return 4;
    }
  }
  uv_async_send(&stop);
  uv_thread_join(&thread);
  if (uv_loop_close(&loop) != 0) {
    fprintf(stderr, "handlehost: uv_loop_close failed\n");
    return 5;
  }
  return 0;
}
