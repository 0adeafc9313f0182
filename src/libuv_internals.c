/* The one file of uv_pprof that reads libuv's private layout, so that a
 * libuv upgrade is this file's review. Everything else uses libuv's public
 * API. What is read, and from which libuv versions (checked against the
 * headers of 1.44, Debian 12's, and 1.46, Node 20's; test `libuv_headers`
 * compiles every source against the latter):
 *
 * - the handle queue: `uv_loop_t.handle_queue` and
 *   `uv_handle_t.handle_queue`, two pointers per node, next then prev (QUEUE
 *   before 1.46, struct uv__queue since: the same layout); a new handle
 *   joins the tail (uv__handle_init);
 * - `UV_HANDLE_INTERNAL` (0x10 in src/uv-common.h from 1.44 to the current
 *   release): uv_walk skips such handles and uv_loop_close does not count
 *   them;
 * - `uv_loop_t.active_reqs.count` and `closing_handles` (public struct,
 *   undocumented);
 * - `uv_loop_t.time` (what uv_now() returns), read from another thread;
 * - callbacks kept in private fields: timer_cb, prepare_cb, check_cb,
 *   idle_cb, async_cb, connection_cb (UV_*_PRIVATE_FIELDS), and
 *   `uv_pipe_t.pipe_fname`;
 * - the head of the private `struct poll_ctx` of src/fs-poll.c behind
 *   `uv_fs_poll_t.poll_ctx` (parent_handle, busy_polling, interval,
 *   start_time, loop, poll_cb: unchanged from 1.x's first fs_poll).
 *
 * uv_pprof__uvi_layout_ok() checks the queue and the flag at run time on
 * each loop before its first walk; when they are not as expected, walks use
 * uv_walk in one go instead. */
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loop.h"

#define HANDLE_INTERNAL 0x10

typedef void* queue_t[2];

_Static_assert(sizeof(((uv_handle_t*)0)->handle_queue) == sizeof(queue_t),
               "libuv's handle queue node is two pointers");
_Static_assert(sizeof(((uv_loop_t*)0)->handle_queue) == sizeof(queue_t),
               "libuv's handle queue head is two pointers");

/* ---- callbacks and facts ------------------------------------------------- */

enum {
  F_NONE,
  F_TIMER,
  F_PREPARE,
  F_CHECK,
  F_IDLE,
  F_ASYNC,
  F_READ,
  F_CONNECTION,
  F_RECV,
  F_POLL,
  F_SIGNAL,
  F_EXIT,
  F_FS_EVENT,
  F_FS_POLL,
  F_CLOSE
};

static const char* const fields[] = {
    NULL,        "timer_cb", "prepare_cb",    "check_cb",   "idle_cb",
    "async_cb",  "read_cb",  "connection_cb", "recv_cb",    "poll_cb",
    "signal_cb", "exit_cb",  "fs_event_cb",   "fs_poll_cb", "close_cb",
};

/* The head of struct poll_ctx. Read only when it points back to its
 * handle. */
typedef struct {
  uv_fs_poll_t* parent_handle;
  int busy_polling;
  unsigned int interval;
  uint64_t start_time;
  uv_loop_t* loop;
  uv_fs_poll_cb poll_cb;
} fs_poll_ctx_head_t;

const char* uv_pprof__uvi_cb_field(int field) {
  return field > 0 && (size_t)field < UV_PPROF__ARRAY_SIZE(fields)
             ? fields[field]
             : NULL;
}

static void set_path(uv_pprof__uvi_facts_t* f, const char* path) {
  if (path != NULL) {
    f->path = path;
    f->path_len = strlen(path);
  }
}

static void read_stream(const uv_stream_t* s, uv_pprof__uvi_facts_t* f) {
  uv_os_fd_t fd;

  if (s->connection_cb != NULL) {
    f->cb = (uintptr_t)s->connection_cb;
    f->field = F_CONNECTION;
  } else if (s->read_cb != NULL) {
    f->cb = (uintptr_t)s->read_cb;
    f->field = F_READ;
  }
  if (uv_fileno((const uv_handle_t*)s, &fd) == 0)
    f->fd = fd;
}

