/* /metrics in Prometheus' text exposition format (version 0.0.4): the
 * allocator's figures, RSS, handles by type and loop, each loop's active
 * requests and utilisation, and uv_pprof's own answers by endpoint (a
 * counter by status class, a histogram of durations). The answers are
 * counted here as the server writes them. The loop thread only walks the
 * serving loop (src/handles.c) and reads its request count; everything else
 * is read and formatted on the worker. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define MAX_LOOPS 64

/* The label values of `endpoint` are the routes' names, in the table's
 * order, then "other" for the rest (404s, redirects). */
#define NENDPOINTS (UV_PPROF__MAX_ROUTES + 1)
#define OTHER UV_PPROF__MAX_ROUTES

/* Upper bounds (le) of the duration buckets, in seconds; +Inf follows. A
 * CPU profile or a delta lasts its window. */
static const double bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                1,     5,     10,   30,   60,  300};
#define NBUCKETS (UV_PPROF__ARRAY_SIZE(bounds) + 1)

/* Written by the serving loop's thread, read by the worker: relaxed atomics.
 * Not cumulative per bucket; the histogram is summed when rendered. */
static uint64_t answers[NENDPOINTS][5]; /* by status class 1xx..5xx */
static uint64_t buckets[NENDPOINTS][NBUCKETS];
static uint64_t sum_ns[NENDPOINTS];

/* ---- accounting ---------------------------------------------------------- */

void uv_pprof__metrics_begin(uv_pprof__request_t* req) {
  req->start_ns = uv_hrtime();
}

/* The counters' index of req's endpoint. */
static size_t endpoint_of(const uv_pprof__request_t* req) {
  return req->route != NULL ? req->route_index : OTHER;
}

void uv_pprof__metrics_observe(const uv_pprof__request_t* req) {
  int class = req->res.status / 100;
  size_t ep = endpoint_of(req);
  uint64_t ns;
  size_t b;

  if (class < 1 || class > 5 || req->start_ns == 0)
    return;
  ns = uv_hrtime() - req->start_ns;
  for (b = 0; b < UV_PPROF__ARRAY_SIZE(bounds); b++)
    if ((double)ns <= bounds[b] * 1e9)
      break;
  __atomic_fetch_add(&answers[ep][class - 1], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&buckets[ep][b], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&sum_ns[ep], ns, __ATOMIC_RELAXED);
}

/* ---- rendering ----------------------------------------------------------- */

static void family(uv_pprof__buf_t* b, const char* name, const char* type,
                   const char* help) {
  uv_pprof__buf_printf(b, "# HELP uv_pprof_%s %s\n# TYPE uv_pprof_%s %s\n",
                       name, help, name, type);
}

static void gauge(uv_pprof__buf_t* b, const char* name, const char* help,
                  uint64_t v) {
  family(b, name, "gauge", help);
  uv_pprof__buf_printf(b, "uv_pprof_%s %" PRIu64 "\n", name, v);
}

static void counter(uv_pprof__buf_t* b, const char* name, const char* help,
                    uint64_t v) {
  family(b, name, "counter", help);
  uv_pprof__buf_printf(b, "uv_pprof_%s %" PRIu64 "\n", name, v);
}

/* A label value with \, " and newline escaped as the format wants. */
static void label_value(uv_pprof__buf_t* b, const char* s) {
  for (; *s != '\0'; s++) {
    if (*s == '\\' || *s == '"')
      uv_pprof__buf_printf(b, "\\%c", *s);
    else if (*s == '\n')
      uv_pprof__buf_printf(b, "\\n");
    else
      uv_pprof__buf_append(b, s, 1);
  }
}

