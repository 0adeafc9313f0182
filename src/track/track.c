/* libuv_pprof_track: remembers where each live libuv handle was created.
 * It wraps libuv's uv_*_init functions, uv_spawn and uv_close: an init that
 * succeeds records the caller's stack (interned: equal stacks are stored
 * once), uv_close forgets the handle; and uv_loop_close, before which
 * uv_pprof leaves the loop. Built twice from this file: the shared library
 * defines libuv's own names and reaches the real ones through real.h
 * (linked before libuv, or LD_PRELOADed); the static one,
 * built with UV_PPROF_TRACK_WRAP, defines __wrap_uv_* for `ld --wrap`.
 * libuv_pprof reads the records through the functions of track.h. */
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "../hash.h"
#include "real.h"
#include "track.h"

#define EXPORT __attribute__((visibility("default")))

/* Bounds (docs/INTERNALS.md, "Handles"): handles beyond MAX_LIVE and stacks
 * beyond MAX_STACKS or MAX_PCS are not recorded. */
#define MAX_LIVE (1u << 20)
#define MAX_STACKS (1u << 16)
#define MAX_PCS (1u << 20)

typedef struct {
  uintptr_t addr; /* 0: empty slot */
  uint64_t seq;
  uint64_t init_ns;
  uint32_t stack;
} live_t;

typedef struct {
  uint64_t hash;
  uint32_t off; /* first pc in `pcs` */
  uint32_t depth;
} stack_t_;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int enabled;

static live_t* live;
static size_t live_mask; /* slots - 1; 0 while nothing is allocated */
static size_t live_count;
static uint64_t next_seq;

static stack_t_* stacks; /* id = index + 1 */
static size_t nstacks;
static size_t stacks_cap;
static uint32_t* stack_slots; /* open addressing: stack id, 0 empty */
static size_t stack_slots_mask;
static uintptr_t* pcs;
static size_t npcs;
static size_t pcs_cap;

static void read_env(void) {
  const char* v = getenv("UV_PPROF_TRACK");

  if (v != NULL && strstr(v, "handles") != NULL)
    __atomic_store_n(&enabled, 1, __ATOMIC_RELAXED);
}

static int tracking(void) {
  pthread_once(&env_once, read_env);
  return __atomic_load_n(&enabled, __ATOMIC_RELAXED);
}

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- interned stacks (mu held) ----------------------------------------- */

static int stack_equal(const stack_t_* s, const uintptr_t* frames,
                       size_t depth) {
  return s->depth == depth &&
         memcmp(pcs + s->off, frames, depth * sizeof(*frames)) == 0;
}

static int grow_stack_slots(void) {
  size_t n = stack_slots_mask != 0 ? (stack_slots_mask + 1) * 2 : 1024;
  uint32_t* slots = calloc(n, sizeof(*slots));
  size_t i;

  if (slots == NULL)
    return -1;
  for (i = 0; i < nstacks; i++) {
    size_t j = (size_t)stacks[i].hash & (n - 1);
    while (slots[j] != 0)
      j = (j + 1) & (n - 1);
    slots[j] = (uint32_t)(i + 1);
  }
  free(stack_slots);
  stack_slots = slots;
  stack_slots_mask = n - 1;
  return 0;
}

