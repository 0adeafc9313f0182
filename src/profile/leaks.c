/* /debug/pprof/leaks: what grew steadily over the history (?window=<age>;
 * default all of it) — heap stacks by their estimated in-use bytes, handle
 * groups (type, loop, callback, creation stack) by their count — ranked by
 * growth, as text or, with ?format=html, as a page. "Steadily" is
 * Mann-Kendall's trend test over the kept snapshots: a series is listed
 * when its trend is significant (z >= 3.09, one-sided p < 0.001), strong
 * (Kendall's tau >= 0.6: most later snapshots above most earlier ones) and
 * large enough to be more than sampling noise (docs/memory-profiling.md,
 * "The morning after", says why each). Big allocations that stay flat have
 * no trend; allocations that go up and down have ties and reversals that
 * cancel. Runs on the worker. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define MIN_SNAPSHOTS 8    /* fewer cannot reach z >= 3.09 */
#define MAX_POINTS 240     /* more snapshots are sampled evenly */
#define MIN_TAU 0.6        /* Kendall's tau */
#define MIN_Z 3.09         /* one-sided p < 0.001 */
#define MIN_HEAP (1 << 20) /* bytes, or twice the sampling period */
#define MIN_HANDLES 3
#define MAX_FRAMES 8 /* shown per entry */

/* ---- the trend test --------------------------------------------------------
 */

typedef struct {
  double tau; /* S / (n (n - 1) / 2) */
  double z;   /* (S - sign S) / sqrt(Var S), ties corrected */
} trend_t;

/* sqrt without libm (linking it costs every host ~330 KiB of RSS). */
static double root(double v) {
  double r = v > 1 ? v : 1;
  int i;

  if (v <= 0)
    return 0;
  for (i = 0; i < 64; i++)
    r = (r + v / r) / 2;
  return r;
}

static int compare_double(const void* a, const void* b) {
  double x = *(const double*)a;
  double y = *(const double*)b;

  return (x > y) - (x < y);
}

/* Mann-Kendall's S over x[0..n), with the variance corrected for ties
 * (equal values, as a flat series has): Var S = (n(n-1)(2n+5) - Σ
 * t(t-1)(2t+5)) / 18 over groups of t equal values. */
static void mann_kendall(const double* x, size_t n, double* scratch,
                         trend_t* out) {
  double s = 0;
  double var;
  size_t i;
  size_t j;

  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++)
      s += (x[j] > x[i]) - (x[j] < x[i]);
  var = (double)n * (n - 1) * (2 * n + 5);
  memcpy(scratch, x, n * sizeof(*x));
  qsort(scratch, n, sizeof(*scratch), compare_double);
  for (i = 0; i < n; i = j) {
    double t;
    for (j = i + 1; j < n && scratch[j] == scratch[i]; j++)
      ;
    t = (double)(j - i);
    var -= t * (t - 1) * (2 * t + 5);
  }
  var /= 18;
  out->tau = n > 1 ? s / ((double)n * (n - 1) / 2) : 0;
  out->z = var > 0 ? (s - (s > 0) + (s < 0)) / root(var) : 0;
}

/* ---- series ----------------------------------------------------------------
 */

/* One candidate: a heap stack, or a handle group across states and ages. */
typedef struct {
  int heap;
  uint32_t id;            /* heap: its stack */
  uv_pprof__hgroup_t key; /* handles: type, loop, cb, creation stack */
  uintptr_t stack[64];    /* the key's creation stack (kept here) */
  double* x;              /* its value at each point */
  trend_t trend;
  double growth;
} series_t;

typedef struct {
  size_t* points; /* snapshot indices, oldest first */
  size_t npoints;
  series_t* series;
  size_t nseries;
  uint32_t* heap_slot; /* by stack id: series + 1 */
  size_t heap_limit;
  int64_t first_ns;
  int64_t last_ns;
  size_t in_window; /* snapshots in the window, before sampling */
  uint64_t period;  /* the last snapshot's, for the heap's threshold */
  int have_heap;
  int have_handles;
} report_t;

static int same_handles(const uv_pprof__hgroup_t* a,
                        const uv_pprof__hgroup_t* b) {
  return a->type == b->type && a->loop == b->loop && a->cb == b->cb &&
         a->nstack == b->nstack &&
         (a->nstack == 0 ||
          memcmp(a->stack, b->stack, a->nstack * sizeof(*a->stack)) == 0);
}

