/* The CPU profile, /debug/pprof/profile?seconds=N. Every request is a window
 * of its own over the one shared sampler (sampler.c), so concurrent requests
 * all succeed. The loop thread only parses the request and runs two unref'd
 * timers per window: its end, and a tick that has the worker drain the
 * sampler when a drain is due. Opening, draining, closing and encoding run on
 * the worker; each sample carries its time, so each window takes exactly those
 * inside it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define TICK_MS 100

enum { OPENING, OPEN, CLOSING, CLOSED };

typedef struct window_s {
  uv_pprof__request_t* req;
  uv_pprof__job_t job; /* open, then close */
  uv_pprof__job_t tick_job;
  uv_timer_t end_timer;
  uv_timer_t tick;
  long long seconds;
  int state;
  int ticking;   /* tick_job is with the worker */
  int refs;      /* atomic: timers not closed yet + jobs not done yet */
  int closing;   /* the timers are being closed */
  int abandoned; /* atomic: the client has gone */
  int hurried;   /* the client sends no more: the window ends at once */
  int opened;    /* the open job took a sampler reference */
  int closed;    /* the sampler reference is given back */
  /* The worker's, under `mu`; `end` is set by the loop (atomic). */
  int64_t start;
  int64_t end; /* INT64_MAX while open */
  uint64_t lost0;
  uv_pprof__builder_t* builder;
  struct window_s* next;
  struct window_s* next_dropped; /* in `dropped` */
} window_t;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;     /* the open windows and what drains into them */
static window_t* windows; /* open on the sampler, under `mu` */
static int nwindows;      /* atomic: requests holding a window slot */
/* Atomic stack of windows of a stopped server still to take off the
 * sampler: the loop thread never waits for `mu`, which a drain holds for as
 * long as its unwinding takes (tens of ms when libdw starts cold), so it
 * leaves them to whoever holds `mu` (see unlock). */
static window_t* dropped;

static void init_once(void) {
  if (uv_mutex_init(&mu) != 0)
    abort();
}

long long uv_pprof__cpu_seconds(const char* query) {
  char v[256];
  const char* digits;
  long long n;

  if (!uv_pprof__query_get(query, "seconds", v, sizeof(v)))
    return UV_PPROF__CPU_DEFAULT_SECONDS;
  /* strconv.ParseInt(s, 10, 64): a sign, then digits and nothing else
   * (strtoll alone would also take leading spaces). */
  digits = v + (v[0] == '+' || v[0] == '-');
  if (*digits == '\0' || digits[strspn(digits, "0123456789")] != '\0')
    return UV_PPROF__CPU_DEFAULT_SECONDS;
  errno = 0;
  n = strtoll(v, NULL, 10);
  return errno != 0 || n <= 0 ? UV_PPROF__CPU_DEFAULT_SECONDS : n;
}

/* ---- the worker's side, under `mu` --------------------------------------- */

static void add_to(window_t* w, const uv_pprof__cpu_sample_t* s) {
  uint64_t locs[UV_PPROF__CPU_MAX_FRAMES];
  int64_t values[2];
  uv_pprof__label_t labels[2];
  char tid[16];
  size_t nlabels = 0;
  size_t i;

  for (i = 0; i < s->npcs; i++)
    locs[i] = uv_pprof__builder_location(w->builder, s->pcs[i]);
  values[0] = s->weight;
  values[1] = s->weight * UV_PPROF__CPU_PERIOD_NS;
  memset(labels, 0, sizeof(labels));
  snprintf(tid, sizeof(tid), "%d", s->tid);
  if (s->thread[0] != '\0') {
    labels[nlabels].key = "thread";
    labels[nlabels++].str = s->thread;
  }
  labels[nlabels].key = "tid";
  labels[nlabels++].str = tid;
  uv_pprof__builder_sample(w->builder, locs, s->npcs, values, labels, nlabels);
}

static void on_sample(const uv_pprof__cpu_sample_t* s, void* arg) {
  window_t* w;

  for (w = windows; w != NULL; w = w->next)
    if (s->time >= w->start &&
        s->time < __atomic_load_n(&w->end, __ATOMIC_RELAXED))
      add_to(w, s);
}

