/* A wake-up of a loop's thread from another thread that never touches the
 * loop: an eventfd of uv_pprof's own, polled by an unref'd uv_poll_t on the
 * loop. uv_async_send() reads the loop's memory and abort()s once the loop
 * is closed; a host that closes its loop without uv_pprof_stop() (and so
 * without waiting for uv_pprof's worker) must not be crashed by a job that
 * finishes afterwards, nor a loop freed by its thread be written to by the
 * serving loop's walk requests. Writing to the eventfd stays harmless. */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "loop.h"

static void on_readable(uv_poll_t* poll, int status, int events) {
  uv_pprof__wakeup_t* w = poll->data;
  uint64_t n;

  /* Reset the counter first: a send from now on wakes the loop again. */
  while (read(w->fd, &n, sizeof(n)) < 0 && errno == EINTR)
    ;
  w->cb(w);
}

int uv_pprof__wakeup_init(uv_loop_t* loop, uv_pprof__wakeup_t* w,
                          uv_pprof__wakeup_cb cb) {
  int err;

  w->cb = cb;
  w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->fd < 0)
    return -errno;
  err = uv_poll_init(loop, &w->poll, w->fd);
  if (err != 0) {
    close(w->fd);
    return err;
  }
  uv_pprof__handle_own(&w->poll);
  uv_unref((uv_handle_t*)&w->poll);
  w->poll.data = w;
  /* libuv 1.x fails a start only for bad arguments or a closing handle. */
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  return 0;
}

void uv_pprof__wakeup_send(uv_pprof__wakeup_t* w) {
  const uint64_t one = 1;

  while (write(w->fd, &one, sizeof(one)) < 0 && errno == EINTR)
    ;
}

static void on_close(uv_handle_t* handle) {
  uv_pprof__wakeup_t* w = handle->data;
  uv_close_cb done = w->close_cb;

  uv_pprof__handle_disown(handle);
  close(w->fd);
  w->fd = -1;
  done(handle);
}

void uv_pprof__wakeup_close(uv_pprof__wakeup_t* w, uv_close_cb cb) {
  w->close_cb = cb;
  uv_close((uv_handle_t*)&w->poll, on_close);
}
