/* Which libuv phase, and which kind of handle's callback, a stalled stack
 * is in. libuv's dispatchers (uv__run_timers, uv__io_poll, ...) are
 * internal and unnamed in a stripped libuv, so their call sites are learnt
 * from uv_pprof's own callbacks: each notes the return address it was
 * called with, and a stack whose frame returns to the same address was
 * called by the same instruction, hence the same phase and handle kind.
 * uv_pprof's prepare and check hooks teach those two; a handful of
 * short-lived handles of each other kind, started once on the first loop
 * attached, teach the rest. What was never learnt (a kind of callback not
 * seen, another copy of libuv) gives no label: never a guess. */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

/* Each site: the phase its callbacks run in, and their handle type. */
static const struct {
  int phase;
  uv_handle_type type;
} meaning[UV_PPROF__SITE_COUNT] = {
    [UV_PPROF__SITE_TIMER] = {UV_PPROF__PHASE_TIMERS, UV_TIMER},
    [UV_PPROF__SITE_IDLE] = {UV_PPROF__PHASE_IDLE, UV_IDLE},
    [UV_PPROF__SITE_PREPARE] = {UV_PPROF__PHASE_PREPARE, UV_PREPARE},
    [UV_PPROF__SITE_CHECK] = {UV_PPROF__PHASE_CHECK, UV_CHECK},
    [UV_PPROF__SITE_ASYNC] = {UV_PPROF__PHASE_POLL, UV_ASYNC},
    /* uv__read calls read_cb for tcp, pipe and tty alike */
    [UV_PPROF__SITE_READ] = {UV_PPROF__PHASE_POLL, UV_STREAM},
    /* a close callback, whatever the handle */
    [UV_PPROF__SITE_CLOSE] = {UV_PPROF__PHASE_CLOSING, UV_UNKNOWN_HANDLE},
};

static uintptr_t sites[UV_PPROF__SITE_COUNT]; /* atomic; 0: not learnt */

static const char* const phase_names[] = {
    [UV_PPROF__PHASE_TIMERS] = "timers",
    [UV_PPROF__PHASE_IDLE] = "idle",
    [UV_PPROF__PHASE_PREPARE] = "prepare",
    [UV_PPROF__PHASE_POLL] = "poll",
    [UV_PPROF__PHASE_CHECK] = "check",
    [UV_PPROF__PHASE_CLOSING] = "closing"};

void uv_pprof__site_note(int site, const void* ret) {
  if (__atomic_load_n(&sites[site], __ATOMIC_RELAXED) == 0)
    __atomic_store_n(&sites[site], (uintptr_t)ret, __ATOMIC_RELAXED);
}

void uv_pprof__site_classify(const uintptr_t* pcs, size_t n, int* phase,
                             int* type) {
  uintptr_t known[UV_PPROF__SITE_COUNT];
  size_t i;
  int k;
  int j;

  *phase = UV_PPROF__PHASE_UNKNOWN;
  *type = UV_UNKNOWN_HANDLE;
  for (k = 0; k < UV_PPROF__SITE_COUNT; k++)
    known[k] = __atomic_load_n(&sites[k], __ATOMIC_RELAXED);
  /* pcs[0] is where the thread was; pcs[i > 0] are return addresses - 1.
   * The innermost dispatch is the one that called the running code. */
  for (i = 1; i < n; i++)
    for (k = 0; k < UV_PPROF__SITE_COUNT; k++) {
      if (known[k] == 0 || pcs[i] + 1 != known[k])
        continue;
      /* Two kinds learnt at one address (a dispatcher that tail-calls):
       * only what they agree on is known. */
      *phase = meaning[k].phase;
      *type = meaning[k].type;
      for (j = k + 1; j < UV_PPROF__SITE_COUNT; j++)
        if (known[j] == known[k]) {
          if (meaning[j].phase != *phase)
            *phase = UV_PPROF__PHASE_UNKNOWN;
          if ((int)meaning[j].type != *type)
            *type = UV_UNKNOWN_HANDLE;
        }
      return;
    }
}