static void unlink_window(window_t* w) {
  window_t** p;

  for (p = &windows; *p != NULL; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      return;
    }
}

static void release(window_t* w);

/* Takes w off the sampler without a last drain (its answer is dropped):
 * unlinked, its reference given back, its builder freed. Under `mu`. */
static void drop_locked(window_t* w) {
  unlink_window(w);
  uv_pprof__sampler_release();
  uv_pprof__builder_free(w->builder);
  w->builder = NULL;
  w->closed = 1;
}

/* Releases `mu`, having first dropped the windows in `dropped`. One pushed
 * while this runs is dropped by the next holder of `mu`, or here again when
 * `mu` is free by then (its pusher found it held). */
static void unlock(void) {
  for (;;) {
    window_t* list = __atomic_exchange_n(&dropped, NULL, __ATOMIC_ACQ_REL);
    window_t* w;

    for (w = list; w != NULL; w = w->next_dropped)
      drop_locked(w);
    uv_mutex_unlock(&mu);
    while (list != NULL) {
      w = list;
      list = list->next_dropped;
      release(w);
    }
    if (__atomic_load_n(&dropped, __ATOMIC_ACQUIRE) == NULL ||
        uv_mutex_trylock(&mu) != 0)
      return;
  }
}

/* Drops w from the sampler now if `mu` is free, else leaves it to the
 * holder of `mu`: never waits. Any thread. */
static void drop(window_t* w) {
  __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
  w->next_dropped = __atomic_load_n(&dropped, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(&dropped, &w->next_dropped, w, 1,
                                      __ATOMIC_RELEASE, __ATOMIC_RELAXED))
    ;
  if (uv_mutex_trylock(&mu) == 0)
    unlock();
}

static void work_open(uv_pprof__job_t* job) {
  window_t* w = job->data;
  uv_pprof__sampler_stats_t st;
  char msg[128];
  int err;

  w->builder = uv_pprof__builder_new();
  if (w->builder == NULL) {
    uv_pprof__error(w->req, 500,
                    "Could not enable CPU profiling: out of "
                    "memory");
    return;
  }
  uv_pprof__builder_period(w->builder, "cpu", "nanoseconds",
                           UV_PPROF__CPU_PERIOD_NS);
  uv_pprof__builder_sample_type(w->builder, "samples", "count");
  uv_pprof__builder_sample_type(w->builder, "cpu", "nanoseconds");
  uv_mutex_lock(&mu);
  err = uv_pprof__sampler_acquire();
  if (err == 0) {
    uv_pprof__sampler_stats(&st);
    w->lost0 = st.lost;
    w->start = uv_pprof__sampler_now();
    w->next = windows;
    windows = w;
    w->opened = 1;
  }
  unlock();
  if (err != 0) {
    snprintf(msg, sizeof(msg), "Could not enable CPU profiling: %s",
             uv_strerror(err));
    uv_pprof__error(w->req, 500, msg);
    uv_pprof__builder_free(w->builder);
    w->builder = NULL;
  }
}

static void work_tick(uv_pprof__job_t* job) {
  uv_mutex_lock(&mu);
  uv_pprof__sampler_drain(on_sample, NULL);
  unlock();
}

/* Takes the window's last samples off the sampler and lets go of it. The
 * worker, in the close job. */
static uint64_t close_on_sampler(window_t* w) {
  uv_pprof__sampler_stats_t st;

  uv_mutex_lock(&mu);
  uv_pprof__sampler_drain(on_sample, NULL);
  unlink_window(w);
  uv_pprof__sampler_stats(&st);
  uv_pprof__sampler_release();
  w->closed = 1;
  unlock();
  return st.lost - w->lost0;
}