static void render_allocator(uv_pprof__buf_t* b) {
  static const char* const kinds[] = {"jemalloc", "glibc", "other"};
  uv_pprof__memstat_t m;
  const uint64_t* je;

  uv_pprof__memstat_read(&m);
  je = m.je.value;
  family(b, "allocator_info", "gauge",
         "The allocator behind malloc (jemalloc, glibc, or other: no "
         "figures), the object defining malloc, and jemalloc's version.");
  uv_pprof__buf_printf(b, "uv_pprof_allocator_info{allocator=\"%s\",object=\"",
                       kinds[m.kind]);
  label_value(b, m.object);
  uv_pprof__buf_printf(b, "\",version=\"");
  label_value(b, m.kind == UV_PPROF__ALLOC_JEMALLOC && m.je.version != NULL
                     ? m.je.version
                     : "");
  uv_pprof__buf_printf(b, "\"} 1\n");
  if (m.kind == UV_PPROF__ALLOC_JEMALLOC) {
    gauge(b, "jemalloc_allocated_bytes",
          "jemalloc stats.allocated: bytes in live allocations.",
          je[UV_PPROF__JE_ALLOCATED]);
    gauge(b, "jemalloc_active_bytes",
          "jemalloc stats.active: bytes in active pages.",
          je[UV_PPROF__JE_ACTIVE]);
    gauge(b, "jemalloc_metadata_bytes",
          "jemalloc stats.metadata: bytes of jemalloc's own metadata.",
          je[UV_PPROF__JE_METADATA]);
    gauge(b, "jemalloc_resident_bytes",
          "jemalloc stats.resident: bytes in resident data pages.",
          je[UV_PPROF__JE_RESIDENT]);
    gauge(b, "jemalloc_mapped_bytes",
          "jemalloc stats.mapped: bytes in active extents.",
          je[UV_PPROF__JE_MAPPED]);
    gauge(b, "jemalloc_retained_bytes",
          "jemalloc stats.retained: bytes kept mapped but returned to the "
          "system (not in mapped).",
          je[UV_PPROF__JE_RETAINED]);
    counter(b, "jemalloc_mallocs_total",
            "Allocations counted at jemalloc's arenas (small + large "
            "nmalloc).",
            je[UV_PPROF__JE_SMALL_NMALLOC] + je[UV_PPROF__JE_LARGE_NMALLOC]);
    counter(b, "jemalloc_frees_total",
            "Deallocations counted at jemalloc's arenas (small + large "
            "ndalloc).",
            je[UV_PPROF__JE_SMALL_NDALLOC] + je[UV_PPROF__JE_LARGE_NDALLOC]);
    if (m.je.have_total)
      counter(b, "jemalloc_allocated_bytes_total",
              "Bytes ever allocated: sum of nmalloc x size over jemalloc's "
              "size classes (Go's TotalAlloc).",
              m.je.total_bytes);
  } else if (m.kind == UV_PPROF__ALLOC_GLIBC) {
    gauge(b, "glibc_mallinfo2_arena_bytes",
          "glibc mallinfo2 arena: bytes obtained from the system with sbrk "
          "and mmap'd arenas.",
          m.mi.arena);
    gauge(b, "glibc_mallinfo2_ordblks",
          "glibc mallinfo2 ordblks: number of free chunks.", m.mi.ordblks);
    gauge(b, "glibc_mallinfo2_hblks",
          "glibc mallinfo2 hblks: number of chunks allocated with mmap.",
          m.mi.hblks);
    gauge(b, "glibc_mallinfo2_hblkhd_bytes",
          "glibc mallinfo2 hblkhd: bytes in chunks allocated with mmap.",
          m.mi.hblkhd);
    gauge(b, "glibc_mallinfo2_uordblks_bytes",
          "glibc mallinfo2 uordblks: bytes in allocated chunks (not "
          "mmap'd).",
          m.mi.uordblks);
    gauge(b, "glibc_mallinfo2_fordblks_bytes",
          "glibc mallinfo2 fordblks: bytes in free chunks.", m.mi.fordblks);
    gauge(b, "glibc_mallinfo2_keepcost_bytes",
          "glibc mallinfo2 keepcost: releasable bytes at the top of the "
          "heap.",
          m.mi.keepcost);
  }
  if (m.kind != UV_PPROF__ALLOC_OTHER) {
    gauge(b, "heap_alloc_bytes",
          "Go's HeapAlloc: jemalloc stats.allocated, or glibc uordblks + "
          "hblkhd (the timeline's heap_alloc_bytes).",
          m.heap_alloc);
    gauge(b, "heap_inuse_bytes",
          "Go's HeapInuse: jemalloc stats.active, or glibc uordblks + "
          "hblkhd (the timeline's heap_inuse_bytes).",
          m.heap_inuse);
  }
  gauge(b, "process_resident_memory_bytes",
        "Resident set size now (/proc/self/statm).", m.rss);
  gauge(b, "process_max_resident_memory_bytes",
        "Peak resident set size (getrusage ru_maxrss).", m.max_rss);
}