void uv_pprof__uvi_facts(const uv_handle_t* h, uv_pprof__uvi_facts_t* f,
                         char* buf, size_t size) {
  uv_os_fd_t fd;

  memset(f, 0, sizeof(*f));
  f->fd = -1;
  switch (h->type) {
    case UV_TIMER: {
      const uv_timer_t* t = (const uv_timer_t*)h;
      f->cb = (uintptr_t)t->timer_cb;
      f->field = F_TIMER;
      f->a = uv_timer_get_due_in(t);
      f->b = uv_timer_get_repeat(t);
      break;
    }
    case UV_PREPARE:
      f->cb = (uintptr_t)((const uv_prepare_t*)h)->prepare_cb;
      f->field = F_PREPARE;
      break;
    case UV_CHECK:
      f->cb = (uintptr_t)((const uv_check_t*)h)->check_cb;
      f->field = F_CHECK;
      break;
    case UV_IDLE:
      f->cb = (uintptr_t)((const uv_idle_t*)h)->idle_cb;
      f->field = F_IDLE;
      break;
    case UV_ASYNC:
      f->cb = (uintptr_t)((const uv_async_t*)h)->async_cb;
      f->field = F_ASYNC;
      break;
    case UV_TCP:
    case UV_TTY:
      read_stream((const uv_stream_t*)h, f);
      break;
    case UV_NAMED_PIPE:
      read_stream((const uv_stream_t*)h, f);
      set_path(f, ((const uv_pipe_t*)h)->pipe_fname);
      break;
    case UV_UDP:
      f->cb = (uintptr_t)((const uv_udp_t*)h)->recv_cb;
      f->field = F_RECV;
      if (uv_fileno(h, &fd) == 0)
        f->fd = fd;
      break;
    case UV_POLL:
      f->cb = (uintptr_t)((const uv_poll_t*)h)->poll_cb;
      f->field = F_POLL;
      if (uv_fileno(h, &fd) == 0)
        f->fd = fd;
      break;
    case UV_SIGNAL:
      f->cb = (uintptr_t)((const uv_signal_t*)h)->signal_cb;
      f->field = F_SIGNAL;
      f->a = (uint64_t)((const uv_signal_t*)h)->signum;
      break;
    case UV_PROCESS:
      f->cb = (uintptr_t)((const uv_process_t*)h)->exit_cb;
      f->field = F_EXIT;
      f->a = (uint64_t)((const uv_process_t*)h)->pid;
      break;
    case UV_FS_EVENT:
      f->cb = (uintptr_t)((const uv_fs_event_t*)h)->cb;
      f->field = F_FS_EVENT;
      set_path(f, ((const uv_fs_event_t*)h)->path);
      break;
    case UV_FS_POLL: {
      const fs_poll_ctx_head_t* ctx = ((const uv_fs_poll_t*)h)->poll_ctx;
      size_t len = size;
      if (ctx != NULL && ctx->parent_handle == (const uv_fs_poll_t*)h &&
          ctx->loop == h->loop) {
        f->cb = (uintptr_t)ctx->poll_cb;
        f->field = F_FS_POLL;
        if (uv_fs_poll_getpath((uv_fs_poll_t*)h, buf, &len) == 0) {
          f->path = buf;
          f->path_len = len;
        }
      }
      break;
    }
    default:
      break;
  }
  if (uv_is_closing(h) && h->close_cb != NULL) {
    f->cb = (uintptr_t)h->close_cb;
    f->field = F_CLOSE;
  }
}

unsigned uv_pprof__uvi_active_reqs(const uv_loop_t* loop) {
  return loop->active_reqs.count;
}

int uv_pprof__uvi_closing(const uv_loop_t* loop) {
  return loop->closing_handles != NULL;
}