static void work_close(uv_pprof__job_t* job) {
  window_t* w = job->data;
  uv_pprof__response_t* res = &w->req->res;
  uint64_t lost = close_on_sampler(w);
  char text[128];
  int err;

  if (!__atomic_load_n(&w->abandoned, __ATOMIC_RELAXED)) {
    uv_pprof__builder_duration(
        w->builder, __atomic_load_n(&w->end, __ATOMIC_RELAXED) - w->start);
    if (lost != 0) {
      snprintf(text, sizeof(text),
               "uv_pprof: %llu samples lost (the sample buffer was full)",
               (unsigned long long)lost);
      uv_pprof__builder_comment(w->builder, text);
    }
    res->status = 200;
    res->content_type = "application/octet-stream";
    snprintf(res->disposition, sizeof(res->disposition), "profile");
    err = uv_pprof__builder_encode(w->builder, &res->body);
    if (err != 0) {
      snprintf(text, sizeof(text), "could not encode the CPU profile: %s",
               uv_strerror(err));
      uv_pprof__error(w->req, 500, text);
    }
  }
  uv_pprof__builder_free(w->builder);
  w->builder = NULL;
}

/* ---- the loop's side ---------------------------------------------------- */

/* Drops a reference: the timers (one each, until closed) and each job with
 * the worker hold one. The last one finishes the request, which is memory
 * only when it comes from a job done on the worker (the server stopped, so
 * the client is gone). Any thread. */
static void release(window_t* w) {
  if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  __atomic_fetch_sub(&nwindows, 1, __ATOMIC_RELAXED);
  uv_pprof__request_finish(w->req);
  free(w);
}

static void on_handle_close(uv_handle_t* handle) {
  uv_pprof__handle_disown(handle);
  release(handle->data);
}

/* Closes the timers (once). Loop thread. */
static void close_timers(window_t* w) {
  if (w->closing)
    return;
  w->closing = 1;
  uv_close((uv_handle_t*)&w->end_timer, on_handle_close);
  uv_close((uv_handle_t*)&w->tick, on_handle_close);
}

/* When the worker cannot run the close job (uv_pprof is stopping): the
 * window leaves the sampler without waiting for its lock, and its answer is
 * an error nobody will read. Any thread. */
static void close_here(window_t* w) {
  if (w->opened && !w->closed)
    drop(w);
  if (w->req->res.status == 0)
    uv_pprof__error(w->req, 500, "uv_pprof is stopping");
}

static void on_closed(uv_pprof__job_t* job, int cancelled) {
  window_t* w = job->data;

  if (cancelled) {
    close_here(w); /* its timers were closed when it was abandoned */
  } else {
    w->state = CLOSED;
    close_timers(w);
  }
  release(w);
}

static int submit(window_t* w, uv_pprof__job_t* job) {
  int err;

  __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
  err = uv_pprof__worker_submit(w->req->worker, job);
  if (err != 0)
    __atomic_sub_fetch(&w->refs, 1, __ATOMIC_RELAXED);
  return err;
}

static void close_window(window_t* w) {
  uv_timer_stop(&w->end_timer);
  uv_timer_stop(&w->tick);
  __atomic_store_n(&w->end, uv_pprof__sampler_now(), __ATOMIC_RELAXED);
  w->state = CLOSING;
  w->job.work = work_close;
  w->job.done = on_closed;
  if (submit(w, &w->job) != 0) {
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
    on_closed(&w->job, 1);
    close_timers(w);
  }
}

/* A uv timer may fire up to a millisecond early (the loop's clock has
 * millisecond steps): the window lasts at least what was asked. */
static void on_end(uv_timer_t* timer) {
  window_t* w = timer->data;
  int64_t left = w->start + w->seconds * 1000000000 - uv_pprof__sampler_now();

  if (left > 0) {
    uv_timer_start(&w->end_timer, on_end, (uint64_t)(left / 1000000 + 1), 0);
    return;
  }
  close_window(w);
}

static void on_ticked(uv_pprof__job_t* job, int cancelled) {
  window_t* w = job->data;

  w->ticking = 0;
  release(w);
}

static void on_tick(uv_timer_t* timer) {
  window_t* w = timer->data;

  if (w->ticking || !uv_pprof__sampler_due())
    return;
  w->ticking = 1;
  if (submit(w, &w->tick_job) != 0)
    w->ticking = 0;
}