static void render_handles(uv_pprof__buf_t* b,
                           const uv_pprof__handles_snap_t* s) {
  uint64_t counts[UV_HANDLE_TYPE_MAX];
  size_t i = 0;
  int t;

  family(b, "handles", "gauge",
         "Live libuv handles by loop and type, as the goroutine profile "
         "counts them (uv_pprof's own excluded).");
  while (i < s->count) {
    uintptr_t loop = s->handles[i].loop;
    memset(counts, 0, sizeof(counts));
    for (; i < s->count && s->handles[i].loop == loop; i++)
      if (s->handles[i].type > 0 && s->handles[i].type < UV_HANDLE_TYPE_MAX)
        counts[s->handles[i].type]++;
    for (t = 1; t < UV_HANDLE_TYPE_MAX; t++)
      if (counts[t] != 0)
        uv_pprof__buf_printf(b,
                             "uv_pprof_handles{loop=\"0x%" PRIxPTR
                             "\",type=\"uv_%s_t\"} "
                             "%" PRIu64 "\n",
                             loop, uv_handle_type_name((uv_handle_type)t),
                             counts[t]);
  }
  family(b, "handles_missing_loops", "gauge",
         "Registered loops that did not come round to the handle walk "
         "within 2 s: their handles are not counted.");
  uv_pprof__buf_printf(b, "uv_pprof_handles_missing_loops %zu\n", s->nmissing);
}

/* Active requests and idle time come with the handle walk (s NULL: it
 * failed), read on each loop's own thread; only the loops that answered it
 * have them. */
static const uv_pprof__loop_reqs_t* answer_of(const uv_pprof__handles_snap_t* s,
                                              uintptr_t loop) {
  size_t j;

  for (j = 0; s != NULL && j < s->nanswered; j++)
    if (s->answered[j].loop == loop)
      return &s->answered[j];
  return NULL;
}

static void render_loops(uv_pprof__buf_t* b,
                         const uv_pprof__handles_snap_t* s) {
  uv_pprof__loop_info_t li[MAX_LOOPS];
  size_t n = uv_pprof__loops_info(li, MAX_LOOPS);
  const uv_pprof__loop_reqs_t* a;
  size_t i;

  if (n > MAX_LOOPS)
    n = MAX_LOOPS;
  family(b, "loop_active_requests", "gauge",
         "libuv requests in flight on the loop (uv_loop_t active_reqs: "
         "writes, fs and threadpool work, ...; uv_pprof's own writes "
         "included).");
  for (i = 0; i < n; i++)
    if ((a = answer_of(s, li[i].loop)) != NULL)
      uv_pprof__buf_printf(b,
                           "uv_pprof_loop_active_requests{loop=\"0x%" PRIxPTR
                           "\"} %" PRIu64 "\n",
                           li[i].loop, a->active_reqs);
  family(b, "loop_idle_seconds_total", "counter",
         "Time the loop spent waiting for events (uv_metrics_idle_time, "
         "measured from uv_pprof_start on that loop).");
  for (i = 0; i < n; i++)
    if ((a = answer_of(s, li[i].loop)) != NULL)
      uv_pprof__buf_printf(
          b, "uv_pprof_loop_idle_seconds_total{loop=\"0x%" PRIxPTR "\"} %.9f\n",
          li[i].loop, (double)a->idle_ns / 1e9);
  family(b, "loop_utilization_ratio", "gauge",
         "Share of the time since uv_pprof_start on that loop that the loop "
         "was not waiting for events (1 - idle / elapsed). For a recent "
         "figure: 1 - rate(uv_pprof_loop_idle_seconds_total[1m]).");
  for (i = 0; i < n; i++) {
    double elapsed;
    double idle;
    double u;
    if ((a = answer_of(s, li[i].loop)) == NULL)
      continue;
    elapsed = a->read_at > li[i].measured_since
                  ? (double)(a->read_at - li[i].measured_since)
                  : 0.0;
    idle = a->idle_ns >= li[i].idle_at_start
               ? (double)(a->idle_ns - li[i].idle_at_start)
               : 0.0;
    u = elapsed > 0 ? 1.0 - idle / elapsed : 0.0;
    uv_pprof__buf_printf(
        b, "uv_pprof_loop_utilization_ratio{loop=\"0x%" PRIxPTR "\"} %.6f\n",
        li[i].loop,
        u < 0   ? 0.0
        : u > 1 ? 1.0
                : u);
  }
}