/* Estimated in-use bytes of every stack of s, summed by id, into
 * bytes[0..limit) (zeroed first). */
static void heap_values(const uv_pprof__hsnap_t* s, double* bytes,
                        size_t limit) {
  size_t i;

  memset(bytes, 0, limit * sizeof(*bytes));
  for (i = 0; s->have_heap && i < s->heap.nstacks; i++) {
    const uv_pprof__je_stack_t* st = &s->heap.stacks[i];
    int64_t objs;
    int64_t b;
    if (st->id >= limit)
      continue;
    uv_pprof__heap_unbias(st->counts.cur_objs, st->counts.cur_bytes,
                          s->heap.period, &objs, &b);
    bytes[st->id] += (double)b;
  }
}

/* The series worth testing: heap stacks and handle groups that ended
 * higher than they began by at least the threshold (a series that grew
 * steadily did). */
static int pick_candidates(report_t* r, const uv_pprof__hsnap_t* first,
                           const uv_pprof__hsnap_t* last) {
  size_t limit = uv_pprof__stacks_limit();
  double* a = calloc(limit, sizeof(*a));
  double* b = calloc(limit, sizeof(*b));
  double min_heap = MIN_HEAP;
  size_t cap = 16;
  size_t i;
  size_t j;
  int rc = UV_ENOMEM;

  r->series = calloc(cap, sizeof(*r->series));
  r->heap_slot = calloc(limit, sizeof(*r->heap_slot));
  r->heap_limit = limit;
  if (a == NULL || b == NULL || r->series == NULL || r->heap_slot == NULL)
    goto out;
  if (last->have_heap && 2.0 * (double)last->heap.period > min_heap)
    min_heap = 2.0 * (double)last->heap.period;
  heap_values(first, a, limit);
  heap_values(last, b, limit);
  for (i = 1; i < limit; i++) {
    if (b[i] - a[i] < min_heap)
      continue;
    if (r->nseries == cap) {
      series_t* grown = realloc(r->series, 2 * cap * sizeof(*grown));
      if (grown == NULL)
        goto out;
      r->series = grown;
      cap *= 2;
    }
    memset(&r->series[r->nseries], 0, sizeof(r->series[0]));
    r->series[r->nseries].heap = 1;
    r->series[r->nseries].id = (uint32_t)i;
    r->heap_slot[i] = (uint32_t)++r->nseries;
  }
  /* Handle groups: net count of each (type, loop, callback, creation
   * stack) at the first and the last snapshot. */
  for (i = 0; i < last->ngroups; i++) {
    const uv_pprof__hgroup_t* g = &last->groups[i];
    int64_t now = 0;
    int64_t then = 0;
    size_t k;
    for (k = 0; k < r->nseries; k++)
      if (!r->series[k].heap && same_handles(&r->series[k].key, g))
        break;
    if (k < r->nseries)
      continue; /* counted with its first group */
    for (j = 0; j < last->ngroups; j++)
      if (same_handles(&last->groups[j], g))
        now += last->groups[j].count;
    for (j = 0; j < first->ngroups; j++)
      if (same_handles(&first->groups[j], g))
        then += first->groups[j].count;
    if (now - then < MIN_HANDLES)
      continue;
    if (r->nseries == cap) {
      series_t* grown = realloc(r->series, 2 * cap * sizeof(*grown));
      if (grown == NULL)
        goto out;
      r->series = grown;
      cap *= 2;
    }
    memset(&r->series[r->nseries], 0, sizeof(r->series[0]));
    r->series[r->nseries].key = *g;
    r->series[r->nseries].key.nstack =
        g->nstack < 64 ? g->nstack : 64; /* tracker stacks: at most 32 */
    memcpy(r->series[r->nseries].stack, g->stack,
           r->series[r->nseries].key.nstack * sizeof(*g->stack));
    r->series[r->nseries].key.stack = r->series[r->nseries].stack;
    r->nseries++;
  }
  for (i = 0; i < r->nseries; i++) {
    r->series[i].x = calloc(r->npoints, sizeof(double));
    if (r->series[i].x == NULL)
      goto out;
  }
  rc = 0;
out:
  free(a);
  free(b);
  return rc;
}

