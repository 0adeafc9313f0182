/* uv_pprof_heaphost: a host for the heap tests, run with jemalloc (linked,
 * linked statically, or preloaded into the variant built without it) and
 * MALLOC_CONF set by the test. It calls uv_pprof_start() on its loop,
 * prints "port=N", runs a 1 ms repeating timer, and obeys one command per
 * line on stdin, answering each on stdout once done (on the loop thread, so
 * a blocked loop shows):
 *   live    keep 64 MiB live, from heaphost_keep_live()  -> ok
 *   churn   allocate and free 256 MiB, from heaphost_churn()  -> ok
 *   leak    leak 32 MiB more, from heaphost_leak()  -> ok
 *   stacks  keep 4096 small blocks live from 4096 distinct stacks  -> ok
 *   ticks   -> ticks=<times the 1 ms timer fired so far>
 * EOF on stdin (or "quit") stops uv_pprof and exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "uv_pprof.h"

#define MIB (1024 * 1024)
#define STACK_DEPTH 12 /* 2^12 distinct stacks */

/* Block sizes are chosen for the statistics of jemalloc's sampling (see
 * test-heap.c): large enough that its estimate is within a few percent. */
#define LIVE_BLOCK (4 * MIB)
#define CHURN_BLOCK (1 * MIB)
#define LEAK_BLOCK (8 * MIB)

__attribute__((noinline)) void heaphost_keep_live(void);
__attribute__((noinline)) void heaphost_churn(void);
__attribute__((noinline)) void heaphost_leak(void);
__attribute__((noinline)) void heaphost_branch_a(int depth, unsigned path);
__attribute__((noinline)) void heaphost_branch_b(int depth, unsigned path);

static uv_loop_t* loop;
static uv_pipe_t input;
static uv_timer_t tick;
static unsigned long long ticks;
static char line[256];
static size_t line_len;

/* Everything kept live, so that nothing is a leak to a checker. */
static void** kept;
static size_t nkept;
static size_t capkept;

static void keep(void* p) {
  if (p == NULL) {
    fprintf(stderr, "heaphost: out of memory\n");
    exit(1);
  }
  if (nkept == capkept) {
    capkept = capkept ? 2 * capkept : 256;
    kept = realloc(kept, capkept * sizeof(*kept));
    if (kept == NULL)
      exit(1);
  }
  kept[nkept++] = p;
}

void heaphost_keep_live(void) {
  size_t i;

  for (i = 0; i < 64 * MIB / LIVE_BLOCK; i++)
    keep(malloc(LIVE_BLOCK));
}

void heaphost_churn(void) {
  size_t i;

  for (i = 0; i < 256 * MIB / CHURN_BLOCK; i++) {
    char* volatile p = malloc(CHURN_BLOCK);
    if (p == NULL)
      exit(1);
    p[0] = 1;
    free(p);
  }
}

void heaphost_leak(void) {
  size_t i;

  for (i = 0; i < 32 * MIB / LEAK_BLOCK; i++)
    keep(malloc(LEAK_BLOCK));
}

/* Two functions calling each other by the bits of `path`: every path is a
 * distinct stack of return addresses. */
void heaphost_branch_a(int depth, unsigned path) {
  if (depth == 0) {
    keep(malloc(64));
    return;
  }
  if (path & 1)
    heaphost_branch_b(depth - 1, path >> 1);
  else
    heaphost_branch_a(depth - 1, path >> 1);
  __asm__ volatile("" ::: "memory"); /* no tail call: keep the frame */
}

void heaphost_branch_b(int depth, unsigned path) {
  if (depth == 0) {
    keep(malloc(64));
    return;
  }
  if (path & 1)
    heaphost_branch_b(depth - 1, path >> 1);
  else
    heaphost_branch_a(depth - 1, path >> 1);
  __asm__ volatile("" ::: "memory");
}

static void say(const char* text) {
  size_t len = strlen(text);

  if (write(1, text, len) != (ssize_t)len)
    exit(1);
}

static void on_tick(uv_timer_t* t) {
  ticks++;
}

static void on_close(uv_handle_t* h) {
}

static void quit(void) {
  uv_pprof_stop(loop);
  uv_close((uv_handle_t*)&input, on_close);
  uv_close((uv_handle_t*)&tick, on_close);
}

static void run_command(const char* cmd) {
  char answer[64];
  unsigned path;

  if (strcmp(cmd, "live") == 0) {
    heaphost_keep_live();
  } else if (strcmp(cmd, "churn") == 0) {
    heaphost_churn();
  } else if (strcmp(cmd, "leak") == 0) {
    heaphost_leak();
  } else if (strcmp(cmd, "stacks") == 0) {
    for (path = 0; path < 1u << STACK_DEPTH; path++)
      heaphost_branch_a(STACK_DEPTH, path);
  } else if (strcmp(cmd, "ticks") == 0) {
    snprintf(answer, sizeof(answer), "ticks=%llu\n", ticks);
    say(answer);
    return;
  } else if (strcmp(cmd, "quit") == 0) {
    quit();
    return;
  } else {
    fprintf(stderr, "heaphost: unknown command \"%s\"\n", cmd);
    exit(1);
  }
  say("ok\n");
}

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  static char chunk[256];

  *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  ssize_t i;

  if (n < 0) {
    if (!uv_is_closing((uv_handle_t*)&input))
      quit();
    return;
  }
  for (i = 0; i < n; i++) {
    if (buf->base[i] != '\n') {
      if (line_len + 1 < sizeof(line))
        line[line_len++] = buf->base[i];
      continue;
    }
    line[line_len] = '\0';
    line_len = 0;
    run_command(line);
    if (uv_is_closing((uv_handle_t*)&input))
      return;
  }
}

int main(void) {
  struct sockaddr_storage ss;
  char answer[32];
  int port;
  size_t i;
  int rc;

  loop = uv_default_loop();
  rc = uv_pprof_start(loop);
  if (rc != 0 || uv_pprof_address(loop, &ss) != 0) {
    fprintf(stderr, "heaphost: uv_pprof_start: %s\n", uv_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 1, 1);
  uv_pipe_init(loop, &input, 0);
  if (uv_pipe_open(&input, 0) != 0 ||
      uv_read_start((uv_stream_t*)&input, on_alloc, on_read) != 0) {
    fprintf(stderr, "heaphost: cannot read stdin\n");
    return 1;
  }
  snprintf(answer, sizeof(answer), "port=%d\n", port);
  say(answer);
  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  for (i = 0; i < nkept; i++)
    free(kept[i]);
  free(kept);
  return rc == 0 ? 0 : 1;
}
