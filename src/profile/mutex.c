/* The mutex profile: lock contention in the host, sampled by
 * libuv_pprof_track's pthread_mutex_lock (src/track/mutex.c) when
 * UV_PPROF_MUTEX (or options.mutex_rate) asks for it; found here with
 * dlsym(RTLD_DEFAULT) at each snapshot. Go's types; both values multiplied
 * by the sampling rate, as Go scales its mutex profile. The stacks are the
 * waiters' (Go's are the unlockers'). Without the tracker, or with
 * sampling off, a valid empty profile that says why. */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"
#include "track/track.h"

typedef struct {
  int tracker;   /* libuv_pprof_track is in the process */
  unsigned rate; /* its sampling rate now; 0: off */
  uv_pprof_track_mutex_row_t* rows;
  size_t count;
} snap_t;

typedef struct {
  uv_pprof_track_mutex_rate_fn rate;
  uv_pprof_track_mutex_rows_fn rows;
} tracker_t;

static int find_tracker(tracker_t* t) {
  *(void**)&t->rate = dlsym(RTLD_DEFAULT, UV_PPROF_TRACK_MUTEX_RATE_SYM);
  *(void**)&t->rows = dlsym(RTLD_DEFAULT, UV_PPROF_TRACK_MUTEX_ROWS_SYM);
  return t->rate != NULL && t->rows != NULL;
}

int uv_pprof__mutex_set_rate(unsigned rate) {
  tracker_t t;

  if (!find_tracker(&t))
    return UV_ENOENT;
  t.rate((int)(rate > INT32_MAX ? INT32_MAX : rate));
  return 0;
}

static int64_t count_rows(void) {
  tracker_t t;

  return find_tracker(&t) ? (int64_t)t.rows(NULL, 0) : 0;
}

static int take_snapshot(void** out) {
  snap_t* s = calloc(1, sizeof(*s));
  tracker_t t;
  size_t n;

  *out = NULL;
  if (s == NULL)
    return UV_ENOMEM;
  if (find_tracker(&t)) {
    s->tracker = 1;
    s->rate = t.rate(-1);
    /* Rows only grow: ask, allocate, ask again until they fit. */
    for (n = t.rows(NULL, 0) + 16;; n *= 2) {
      free(s->rows);
      s->rows = malloc(n * sizeof(*s->rows));
      if (s->rows == NULL) {
        free(s);
        return UV_ENOMEM;
      }
      s->count = t.rows(s->rows, n);
      if (s->count <= n)
        break;
    }
  }
  *out = s;
  return 0;
}

static void free_snapshot(void* p) {
  snap_t* s = p;

  if (s != NULL)
    free(s->rows);
  free(s);
}

static void set_types(uv_pprof__builder_t* b) {
  uv_pprof__builder_period(b, "contentions", "count", 1);
  uv_pprof__builder_sample_type(b, "contentions", "count");
  uv_pprof__builder_sample_type(b, "delay", "nanoseconds");
}

static const char* why_empty(const snap_t* s) {
  if (!s->tracker)
    return "uv_pprof: lock contention is not sampled: it needs "
           "libuv_pprof_track in the process (LD_PRELOAD="
           "libuv_pprof_track.so, or linked) and UV_PPROF_MUTEX=<rate>";
  if (s->rate == 0)
    return "uv_pprof: lock contention is not sampled: UV_PPROF_MUTEX is "
           "unset or 0";
  return NULL;
}

/* Go scales both values by the rate (1 in `rate` contentions recorded). */
static void emit_rows(const void* p, uv_pprof__builder_t* b, int sign) {
  const snap_t* s = p;
  uint64_t locs[UV_PPROF_TRACK_MAX_DEPTH];
  int64_t scale = s->rate > 0 ? (int64_t)s->rate : 1;
  char text[96];
  size_t i;
  size_t j;

  for (i = 0; i < s->count; i++) {
    const uv_pprof_track_mutex_row_t* r = &s->rows[i];
    int64_t values[2] = {(int64_t)r->count * scale * sign,
                         (int64_t)r->delay_ns * scale * sign};
    for (j = 0; j < r->depth; j++)
      locs[j] = uv_pprof__builder_location(b, r->pcs[j] - 1);
    uv_pprof__builder_sample(b, locs, r->depth, values, NULL, 0);
  }
  if (sign < 0)
    return;
  if (why_empty(s) != NULL) {
    uv_pprof__builder_comment(b, why_empty(s));
  } else {
    snprintf(text, sizeof(text),
             "uv_pprof: 1 in %u contended pthread_mutex_lock calls sampled; "
             "the waiters' stacks",
             s->rate);
    uv_pprof__builder_comment(b, text);
  }
}

static int by_delay(const void* a, const void* b) {
  const uv_pprof_track_mutex_row_t* x = a;
  const uv_pprof_track_mutex_row_t* y = b;

  if (x->delay_ns != y->delay_ns)
    return x->delay_ns > y->delay_ns ? -1 : 1;
  return 0;
}

/* Go's legacy layout, its raw (unscaled) numbers and the sampling period,
 * which pprof's parser multiplies back in: exactly Go's empty text when
 * nothing is sampled (the proto's comment says why). */
static int write_text(const void* p, int debug, uv_pprof__buf_t* out) {
  const snap_t* s = p;
  size_t i;
  size_t j;
  int rc = 0;

  if (s->count > 1)
    qsort(s->rows, s->count, sizeof(*s->rows), by_delay);
  uv_pprof__buf_printf(out,
                       "--- mutex:\ncycles/second=1000000000\n"
                       "sampling period=%u\n",
                       s->rate);
  for (i = 0; i < s->count && rc == 0; i++) {
    const uv_pprof_track_mutex_row_t* r = &s->rows[i];
    uv_pprof__buf_printf(out, "%" PRIu64 " %" PRIu64 " @", r->delay_ns,
                         r->count);
    for (j = 0; j < r->depth; j++)
      uv_pprof__buf_printf(out, " 0x%" PRIxPTR, r->pcs[j]);
    uv_pprof__buf_printf(out, "\n");
    rc = uv_pprof__text_frames(r->pcs, r->depth, out);
    uv_pprof__buf_printf(out, "\n");
  }
  if (rc == 0 && out->oom)
    rc = UV_ENOMEM;
  return rc;
}

const uv_pprof__profile_t uv_pprof__profile_mutex = {
    .name = "mutex",
    .count = count_rows,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_rows,
    .text = write_text,
};

const uv_pprof__route_t uv_pprof__route_mutex = {
    .name = "mutex",
    .path = "/debug/pprof/mutex",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_mutex,
    .description =
        "Lock contention in the host: sampled waits in pthread_mutex_lock "
        "(and uv_mutex_lock), with the waiters' stacks. Needs "
        "libuv_pprof_track and UV_PPROF_MUTEX=<rate>",
    .flags = UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS,
};