/* The value of every candidate at point p, from its snapshot s. */
static void fill_point(report_t* r, size_t p, const uv_pprof__hsnap_t* s) {
  size_t i;
  size_t k;

  for (i = 0; s->have_heap && i < s->heap.nstacks; i++) {
    const uv_pprof__je_stack_t* st = &s->heap.stacks[i];
    int64_t objs;
    int64_t b;
    if (st->id >= r->heap_limit || r->heap_slot[st->id] == 0)
      continue;
    uv_pprof__heap_unbias(st->counts.cur_objs, st->counts.cur_bytes,
                          s->heap.period, &objs, &b);
    r->series[r->heap_slot[st->id] - 1].x[p] += (double)b;
  }
  for (i = 0; i < s->ngroups; i++)
    for (k = 0; k < r->nseries; k++)
      if (!r->series[k].heap && same_handles(&r->series[k].key, &s->groups[i]))
        r->series[k].x[p] += (double)s->groups[i].count;
}

static void report_free(report_t* r) {
  size_t i;

  for (i = 0; i < r->nseries; i++)
    free(r->series[i].x);
  free(r->series);
  free(r->heap_slot);
  free(r->points);
}

/* The points of the window (at most MAX_POINTS, evenly among its kept
 * snapshots), the candidates, their values and their trends. Returns 0 or
 * a negative code. */
static int analyse(report_t* r, int64_t since) {
  size_t count = uv_pprof__history_count();
  size_t first = 0;
  size_t i;
  double* scratch;
  uv_pprof__hsnap_t a;
  uv_pprof__hsnap_t b;
  int rc;

  while (first < count && uv_pprof__history_time(first) < since)
    first++;
  r->in_window = count - first;
  if (r->in_window < MIN_SNAPSHOTS)
    return 0;
  r->npoints = r->in_window < MAX_POINTS ? r->in_window : MAX_POINTS;
  r->points = malloc(r->npoints * sizeof(*r->points));
  if (r->points == NULL)
    return UV_ENOMEM;
  for (i = 0; i < r->npoints; i++)
    r->points[i] = first + i * (r->in_window - 1) / (r->npoints - 1);
  r->first_ns = uv_pprof__history_time(r->points[0]);
  r->last_ns = uv_pprof__history_time(r->points[r->npoints - 1]);
  rc = uv_pprof__history_get(r->points[0], &a);
  if (rc != 0)
    return rc;
  rc = uv_pprof__history_get(r->points[r->npoints - 1], &b);
  if (rc != 0) {
    uv_pprof__hsnap_free(&a);
    return rc;
  }
  r->have_heap = b.have_heap;
  r->have_handles = b.have_handles;
  r->period = b.heap.period;
  rc = pick_candidates(r, &a, &b);
  uv_pprof__hsnap_free(&a);
  uv_pprof__hsnap_free(&b);
  if (rc != 0 || r->nseries == 0)
    return rc;
  for (i = 0; i < r->npoints; i++) {
    rc = uv_pprof__history_get(r->points[i], &a);
    if (rc != 0)
      return rc;
    fill_point(r, i, &a);
    uv_pprof__hsnap_free(&a);
  }
  scratch = malloc(r->npoints * sizeof(*scratch));
  if (scratch == NULL)
    return UV_ENOMEM;
  for (i = 0; i < r->nseries; i++) {
    series_t* s = &r->series[i];
    mann_kendall(s->x, r->npoints, scratch, &s->trend);
    s->growth = s->x[r->npoints - 1] - s->x[0];
  }
  free(scratch);
  return 0;
}

static int steady(const series_t* s) {
  return s->trend.z >= MIN_Z && s->trend.tau >= MIN_TAU;
}

static int compare_growth(const void* a, const void* b) {
  const series_t* x = *(const series_t* const*)a;
  const series_t* y = *(const series_t* const*)b;

  return (x->growth < y->growth) - (x->growth > y->growth);
}

/* ---- the report ------------------------------------------------------------
 */

static void format_bytes(double v, char* buf, size_t size) {
  const char* sign = v < 0 ? "-" : "";

  if (v < 0)
    v = -v;
  if (v >= 1024.0 * 1024 * 1024)
    snprintf(buf, size, "%s%.1f GiB", sign, v / (1024.0 * 1024 * 1024));
  else if (v >= 1024.0 * 1024)
    snprintf(buf, size, "%s%.1f MiB", sign, v / (1024.0 * 1024));
  else
    snprintf(buf, size, "%s%.1f KiB", sign, v / 1024.0);
}