/* The id of this stack, stored now if new; 0 when over the bounds. */
static uint32_t intern(const uintptr_t* frames, size_t depth) {
  uint64_t h = depth;
  size_t i;
  size_t j;

  for (i = 0; i < depth; i++)
    h = uv_pprof__hash64(h ^ frames[i]);
  if (stack_slots_mask != 0) {
    for (j = (size_t)h & stack_slots_mask; stack_slots[j] != 0;
         j = (j + 1) & stack_slots_mask) {
      const stack_t_* s = &stacks[stack_slots[j] - 1];
      if (s->hash == h && stack_equal(s, frames, depth))
        return stack_slots[j];
    }
  }
  if (nstacks >= MAX_STACKS || npcs + depth > MAX_PCS)
    return 0;
  if ((nstacks + 1) * 2 > stack_slots_mask + 1 && grow_stack_slots() != 0)
    return 0;
  if (nstacks == stacks_cap) {
    size_t cap = stacks_cap != 0 ? stacks_cap * 2 : 256;
    stack_t_* grown = realloc(stacks, cap * sizeof(*stacks));
    if (grown == NULL)
      return 0;
    stacks = grown;
    stacks_cap = cap;
  }
  if (npcs + depth > pcs_cap) {
    size_t cap = pcs_cap != 0 ? pcs_cap : 4096;
    uintptr_t* grown;
    while (cap < npcs + depth)
      cap *= 2;
    grown = realloc(pcs, cap * sizeof(*pcs));
    if (grown == NULL)
      return 0;
    pcs = grown;
    pcs_cap = cap;
  }
  memcpy(pcs + npcs, frames, depth * sizeof(*frames));
  stacks[nstacks].hash = h;
  stacks[nstacks].off = (uint32_t)npcs;
  stacks[nstacks].depth = (uint32_t)depth;
  npcs += depth;
  nstacks++;
  for (j = (size_t)h & stack_slots_mask; stack_slots[j] != 0;
       j = (j + 1) & stack_slots_mask)
    ;
  stack_slots[j] = (uint32_t)nstacks;
  return (uint32_t)nstacks;
}

/* ---- live handles (mu held) -------------------------------------------- */

static live_t* live_find(uintptr_t addr) {
  size_t i;

  if (live_mask == 0)
    return NULL;
  for (i = (size_t)uv_pprof__hash64(addr) & live_mask; live[i].addr != 0;
       i = (i + 1) & live_mask)
    if (live[i].addr == addr)
      return &live[i];
  return NULL;
}

static int grow_live(void) {
  size_t n = live_mask != 0 ? (live_mask + 1) * 2 : 4096;
  live_t* table = calloc(n, sizeof(*table));
  size_t i;

  if (table == NULL)
    return -1;
  for (i = 0; live_mask != 0 && i <= live_mask; i++) {
    size_t j;
    if (live[i].addr == 0)
      continue;
    for (j = (size_t)uv_pprof__hash64(live[i].addr) & (n - 1);
         table[j].addr != 0; j = (j + 1) & (n - 1))
      ;
    table[j] = live[i];
  }
  free(live);
  live = table;
  live_mask = n - 1;
  return 0;
}

static void live_put(uintptr_t addr, uint32_t stack, uint64_t t) {
  live_t* e = live_find(addr);
  size_t i;

  if (e == NULL) {
    if (live_count >= MAX_LIVE)
      return;
    if ((live_count + 1) * 4 > (live_mask + 1) * 3 && grow_live() != 0)
      return;
    for (i = (size_t)uv_pprof__hash64(addr) & live_mask; live[i].addr != 0;
         i = (i + 1) & live_mask)
      ;
    e = &live[i];
    e->addr = addr;
    live_count++;
  }
  e->seq = ++next_seq;
  e->init_ns = t;
  e->stack = stack;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void live_remove(uintptr_t addr) {
  live_t* e = live_find(addr);
  size_t i;
  size_t j;

  if (e == NULL)
    return;
  i = (size_t)(e - live);
  for (j = (i + 1) & live_mask; live[j].addr != 0; j = (j + 1) & live_mask) {
    size_t home = (size_t)uv_pprof__hash64(live[j].addr) & live_mask;
    /* live[j] may move to i only if i lies on its probe path home..j. */
    if (((j - home) & live_mask) >= ((j - i) & live_mask)) {
      live[i] = live[j];
      i = j;
    }
  }
  live[i].addr = 0;
  live_count--;
}

/* ---- recording --------------------------------------------------------- */

/* Called by the wrappers below after a successful init, with the wrapper's
 * return address `ra`: the stack kept starts at the frame that returns
 * there, the code that called the init. (How many frames backtrace()
 * reports above it is the unwinder's business: sanitizers intercept it.) */
static __attribute__((noinline)) void record(const void* handle, void* ra) {
  void* frames[UV_PPROF_TRACK_MAX_DEPTH + 4];
  int n;
  int i;
  uint64_t t;

  if (!tracking())
    return;
  n = backtrace(frames, (int)UV_PPROF_TRACK_MAX_DEPTH + 4);
  for (i = 0; i < n && i < 4 && frames[i] != ra; i++)
    ;
  if (i == n || i == 4) { /* not found: keep the caller alone */
    frames[0] = ra;
    i = 0;
    n = 1;
  }
  if (n - i > (int)UV_PPROF_TRACK_MAX_DEPTH)
    n = i + (int)UV_PPROF_TRACK_MAX_DEPTH;
  t = now_ns();
  pthread_mutex_lock(&mu);
  live_put((uintptr_t)handle,
           intern((const uintptr_t*)(frames + i), (size_t)(n - i)), t);
  pthread_mutex_unlock(&mu);
}

static void forget(const void* handle) {
  if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED))
    return;
  pthread_mutex_lock(&mu);
  live_remove((uintptr_t)handle);
  pthread_mutex_unlock(&mu);
}