static void on_opened(uv_pprof__job_t* job, int cancelled) {
  window_t* w = job->data;

  if (cancelled || !w->opened) {
    if (cancelled)
      close_here(w);
    w->state = CLOSED;
    if (!cancelled)
      close_timers(w);
  } else if (__atomic_load_n(&w->abandoned, __ATOMIC_RELAXED) || w->hurried) {
    w->state = OPEN;
    close_window(w);
  } else {
    w->state = OPEN;
    uv_update_time(w->req->loop);
    uv_timer_start(&w->end_timer, on_end, (uint64_t)w->seconds * 1000, 0);
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
  }
  release(w);
}

static void init_timer(window_t* w, uv_timer_t* timer) {
  uv_timer_init(w->req->loop, timer);
  uv_pprof__handle_own(timer);
  uv_unref((uv_handle_t*)timer);
  timer->data = w;
  w->refs++;
}

/* The client went away (or uv_pprof is stopping): the window closes now,
 * and its timers at once, so that nothing of it is left on the loop
 * whatever the worker is doing. */
static void abandon(uv_pprof__request_t* req) {
  window_t* w = req->route_data;

  __atomic_store_n(&w->abandoned, 1, __ATOMIC_RELAXED);
  if (w->state == OPEN)
    close_window(w);
  /* OPENING: on_opened closes it; CLOSING and CLOSED: it is closing. */
  close_timers(w);
}

/* The client sends no more (it half-closed): as Go's handler when the
 * request's context ends, the window ends now and its profile is sent. */
static void hurry(uv_pprof__request_t* req) {
  window_t* w = req->route_data;

  w->hurried = 1;
  if (w->state == OPEN)
    close_window(w);
}

static void serve(uv_pprof__request_t* req) {
  long long seconds = uv_pprof__cpu_seconds(req->query);
  window_t* w;
  char msg[128];

  uv_once(&once, init_once);
  if (seconds > UV_PPROF__CPU_MAX_SECONDS) {
    snprintf(msg, sizeof(msg),
             "profile duration exceeds the limit of %d seconds",
             UV_PPROF__CPU_MAX_SECONDS);
    uv_pprof__request_fail(req, 400, msg);
    return;
  }
  if (__atomic_fetch_add(&nwindows, 1, __ATOMIC_RELAXED) >=
      UV_PPROF__CPU_MAX_WINDOWS) {
    __atomic_fetch_sub(&nwindows, 1, __ATOMIC_RELAXED);
    snprintf(msg, sizeof(msg),
             "Could not enable CPU profiling: %d CPU profiles are already "
             "running, the most uv_pprof takes at once",
             UV_PPROF__CPU_MAX_WINDOWS);
    uv_pprof__request_fail(req, 503, msg);
    return;
  }
  w = calloc(1, sizeof(*w));
  if (w == NULL) {
    __atomic_fetch_sub(&nwindows, 1, __ATOMIC_RELAXED);
    uv_pprof__request_fail(req, 500,
                           "Could not enable CPU profiling: out of "
                           "memory");
    return;
  }
  w->req = req;
  w->seconds = seconds;
  w->end = INT64_MAX;
  w->job.data = w;
  w->job.work = work_open;
  w->job.done = on_opened;
  w->tick_job.data = w;
  w->tick_job.work = work_tick;
  w->tick_job.done = on_ticked;
  init_timer(w, &w->end_timer);
  init_timer(w, &w->tick);
  req->route_data = w;
  req->abandon = abandon;
  req->hurry = hurry;
  if (submit(w, &w->job) != 0) {
    uv_pprof__error(req, 500,
                    "Could not enable CPU profiling: uv_pprof's "
                    "worker did not start");
    w->state = CLOSED;
    close_timers(w);
  }
}

const uv_pprof__route_t uv_pprof__route_profile = {
    .name = "profile",
    .path = "/debug/pprof/profile",
    .serve = serve,
    .description =
        "CPU profile. You can specify the duration in the "
        "seconds GET parameter. After you get the profile file, "
        "use the go tool pprof command to investigate the "
        "profile.",
    .flags = UV_PPROF__ROUTE_SECONDS | UV_PPROF__ROUTE_PROTO,
};