typedef struct {
  uv_pprof__buf_t* out;
  int html;
} writer_t;

static void put_text(writer_t* w, const char* s) {
  if (w->html)
    uv_pprof__buf_html(w->out, s);
  else
    uv_pprof__buf_append(w->out, s, strlen(s));
}

/* One line per frame: "function  file:line", innermost inlined first. */
static void put_frame(writer_t* w, uintptr_t pc, const char* suffix) {
  uv_pprof__symbol_t sym[UV_PPROF__MAX_INLINE];
  size_t n = uv_pprof__symbolize(pc, sym, UV_PPROF__ARRAY_SIZE(sym));
  char line[4200];
  size_t i;

  if (n == 0 || sym[n - 1].name == NULL) {
    snprintf(line, sizeof(line), "0x%" PRIxPTR "%s", pc, suffix);
    uv_pprof__buf_printf(w->out, "      ");
    put_text(w, line);
    uv_pprof__buf_printf(w->out, "\n");
    return;
  }
  for (i = 0; i < n; i++) {
    const char* name =
        sym[i].name != NULL ? uv_pprof__symbol_readable(sym[i].name) : "?";
    if (sym[i].file != NULL)
      snprintf(line, sizeof(line), "%s  %s:%d%s", name, sym[i].file,
               sym[i].line, suffix);
    else
      snprintf(line, sizeof(line), "%s%s", name, suffix);
    uv_pprof__buf_printf(w->out, "      ");
    put_text(w, line);
    uv_pprof__buf_printf(w->out, "\n");
  }
}

/* s percent-encoded for a query value (an RFC 3339 time has '+'). */
static void query_escape(const char* s, char* out, size_t size) {
  size_t n = 0;

  for (; *s != '\0' && n + 4 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':')
      out[n++] = (char)c;
    else
      n += (size_t)snprintf(out + n, size - n, "%%%02X", c);
  }
  out[n] = '\0';
}

static void put_link(writer_t* w, const char* profile, const char* when) {
  char base[200];
  char url[256];

  query_escape(when, base, sizeof(base));
  snprintf(url, sizeof(url), "%s?base=%s&debug=1", profile, base);
  if (w->html) {
    uv_pprof__buf_printf(w->out, "    <a href=\"");
    uv_pprof__buf_html(w->out, url);
    uv_pprof__buf_printf(w->out, "\">the %s difference</a>", profile);
    snprintf(url, sizeof(url), "%s?base=%s", profile, base);
    uv_pprof__buf_printf(w->out, " (<a href=\"");
    uv_pprof__buf_html(w->out, url);
    uv_pprof__buf_printf(w->out, "\">proto</a>)\n");
  } else {
    uv_pprof__buf_printf(w->out, "    diff: /debug/pprof/%s\n", url);
  }
}

static void put_entry(writer_t* w, const report_t* r, size_t rank,
                      const series_t* s, const char* base) {
  double hours = (double)(r->last_ns - r->first_ns) / 3.6e12;
  char a[32];
  char b[32];
  char g[32];
  char rate[32];
  char head[256];
  char number[24] = ""; /* a list numbers its items itself */
  size_t k;

  if (!w->html)
    snprintf(number, sizeof(number), "%2zu. ", rank);
  if (s->heap) {
    format_bytes(s->growth, g, sizeof(g));
    format_bytes(s->x[0], a, sizeof(a));
    format_bytes(s->x[r->npoints - 1], b, sizeof(b));
    format_bytes(hours > 0 ? s->growth / hours : 0, rate, sizeof(rate));
    snprintf(head, sizeof(head), "%s+%s  %s -> %s  %s/h  tau %.2f  z %.1f",
             number, g, a, b, rate, s->trend.tau, s->trend.z);
  } else {
    char type[24];
    uv_pprof__handle_type_name(s->key.type, type, sizeof(type));
    snprintf(head, sizeof(head),
             "%s+%.0f %s  %.0f -> %.0f  %.0f/h  tau %.2f  z %.1f  loop "
             "0x%" PRIxPTR,
             number, s->growth, type, s->x[0], s->x[r->npoints - 1],
             hours > 0 ? s->growth / hours : 0, s->trend.tau, s->trend.z,
             s->key.loop);
  }
  if (w->html)
    uv_pprof__buf_printf(w->out, "<li><pre>");
  uv_pprof__buf_printf(w->out, "  ");
  put_text(w, head);
  uv_pprof__buf_printf(w->out, "\n");
  if (s->heap) {
    uintptr_t pcs[UV_PPROF__STACK_MAX];
    size_t n = uv_pprof__stacks_frames(s->id, pcs, UV_PPROF__STACK_MAX);
    /* Return addresses: the call site is one byte before. */
    for (k = 0; k < n && k < MAX_FRAMES; k++)
      put_frame(w, pcs[k] - 1, "");
    if (n > MAX_FRAMES)
      uv_pprof__buf_printf(w->out, "      ...\n");
  } else {
    if (s->key.cb != 0)
      put_frame(w, s->key.cb, "  (its callback)");
    for (k = 0; k < s->key.nstack && k < MAX_FRAMES; k++)
      put_frame(w, s->key.stack[k] - 1, k == 0 ? "  (created here)" : "");
  }
  put_link(w, s->heap ? "heap" : "goroutine", base);
  if (w->html)
    uv_pprof__buf_printf(w->out, "</pre></li>\n");
}

