/* The registry of the loops uv_pprof watches: each one's handle walks
 * (handles.c), its idle-time measurement for /metrics, and its stall
 * detection (stall.c). The serving loop
 * and the others alike; which one serves is the API's business
 * (uv_pprof.c). */
#include <stdio.h>
#include <stdlib.h>

#include "loop.h"

typedef struct entry_s {
  uv_loop_t* loop;
  int serving;
  uv_pprof__handles_loop_t* handles;
  uv_pprof__stall_loop_t* stall; /* NULL: stall detection off */
  uint64_t measured_since;       /* uv_hrtime() when idle time was turned on */
  uint64_t idle_at_start;        /* uv_metrics_idle_time() then */
  struct entry_s* next;
} entry_t;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static entry_t* entries;

static void init_once(void) {
  if (uv_mutex_init(&mu) != 0)
    abort();
}

static entry_t** find(uv_loop_t* loop) {
  entry_t** e;

  for (e = &entries; *e != NULL; e = &(*e)->next)
    if ((*e)->loop == loop)
      return e;
  return NULL;
}

/* Loop utilisation for /metrics: libuv measures a loop's idle time only once
 * UV_METRICS_IDLE_TIME is configured, which must happen on the loop's thread
 * (uv_pprof_start's). It changes no callback's order or timing: libuv then
 * polls once without blocking before it blocks, and takes the time and a
 * mutex around each blocking poll (bench/README.md). */
static void measure_idle_time(entry_t* e) {
  uv_loop_configure(e->loop, UV_METRICS_IDLE_TIME);
  e->measured_since = uv_hrtime();
  e->idle_at_start = uv_metrics_idle_time(e->loop);
}

int uv_pprof__loops_add(uv_loop_t* loop, int serving, unsigned stall_ms,
                        unsigned stall_report_s) {
  entry_t* e;
  int err;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  if (find(loop) != NULL) {
    uv_mutex_unlock(&mu);
    return UV_EBUSY;
  }
  e = calloc(1, sizeof(*e));
  err = e != NULL ? uv_pprof__handles_attach(loop, !serving, &e->handles)
                  : UV_ENOMEM;
  if (err != 0) {
    uv_mutex_unlock(&mu);
    free(e);
    return err;
  }
  e->loop = loop;
  e->serving = serving;
  measure_idle_time(e);
  /* After idle time is measured: the hooks split iterations into busy
   * and waiting with it. Without stall detection uv_pprof still serves. */
  err = uv_pprof__stall_attach(loop, stall_ms, stall_report_s, &e->stall);
  if (err != 0)
    fprintf(stderr, "uv_pprof: stall detection is off: %s\n", uv_strerror(err));
  e->next = entries;
  __atomic_store_n(&entries, e, __ATOMIC_RELEASE);
  uv_mutex_unlock(&mu);
  return 0;
}

int uv_pprof__loops_remove(uv_loop_t* loop) {
  entry_t** link;
  entry_t* e;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  link = find(loop);
  if (link == NULL) {
    uv_mutex_unlock(&mu);
    return UV_ENOENT;
  }
  e = *link;
  __atomic_store_n(link, e->next, __ATOMIC_RELEASE);
  uv_mutex_unlock(&mu);
  uv_pprof__stall_detach(e->stall);
  uv_pprof__handles_detach(e->handles);
  free(e);
  return 0;
}

int uv_pprof__loops_registered(uv_loop_t* loop) {
  int found;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  found = find(loop) != NULL;
  uv_mutex_unlock(&mu);
  return found;
}

void uv_pprof__loops_fork_prepare(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
}

void uv_pprof__loops_fork_parent(void) {
  uv_mutex_unlock(&mu);
}

void uv_pprof__loops_fork_child(void) {
  uv_mutex_init(&mu); /* anew: see uv_pprof__worker_fork_child */
}

int uv_pprof__loops_any(void) {
  return __atomic_load_n(&entries, __ATOMIC_ACQUIRE) != NULL;
}

size_t uv_pprof__loops_info(uv_pprof__loop_info_t* out, size_t max) {
  entry_t* e;
  size_t n = 0;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  for (e = entries; e != NULL; e = e->next, n++) {
    uv_pprof__loop_info_t* li = &out[n];
    if (n >= max)
      continue;
    li->loop = (uintptr_t)e->loop;
    li->serving = e->serving;
    li->measured_since = e->measured_since;
    li->idle_at_start = e->idle_at_start;
  }
  uv_mutex_unlock(&mu);
  return n;
}