/* ---- the API of track.h ------------------------------------------------ */

EXPORT int uv_pprof_track_enable_v1(void);
EXPORT void uv_pprof_track_lookup_v1(const uintptr_t* addrs, size_t n,
                                     uv_pprof_track_info_t* out);
EXPORT size_t uv_pprof_track_stack_v1(uint32_t id, uintptr_t* out, size_t max);

int uv_pprof_track_enable_v1(void) {
  pthread_once(&env_once, read_env);
  __atomic_store_n(&enabled, 1, __ATOMIC_RELAXED);
  return 0;
}

void uv_pprof_track_lookup_v1(const uintptr_t* addrs, size_t n,
                              uv_pprof_track_info_t* out) {
  size_t i;

  pthread_mutex_lock(&mu);
  for (i = 0; i < n; i++) {
    const live_t* e = live_find(addrs[i]);
    memset(&out[i], 0, sizeof(out[i]));
    if (e == NULL)
      continue;
    out[i].known = 1;
    out[i].stack = e->stack;
    out[i].seq = e->seq;
    out[i].init_ns = e->init_ns;
  }
  pthread_mutex_unlock(&mu);
}

size_t uv_pprof_track_stack_v1(uint32_t id, uintptr_t* out, size_t max) {
  size_t depth = 0;

  pthread_mutex_lock(&mu);
  if (id != 0 && id <= nstacks) {
    const stack_t_* s = &stacks[id - 1];
    depth = s->depth;
    memcpy(out, pcs + s->off, (depth < max ? depth : max) * sizeof(*out));
  }
  pthread_mutex_unlock(&mu);
  return depth;
}

/* ---- the wrappers ------------------------------------------------------ */

#ifdef UV_PPROF_TRACK_WRAP
/* ld --wrap=NAME sends the program's calls of NAME here and __real_NAME to
 * libuv's. */