static void put_section(writer_t* w, const report_t* r, int heap,
                        const char* base) {
  series_t** list = malloc((r->nseries + 1) * sizeof(*list));
  size_t n = 0;
  size_t i;

  if (list == NULL) {
    w->out->oom = 1;
    return;
  }
  for (i = 0; i < r->nseries; i++)
    if (r->series[i].heap == heap && steady(&r->series[i]))
      list[n++] = &r->series[i];
  qsort(list, n, sizeof(*list), compare_growth);
  if (w->html)
    uv_pprof__buf_printf(w->out, "<h2>%s</h2>\n",
                         heap ? "Heap (estimated in-use bytes, by stack)"
                              : "Handles (live handles, by type, loop, "
                                "callback and creation stack)");
  else
    uv_pprof__buf_printf(w->out, "%s\n",
                         heap ? "heap (estimated in-use bytes, by stack):"
                              : "handles (live handles, by type, loop, "
                                "callback and creation stack):");
  if (heap && !r->have_heap)
    uv_pprof__buf_printf(w->out, "  heap profiling is off: nothing to say\n");
  else if (!heap && !r->have_handles)
    uv_pprof__buf_printf(w->out,
                         "  no handle walk completed: nothing to say\n");
  else if (n == 0)
    uv_pprof__buf_printf(w->out, "  nothing grew steadily\n");
  if (w->html && n > 0)
    uv_pprof__buf_printf(w->out, "<ol>\n");
  for (i = 0; i < n; i++)
    put_entry(w, r, i + 1, list[i], base);
  if (w->html && n > 0)
    uv_pprof__buf_printf(w->out, "</ol>\n");
  uv_pprof__buf_printf(w->out, "\n");
  free(list);
}

typedef struct {
  uv_pprof__job_t job;
  uv_pprof__request_t* req;
  int html;
  int with_window;
  uv_pprof__when_t window;
} leaks_job_t;