/* The endpoints in the order they are rendered: every route, then
 * "other". Returns their number. */
static size_t endpoint_list(const uv_pprof__request_t* req,
                            size_t index[NENDPOINTS],
                            const char* name[NENDPOINTS]) {
  size_t n;

  for (n = 0; n < req->nroutes; n++) {
    index[n] = n;
    name[n] = req->routes[n]->name;
  }
  index[n] = OTHER;
  name[n] = "other";
  return n + 1;
}

/* Stall detection's figures of each watched loop: the histogram of its
 * iterations' time in callbacks (fixed buckets), and its stalls. */
static void render_stalls(uv_pprof__buf_t* b) {
  uv_pprof__stall_stats_t st[MAX_LOOPS];
  const uint64_t* bounds_ns = uv_pprof__stall_bounds();
  size_t n = uv_pprof__stall_loops(st, MAX_LOOPS);
  size_t i;
  size_t k;

  if (n > MAX_LOOPS)
    n = MAX_LOOPS;
  if (n == 0)
    return;
  family(b, "loop_iteration_busy_seconds", "histogram",
         "Time each loop iteration spent in callbacks: from one return from "
         "polling to the next, less the wait (1 ms resolution).");
  for (i = 0; i < n; i++) {
    uint64_t total = 0;
    for (k = 0; k < UV_PPROF__STALL_BUCKETS; k++) {
      total += st[i].buckets[k];
      if (k + 1 < UV_PPROF__STALL_BUCKETS)
        uv_pprof__buf_printf(b,
                             "uv_pprof_loop_iteration_busy_seconds_bucket{"
                             "loop=\"0x%" PRIxPTR "\",le=\"%g\"} %" PRIu64 "\n",
                             st[i].loop, (double)bounds_ns[k] / 1e9, total);
      else
        uv_pprof__buf_printf(b,
                             "uv_pprof_loop_iteration_busy_seconds_bucket{"
                             "loop=\"0x%" PRIxPTR "\",le=\"+Inf\"} %" PRIu64
                             "\n",
                             st[i].loop, total);
    }
    uv_pprof__buf_printf(
        b,
        "uv_pprof_loop_iteration_busy_seconds_sum{loop=\"0x%" PRIxPTR
        "\"} %.9f\n"
        "uv_pprof_loop_iteration_busy_seconds_count{loop=\"0x%" PRIxPTR
        "\"} %" PRIu64 "\n",
        st[i].loop, (double)st[i].busy_ns / 1e9, st[i].loop, total);
  }
  family(b, "loop_stalls_total", "counter",
         "Stalls of the loop: iterations whose callbacks ran past the stall "
         "threshold (UV_PPROF_STALL_MS), one in progress included.");
  for (i = 0; i < n; i++)
    uv_pprof__buf_printf(
        b, "uv_pprof_loop_stalls_total{loop=\"0x%" PRIxPTR "\"} %" PRIu64 "\n",
        st[i].loop, st[i].stalls);
  family(b, "loop_stall_seconds_total", "counter",
         "Time the loop's stalls held it in callbacks, one in progress "
         "included (/debug/pprof/block has their stacks).");
  for (i = 0; i < n; i++)
    uv_pprof__buf_printf(
        b, "uv_pprof_loop_stall_seconds_total{loop=\"0x%" PRIxPTR "\"} %.9f\n",
        st[i].loop, (double)(st[i].stall_ns + st[i].in_progress_ns) / 1e9);
}