int uv_pprof__uvi_loop_time(const uv_loop_t* loop, uint64_t* ms) {
  struct iovec local = {ms, sizeof(*ms)};
  struct iovec remote = {(void*)&loop->time, sizeof(*ms)};

  return syscall(SYS_process_vm_readv, (long)getpid(), &local, 1L, &remote, 1L,
                 0UL) == (long)sizeof(*ms)
             ? 0
             : UV_EFAULT;
}

/* ---- the internal flag --------------------------------------------------- */

/* What the last layout check found: 0 none made yet, 1 as expected, -1
 * not. The flag is only set on a libuv where uv_walk was seen to skip it. */
static atomic_int layout_state;

void uv_pprof__uvi_set_internal(uv_handle_t* h) {
  if (atomic_load(&layout_state) == 0)
    uv_pprof__uvi_layout_ok(h->loop);
  if (atomic_load(&layout_state) == 1)
    h->flags |= HANDLE_INTERNAL;
}

int uv_pprof__uvi_internal(const uv_handle_t* h) {
  return (h->flags & HANDLE_INTERNAL) != 0;
}

/* ---- the handle queue ---------------------------------------------------- */

static void** head_of(uv_loop_t* loop) {
  return (void**)&loop->handle_queue;
}

static void** node_of(uv_handle_t* h) {
  return (void**)&h->handle_queue;
}

static uv_handle_t* handle_of(void** q) {
  return (uv_handle_t*)((char*)q - offsetof(uv_handle_t, handle_queue));
}

static void queue_remove(void** q) {
  void** next = (void**)q[0];
  void** prev = (void**)q[1];

  prev[0] = next;
  next[1] = prev;
}

/* Puts the unlinked node q just before `at`. */
static void queue_insert_before(void** at, void** q) {
  void** prev = (void**)at[1];

  q[0] = at;
  q[1] = prev;
  prev[0] = q;
  at[1] = q;
}

atomic_int uv_pprof__uvi_unknown_layout;

static void on_probe_walk(uv_handle_t* h, void* arg) {
  if (h == arg)
    *(int*)((uv_handle_t*)arg)->data = 0;
}

static void on_probe_close(uv_handle_t* h) {
  free(h);
}

int uv_pprof__uvi_layout_ok(uv_loop_t* loop) {
  uv_idle_t* probe;
  void** head = head_of(loop);
  void** node;
  int ok;

  if (atomic_load(&uv_pprof__uvi_unknown_layout) != 0) {
    atomic_store(&layout_state, -1);
    return 0;
  }
  probe = malloc(sizeof(*probe));
  if (probe == NULL || uv_idle_init(loop, probe) != 0) {
    free(probe);
    return 0;
  }
  node = node_of((uv_handle_t*)probe);
  ok = head[1] == (void*)node && node[0] == (void*)head &&
       ((void**)node[1])[0] == (void*)node;
  if (ok) {
    /* The flag: uv_walk must not show it. */
    probe->data = &ok;
    probe->flags |= HANDLE_INTERNAL;
    uv_walk(loop, on_probe_walk, probe);
  }
  atomic_store(&layout_state, ok ? 1 : -1);
  if (!ok) {
    uv_close((uv_handle_t*)probe, on_probe_close);
    return 0;
  }
  /* An idle handle that was never started holds nothing else of the loop:
   * unlinking it undoes its init (it never reaches the closing list). */
  queue_remove(node);
  free(probe);
  return 1;
}

void uv_pprof__uvi_walk_begin(uv_handle_t* mark) {
  void** node = node_of(mark);

  queue_remove(node);
  queue_insert_before((void**)head_of(mark->loop)[0], node);
}

int uv_pprof__uvi_walk_slice(uv_handle_t* mark,
                             int (*visit)(uv_handle_t* h, void* arg),
                             void* arg) {
  void** head = head_of(mark->loop);
  void** node = node_of(mark);
  void** q = (void**)node[0];

  while (q != head) {
    uv_handle_t* h = handle_of(q);
    q = (void**)q[0];
    if (!(h->flags & HANDLE_INTERNAL) && visit(h, arg) != 0)
      break;
  }
  if (q == head)
    return 1;
  queue_remove(node);
  queue_insert_before(q, node);
  return 0;
}