#define WRAPPER(name) __wrap_##name
#define DECLARE_REAL(ret, name, params) \
  ret __real_##name params;             \
  typedef ret(*name##_fn) params;
#define REAL(name) (&__real_##name)
#else
/* Defined under libuv's own names; the real function is the one the caller
 * would have reached without us (real.h). When no libuv has it, the
 * wrapper does nothing and answers UV_ENOSYS: never abort(). */
#define WRAPPER(name) name
#define DECLARE_REAL(ret, name, params) typedef ret(*name##_fn) params;
#define REAL(name)                                        \
  ((name##_fn)uv_pprof__real(#name, (void*)WRAPPER(name), \
                             __builtin_return_address(0)))
#endif

/* One wrapper per init function taking (loop, handle, more...). */
#define INIT_WRAPPER(name, params, args)           \
  DECLARE_REAL(int, name, params)                  \
  EXPORT int WRAPPER(name) params;                 \
  int WRAPPER(name) params {                       \
    name##_fn real = REAL(name);                   \
    int rc = real != NULL ? real args : UV_ENOSYS; \
    if (rc == 0)                                   \
      record(handle, __builtin_return_address(0)); \
    return rc;                                     \
  }

INIT_WRAPPER(uv_timer_init, (uv_loop_t * loop, uv_timer_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_prepare_init, (uv_loop_t * loop, uv_prepare_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_check_init, (uv_loop_t * loop, uv_check_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_idle_init, (uv_loop_t * loop, uv_idle_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_async_init,
             (uv_loop_t * loop, uv_async_t* handle, uv_async_cb cb),
             (loop, handle, cb))
INIT_WRAPPER(uv_tcp_init, (uv_loop_t * loop, uv_tcp_t* handle), (loop, handle))
INIT_WRAPPER(uv_tcp_init_ex,
             (uv_loop_t * loop, uv_tcp_t* handle, unsigned int flags),
             (loop, handle, flags))
INIT_WRAPPER(uv_udp_init, (uv_loop_t * loop, uv_udp_t* handle), (loop, handle))
INIT_WRAPPER(uv_udp_init_ex,
             (uv_loop_t * loop, uv_udp_t* handle, unsigned int flags),
             (loop, handle, flags))
INIT_WRAPPER(uv_pipe_init, (uv_loop_t * loop, uv_pipe_t* handle, int ipc),
             (loop, handle, ipc))
INIT_WRAPPER(uv_tty_init,
             (uv_loop_t * loop, uv_tty_t* handle, uv_file fd, int readable),
             (loop, handle, fd, readable))
INIT_WRAPPER(uv_poll_init, (uv_loop_t * loop, uv_poll_t* handle, int fd),
             (loop, handle, fd))
INIT_WRAPPER(uv_poll_init_socket,
             (uv_loop_t * loop, uv_poll_t* handle, uv_os_sock_t socket),
             (loop, handle, socket))
INIT_WRAPPER(uv_signal_init, (uv_loop_t * loop, uv_signal_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_fs_event_init, (uv_loop_t * loop, uv_fs_event_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_fs_poll_init, (uv_loop_t * loop, uv_fs_poll_t* handle),
             (loop, handle))
INIT_WRAPPER(uv_spawn,
             (uv_loop_t * loop, uv_process_t* handle,
              const uv_process_options_t* options),
             (loop, handle, options))

DECLARE_REAL(void, uv_close, (uv_handle_t * handle, uv_close_cb close_cb))
EXPORT void WRAPPER(uv_close)(uv_handle_t* handle, uv_close_cb close_cb);
void WRAPPER(uv_close)(uv_handle_t* handle, uv_close_cb close_cb) {
  uv_close_fn real = REAL(uv_close);

  forget(handle);
  if (real != NULL)
    real(handle, close_cb);
}

/* uv_pprof leaves a loop before the host closes it (track.h), so that a
 * host that never calls uv_pprof_stop() closes its loop cleanly and leaves
 * no socket behind. libuv_pprof is found when it is loaded; linked
 * statically, through the weak reference. */
EXPORT int uv_pprof_release_loop_v1(void* loop) __attribute__((weak));

DECLARE_REAL(int, uv_loop_close, (uv_loop_t * loop))
EXPORT int WRAPPER(uv_loop_close)(uv_loop_t* loop);
int WRAPPER(uv_loop_close)(uv_loop_t* loop) {
  uv_loop_close_fn real = REAL(uv_loop_close);
  uv_pprof_release_loop_fn release = uv_pprof_release_loop_v1;

  if (release == NULL)
    *(void**)&release = dlsym(RTLD_DEFAULT, UV_PPROF_RELEASE_LOOP_SYM);
  if (release != NULL)
    release(loop);
  return real != NULL ? real(loop) : UV_ENOSYS;
}