static void render_requests(uv_pprof__buf_t* b,
                            const uv_pprof__request_t* req) {
  size_t index[NENDPOINTS];
  const char* name[NENDPOINTS];
  size_t nendpoints = endpoint_list(req, index, name);
  size_t i;
  size_t c;
  size_t k;

  family(b, "requests_total", "counter",
         "Answers uv_pprof wrote, by endpoint and status class (the "
         "profiles served are code=\"2xx\").");
  for (i = 0; i < nendpoints; i++)
    for (c = 0; c < 5; c++) {
      uint64_t v = __atomic_load_n(&answers[index[i]][c], __ATOMIC_RELAXED);
      if (v != 0)
        uv_pprof__buf_printf(b,
                             "uv_pprof_requests_total{endpoint=\"%s\","
                             "code=\"%zuxx\"} %" PRIu64 "\n",
                             name[i], c + 1, v);
    }
  family(b, "request_duration_seconds", "histogram",
         "Time from routing a request to writing its answer, by endpoint.");
  for (i = 0; i < nendpoints; i++) {
    size_t e = index[i];
    uint64_t n[NBUCKETS];
    uint64_t total = 0;
    for (k = 0; k < NBUCKETS; k++) {
      n[k] = __atomic_load_n(&buckets[e][k], __ATOMIC_RELAXED);
      total += n[k];
    }
    if (total == 0)
      continue;
    total = 0;
    for (k = 0; k < NBUCKETS; k++) {
      total += n[k];
      if (k < UV_PPROF__ARRAY_SIZE(bounds))
        uv_pprof__buf_printf(b,
                             "uv_pprof_request_duration_seconds_bucket{"
                             "endpoint=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                             name[i], bounds[k], total);
      else
        uv_pprof__buf_printf(b,
                             "uv_pprof_request_duration_seconds_bucket{"
                             "endpoint=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                             name[i], total);
    }
    uv_pprof__buf_printf(
        b,
        "uv_pprof_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n"
        "uv_pprof_request_duration_seconds_count{endpoint=\"%s\"} %" PRIu64
        "\n",
        name[i], (double)__atomic_load_n(&sum_ns[e], __ATOMIC_RELAXED) / 1e9,
        name[i], total);
  }
}

/* ---- the endpoint -------------------------------------------------------- */

typedef struct {
  uv_pprof__job_t job;
  uv_pprof__request_t* req;
  uv_pprof__handles_snap_t* snap;
} metrics_job_t;

static void work_metrics(uv_pprof__job_t* job) {
  metrics_job_t* mj = job->data;
  uv_pprof__response_t* res = &mj->req->res;
  uv_pprof__buf_t* b = &res->body;
  int err;

  err = uv_pprof__handles_complete(mj->snap);
  render_allocator(b);
  if (err == 0)
    render_handles(b, mj->snap);
  render_loops(b, err == 0 ? mj->snap : NULL);
  render_stalls(b);
  render_requests(b, mj->req);
  res->status = 200;
  res->content_type = "text/plain; version=0.0.4; charset=utf-8";
  if (err != 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "could not count the handles: %s",
             uv_strerror(err));
    uv_pprof__error(mj->req, 500, msg);
  } else if (b->oom) {
    uv_pprof__error(mj->req, 500, "out of memory");
  }
}

static void on_metrics_done(uv_pprof__job_t* job, int cancelled) {
  metrics_job_t* mj = job->data;
  uv_pprof__request_t* req = mj->req;

  (void)cancelled; /* an abandoned request is freed by finish */
  uv_pprof__handles_free(mj->snap);
  free(mj);
  uv_pprof__request_finish(req);
}

static void serve(uv_pprof__request_t* req) {
  metrics_job_t* mj = calloc(1, sizeof(*mj));
  int err;

  if (mj == NULL) {
    uv_pprof__request_fail(req, 500, "out of memory");
    return;
  }
  mj->req = req;
  mj->job.work = work_metrics;
  mj->job.done = on_metrics_done;
  mj->job.data = mj;
  mj->job.light = 1;
  err = uv_pprof__handles_collect(req->loop, &mj->snap);
  if (err != 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "could not collect the metrics: %s",
             uv_strerror(err));
    free(mj);
    uv_pprof__request_fail(req, 500, msg);
    return;
  }
  if (uv_pprof__request_submit(req, &mj->job) != 0) {
    uv_pprof__handles_free(mj->snap);
    free(mj);
    return;
  }
  req->route_data = mj;
}

const uv_pprof__route_t uv_pprof__route_metrics = {
    .name = "metrics",
    .path = "/metrics",
    .serve = serve,
};