static void work_leaks(uv_pprof__job_t* job) {
  leaks_job_t* lj = job->data;
  uv_pprof__request_t* req = lj->req;
  uv_pprof__response_t* res = &req->res;
  int64_t since = INT64_MIN;
  writer_t w = {&res->body, lj->html};
  report_t r;
  char why[320];
  char base[80] = "start";
  char from[40];
  char to[40];
  char span[32];
  int rc;

  memset(&r, 0, sizeof(r));
  if (uv_pprof__history_off_reason(why, sizeof(why)) != 0) {
    uv_pprof__error(req, 404, why);
    return;
  }
  if (lj->with_window) {
    since = lj->window.time_ns;
    snprintf(base, sizeof(base), "%s", lj->window.text);
  }
  rc = analyse(&r, since);
  if (rc != 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "could not read the history: %s",
             uv_strerror(rc));
    uv_pprof__error(req, 500, msg);
    report_free(&r);
    return;
  }
  res->status = 200;
  res->content_type =
      lj->html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8";
  if (lj->html)
    uv_pprof__buf_printf(&res->body,
                         "<html>\n<head>\n<title>/debug/pprof/leaks</title>\n"
                         "</head>\n<body>\n<h1>What grew steadily</h1>\n<p>");
  if (lj->with_window && uv_pprof__history_time(0) > since) {
    snprintf(why, sizeof(why),
             "window=%s is longer than the history: all of it was used",
             lj->window.text);
    put_text(&w, why);
    uv_pprof__buf_printf(&res->body, "\n");
  }
  if (r.in_window < MIN_SNAPSHOTS) {
    snprintf(why, sizeof(why),
             "leaks: the window holds %zu snapshot%s of the history; the "
             "trend test needs at least %d (one comes with each timeline "
             "sample)",
             r.in_window, r.in_window == 1 ? "" : "s", MIN_SNAPSHOTS);
    put_text(&w, why);
    uv_pprof__buf_printf(&res->body, "\n");
  } else {
    uv_pprof__format_time(r.first_ns, from, sizeof(from));
    uv_pprof__format_time(r.last_ns, to, sizeof(to));
    uv_pprof__format_age(r.last_ns - r.first_ns, span, sizeof(span));
    snprintf(why, sizeof(why),
             "leaks: what grew steadily over %s of history, %s to %s (%zu "
             "snapshots%s)",
             span, from, to, r.in_window,
             r.npoints < r.in_window ? ", sampled evenly" : "");
    put_text(&w, why);
    uv_pprof__buf_printf(&res->body, "\n");
    if (lj->html)
      uv_pprof__buf_printf(&res->body, "</p>\n");
    else
      uv_pprof__buf_printf(&res->body, "\n");
    put_section(&w, &r, 1, base);
    put_section(&w, &r, 0, base);
    if (lj->html)
      uv_pprof__buf_printf(&res->body, "<p>");
  }
  snprintf(why, sizeof(why),
           "steady: Mann-Kendall's trend test over the snapshots, z >= 3.09 "
           "(one-sided p < 0.001) and Kendall's tau >= %.1f, and a growth of "
           "at least %s (heap) or %d handles",
           MIN_TAU, r.period > MIN_HEAP / 2 ? "2 sampling periods" : "1 MiB",
           MIN_HANDLES);
  put_text(&w, why);
  uv_pprof__buf_printf(&res->body,
                       lj->html ? "</p>\n</body>\n</html>\n" : "\n");
  report_free(&r);
  if (res->body.oom)
    uv_pprof__error(req, 500, "out of memory");
}

static void on_leaks_done(uv_pprof__job_t* job, int cancelled) {
  leaks_job_t* lj = job->data;
  uv_pprof__request_t* req = lj->req;

  (void)cancelled; /* an abandoned request is freed by finish */
  free(lj);
  uv_pprof__request_finish(req);
}

static void serve(uv_pprof__request_t* req) {
  leaks_job_t* lj;
  char format[16] = "text";
  char window[128];
  char why[320];

  lj = calloc(1, sizeof(*lj));
  if (lj == NULL) {
    uv_pprof__request_fail(req, 500, "out of memory");
    return;
  }
  if (uv_pprof__query_get(req->query, "format", format, sizeof(format)) &&
      strcmp(format, "text") != 0 && strcmp(format, "html") != 0) {
    uv_pprof__error(req, 400,
                    "invalid value for \"format\" - must be text or html");
  } else if (uv_pprof__query_get(req->query, "window", window,
                                 sizeof(window))) {
    if (uv_pprof__when_parse("window", window, uv_pprof__now_ns(), &lj->window,
                             why, sizeof(why)) != 0)
      uv_pprof__error(req, 400, why);
    lj->with_window = 1;
  }
  if (req->res.status != 0) {
    free(lj);
    uv_pprof__request_finish(req);
    return;
  }
  lj->req = req;
  lj->html = strcmp(format, "html") == 0;
  lj->job.work = work_leaks;
  lj->job.done = on_leaks_done;
  lj->job.data = lj;
  if (uv_pprof__request_submit(req, &lj->job) != 0) {
    free(lj);
    return;
  }
  req->route_data = lj;
}

/* Not a profile: the index page links it beside the timeline rather than
 * in its table of profiles (no description). */
const uv_pprof__route_t uv_pprof__route_leaks = {
    .name = "leaks",
    .path = "/debug/pprof/leaks",
    .serve = serve,
};