const char* uv_pprof__phase_name(int phase) {
  return phase >= 0 && phase < (int)UV_PPROF__ARRAY_SIZE(phase_names)
             ? phase_names[phase]
             : NULL;
}

/* ---- teaching: short-lived handles of each kind -------------------------- */

typedef struct {
  uv_timer_t timer;
  uv_idle_t idle;
  uv_async_t async;
  uv_pipe_t pipe;
  int peer; /* the socketpair's other end, written once */
  int open; /* handles not closed yet */
} teach_t;

static int taught; /* atomic: the teaching handles were started once */

static void on_teach_close(uv_handle_t* handle) {
  teach_t* t = handle->data;

  uv_pprof__site_note(UV_PPROF__SITE_CLOSE, __builtin_return_address(0));
  uv_pprof__handle_disown(handle);
  if (--t->open > 0)
    return;
  if (t->peer >= 0)
    close(t->peer);
  free(t);
}

static void done_with(uv_handle_t* handle) {
  if (!uv_is_closing(handle))
    uv_close(handle, on_teach_close);
}

static void on_teach_timer(uv_timer_t* timer) {
  uv_pprof__site_note(UV_PPROF__SITE_TIMER, __builtin_return_address(0));
  done_with((uv_handle_t*)timer);
}

static void on_teach_idle(uv_idle_t* idle) {
  uv_pprof__site_note(UV_PPROF__SITE_IDLE, __builtin_return_address(0));
  done_with((uv_handle_t*)idle);
}

static void on_teach_async(uv_async_t* async) {
  uv_pprof__site_note(UV_PPROF__SITE_ASYNC, __builtin_return_address(0));
  done_with((uv_handle_t*)async);
}

static void on_teach_alloc(uv_handle_t* handle, size_t size, uv_buf_t* buf) {
  static char byte[8];

  *buf = uv_buf_init(byte, sizeof(byte));
}

static void on_teach_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* b) {
  if (n > 0)
    uv_pprof__site_note(UV_PPROF__SITE_READ, __builtin_return_address(0));
  done_with((uv_handle_t*)stream);
}

static void start(teach_t* t, uv_handle_t* handle, int err) {
  if (err != 0)
    return;
  handle->data = t;
  uv_pprof__handle_own(handle); /* and hidden from the host's walks */
  uv_unref(handle);
  t->open++;
}

int uv_pprof__site_teach(uv_loop_t* loop) {
  teach_t* t;
  int fds[2];
  int err;

  if (__atomic_exchange_n(&taught, 1, __ATOMIC_RELAXED))
    return 0;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return UV_ENOMEM;
  t->peer = -1;
  err = uv_timer_init(loop, &t->timer);
  start(t, (uv_handle_t*)&t->timer, err);
  if (err == 0)
    uv_timer_start(&t->timer, on_teach_timer, 0, 0);
  err = uv_idle_init(loop, &t->idle);
  start(t, (uv_handle_t*)&t->idle, err);
  if (err == 0)
    uv_idle_start(&t->idle, on_teach_idle);
  err = uv_async_init(loop, &t->async, on_teach_async);
  start(t, (uv_handle_t*)&t->async, err);
  if (err == 0)
    uv_async_send(&t->async);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) ==
      0) {
    int opened = 0;
    err = uv_pipe_init(loop, &t->pipe, 0);
    start(t, (uv_handle_t*)&t->pipe, err);
    if (err == 0) {
      opened = uv_pipe_open(&t->pipe, fds[0]) == 0;
      if (opened &&
          uv_read_start((uv_stream_t*)&t->pipe, on_teach_alloc,
                        on_teach_read) == 0 &&
          write(fds[1], "x", 1) == 1) {
        t->peer = fds[1];
        fds[1] = -1;
      } else {
        done_with((uv_handle_t*)&t->pipe);
      }
    }
    if (!opened)
      close(fds[0]); /* the pipe handle did not take it */
    if (fds[1] >= 0)
      close(fds[1]);
  }
  if (t->open == 0)
    free(t);
  return 0;
}
