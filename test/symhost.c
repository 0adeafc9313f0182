/* uv_pprof_symhost: the program test-debuginfo.c strips. It serves on
 * 127.0.0.1 (port 0), prints "url=<url>", and keeps a timer whose callback
 * is a static function, symhost_tick, so that its goroutine profile holds
 * an address that only the program's symbol table or debug file names.
 * It exits cleanly when its stdin closes. */
#include <stdio.h>
#include <stdlib.h>

#include "uv_pprof.h"

static uv_timer_t timer;
static uv_pipe_t in;
static int ticks;

static __attribute__((noinline)) void symhost_tick(uv_timer_t* t) {
  ticks++;
}

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  static char space[256];

  *buf = uv_buf_init(space, sizeof(space));
}

static void on_stdin(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  if (n >= 0)
    return;
  uv_pprof_stop(s->loop);
  uv_close((uv_handle_t*)&timer, NULL);
  uv_close((uv_handle_t*)s, NULL);
}

int main(void) {
  uv_loop_t* loop = uv_default_loop();
  uv_pprof_options_t options;
  char url[128];
  int rc;

  uv_pprof_options_init(&options);
  options.host = "127.0.0.1";
  options.port = 0;
  options.quiet = 1;
  rc = uv_pprof_start_ex(loop, &options);
  if (rc != 0 || uv_pprof_url(loop, url, sizeof(url)) != 0) {
    fprintf(stderr, "symhost: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, symhost_tick, 1000, 1000);
  uv_pipe_init(loop, &in, 0);
  if (uv_pipe_open(&in, 0) != 0 ||
      uv_read_start((uv_stream_t*)&in, on_alloc, on_stdin) != 0) {
    fprintf(stderr, "symhost: stdin is no pipe\n");
    return 1;
  }
  printf("url=%s\n", url);
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  return rc == 0 && ticks >= 0 ? 0 : 1;
}
