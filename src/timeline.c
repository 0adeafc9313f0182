/* The memory timeline: with UV_PPROF_TIMELINE=<seconds> an unref'd timer on
 * the serving loop takes a sample every interval — the handle walk of
 * src/handles.c on the loop, then on the worker the live handle count, the
 * heap's allocated and in-use bytes and the RSS (src/memstat.c) — into a
 * ring of the last UV_PPROF__TIMELINE_ROWS. /debug/pprof/timeline serves it
 * as mem-monitor.sh's CSV, or with ?format=svg as a chart. Off by default:
 * then nothing here exists. The ring is only touched on the worker, and
 * lives until the timer has closed and no job holds it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "profile.h"

typedef struct {
  int64_t time_ns; /* wall clock of the tick */
  uint64_t heap_alloc;
  uint64_t heap_inuse;
  uint64_t goroutines;
  uint64_t rss;
  int have_heap;       /* the allocator could be read */
  int have_goroutines; /* the handle walk completed */
} row_t;

#define RING_BYTES (UV_PPROF__TIMELINE_ROWS * sizeof(row_t))

struct uv_pprof__timeline_s {
  uv_loop_t* loop;
  uv_pprof__worker_t* worker;
  uv_timer_t timer;
  int refs; /* atomic: the timer until closed + each job with the worker */
  unsigned seconds;
  uv_pprof__sample_cb after_sample;
  row_t* rows;  /* the ring: UV_PPROF__TIMELINE_ROWS */
  size_t next;  /* where the next row goes */
  size_t count; /* rows in the ring */
  /* the sample in flight */
  int sampling;
  int64_t tick_ns;
  uv_pprof__handles_snap_t* snap;
  uv_pprof__job_t job;
};

/* The serving loop's timeline: set and cleared on its thread; the
 * interval is also read by the index page on the worker. */
static uv_pprof__timeline_t* current;
static unsigned current_seconds;

unsigned uv_pprof__timeline_interval(void) {
  return __atomic_load_n(&current_seconds, __ATOMIC_RELAXED);
}

/* ---- sampling ------------------------------------------------------------ */

static void work_sample(uv_pprof__job_t* job) {
  uv_pprof__timeline_t* t = job->data;
  uv_pprof__memstat_t m;
  row_t* r = &t->rows[t->next];

  memset(r, 0, sizeof(*r));
  r->time_ns = t->tick_ns;
  if (uv_pprof__handles_complete(t->snap) == 0) {
    r->goroutines = t->snap->count;
    r->have_goroutines = 1;
  }
  uv_pprof__history_take(t->tick_ns, r->have_goroutines ? t->snap : NULL);
  uv_pprof__memstat_read(&m);
  r->have_heap = m.kind != UV_PPROF__ALLOC_OTHER;
  r->heap_alloc = m.heap_alloc;
  r->heap_inuse = m.heap_inuse;
  r->rss = m.rss;
  t->next = (t->next + 1) % UV_PPROF__TIMELINE_ROWS;
  if (t->count < UV_PPROF__TIMELINE_ROWS)
    t->count++;
  if (t->after_sample != NULL) {
    uv_pprof__timeline_sample_t s;
    s.time_ns = t->tick_ns;
    s.rss = m.rss;
    s.handles = r->have_goroutines ? t->snap : NULL;
    s.timeline = t;
    t->after_sample(&s);
  }
}

/* Drops a reference; the last one unmaps the ring and frees t. A job of a
 * stopped server drops its own on the worker, so any thread. */
static void release(uv_pprof__timeline_t* t) {
  if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  munmap(t->rows, RING_BYTES);
  free(t);
}

static void on_sample_done(uv_pprof__job_t* job, int cancelled) {
  uv_pprof__timeline_t* t = job->data;

  (void)cancelled;
  uv_pprof__handles_free(t->snap);
  t->snap = NULL;
  t->sampling = 0;
  release(t);
}

/* A tick while the previous sample is still with the worker (busy with a
 * long profile) is skipped: the ring then has a gap, never a pile-up. */
static void on_tick(uv_timer_t* timer) {
  uv_pprof__timeline_t* t = timer->data;

  if (t->sampling)
    return;
  t->tick_ns = uv_pprof__now_ns();
  if (uv_pprof__handles_collect(t->loop, &t->snap) != 0)
    return;
  t->job.work = work_sample;
  t->job.done = on_sample_done;
  t->job.data = t;
  t->job.light = 1;
  __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
  if (uv_pprof__worker_submit(t->worker, &t->job) != 0) {
    __atomic_sub_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    uv_pprof__handles_free(t->snap);
    t->snap = NULL;
    return;
  }
  t->sampling = 1;
}

int uv_pprof__timeline_start(uv_loop_t* loop, uv_pprof__worker_t* worker,
                             unsigned seconds, uv_pprof__sample_cb after_sample,
                             uv_pprof__timeline_t** out) {
  uv_pprof__timeline_t* t = calloc(1, sizeof(*t));
  void* rows = MAP_FAILED;

  /* Mapped, not malloc'd: rows the ring has not reached yet cost no RSS,
   * and the ring is uv_pprof's, not part of the host's heap or its heap
   * profile. */
  if (t != NULL)
    rows = mmap(NULL, RING_BYTES, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (rows == MAP_FAILED) {
    free(t);
    return UV_ENOMEM;
  }
  t->rows = rows;
  t->refs = 1;
  t->loop = loop;
  t->worker = worker;
  t->seconds = seconds;
  t->after_sample = after_sample;
  uv_timer_init(loop, &t->timer);
  uv_pprof__handle_own(&t->timer);
  uv_unref((uv_handle_t*)&t->timer);
  t->timer.data = t;
  uv_timer_start(&t->timer, on_tick, 0, (uint64_t)seconds * 1000);
  current = t;
  __atomic_store_n(&current_seconds, seconds, __ATOMIC_RELAXED);
  *out = t;
  return 0;
}

static void on_timer_close(uv_handle_t* handle) {
  uv_pprof__timeline_t* t = handle->data;

  uv_pprof__handle_disown(handle);
  release(t);
}

void uv_pprof__timeline_stop(uv_pprof__timeline_t* t) {
  if (current == t) {
    current = NULL;
    __atomic_store_n(&current_seconds, 0, __ATOMIC_RELAXED);
  }
  /* The server has closed its worker: a sample or a render still running
   * there holds a reference and drops it when done (the history it keeps is
   * dropped by uv_pprof_stop, after that job). */
  uv_close((uv_handle_t*)&t->timer, on_timer_close);
}

/* ---- CSV ----------------------------------------------------------------- */

static const row_t* row_at(const uv_pprof__timeline_t* t, size_t i) {
  size_t first =
      (t->next + UV_PPROF__TIMELINE_ROWS - t->count) % UV_PPROF__TIMELINE_ROWS;
  return &t->rows[(first + i) % UV_PPROF__TIMELINE_ROWS];
}

int uv_pprof__timeline_csv(const uv_pprof__timeline_t* t, uv_pprof__buf_t* b) {
  size_t i;
  char when[40];

  uv_pprof__buf_printf(
      b, "time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb\n");
  for (i = 0; i < t->count; i++) {
    const row_t* r = row_at(t, i);
    uv_pprof__format_time(r->time_ns, when, sizeof(when));
    uv_pprof__buf_printf(b, "%s,", when);
    if (r->have_heap)
      uv_pprof__buf_printf(b, "%" PRIu64 ",%" PRIu64 ",", r->heap_alloc,
                           r->heap_inuse);
    else
      uv_pprof__buf_printf(b, ",,");
    if (r->have_goroutines)
      uv_pprof__buf_printf(b, "%" PRIu64, r->goroutines);
    uv_pprof__buf_printf(b, ",%.2f\n", (double)r->rss / 1048576.0);
  }
  return b->oom ? UV_ENOMEM : 0;
}

/* ---- SVG ----------------------------------------------------------------- */

#define W 960
#define PANEL_H 200
#define LEFT 90
#define RIGHT 20
#define TOP 60

typedef struct {
  const char* name;
  const char* color;
} series_t;

/* Memory in MiB (heap alloc, heap in use, RSS), then goroutines. */
static const series_t series[] = {{"heap_alloc (MiB)", "#1f77b4"},
                                  {"heap_inuse (MiB)", "#ff7f0e"},
                                  {"rss (MiB)", "#2ca02c"},
                                  {"goroutines (live handles)", "#d62728"}};

static int series_value(const row_t* r, int s, double* v) {
  switch (s) {
    case 0:
      *v = (double)r->heap_alloc / 1048576.0;
      return r->have_heap;
    case 1:
      *v = (double)r->heap_inuse / 1048576.0;
      return r->have_heap;
    case 2:
      *v = (double)r->rss / 1048576.0;
      return 1;
    default:
      *v = (double)r->goroutines;
      return r->have_goroutines;
  }
}

/* The smallest 1, 2 or 5 times a power of ten that is >= v (1 for v <= 0). */
static double nice_max(double v) {
  double p = 1;

  if (v <= 0)
    return 1;
  while (p * 10 <= v)
    p *= 10;
  while (p > v * 10)
    p /= 10;
  if (v <= p)
    return p;
  if (v <= 2 * p)
    return 2 * p;
  if (v <= 5 * p)
    return 5 * p;
  return 10 * p;
}

/* One panel: frame, y scale from 0 to the nice maximum of its series, one
 * polyline per series and a dot on its last point. */
static void panel(const uv_pprof__timeline_t* t, uv_pprof__buf_t* b, int y0,
                  int first, int last, const char* unit) {
  const int pw = W - LEFT - RIGHT;
  int64_t t0 = t->count ? row_at(t, 0)->time_ns : 0;
  int64_t span = t->count ? row_at(t, t->count - 1)->time_ns - t0 : 0;
  double max = 0;
  double v;
  size_t i;
  int s;
  int k;

  for (s = first; s <= last; s++)
    for (i = 0; i < t->count; i++)
      if (series_value(row_at(t, i), s, &v) && v > max)
        max = v;
  max = nice_max(max);
  uv_pprof__buf_printf(b,
                       "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                       "fill=\"none\" stroke=\"#888\"/>\n",
                       LEFT, y0, pw, PANEL_H);
  for (k = 0; k <= 4; k++) {
    int y = y0 + PANEL_H - PANEL_H * k / 4;
    uv_pprof__buf_printf(b,
                         "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                         "stroke=\"#ddd\"/><text x=\"%d\" y=\"%d\" "
                         "text-anchor=\"end\">%g</text>\n",
                         LEFT, y, LEFT + pw, y, LEFT - 6, y + 4, max * k / 4);
  }
  uv_pprof__buf_printf(b,
                       "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
                       "transform=\"rotate(-90 %d %d)\">%s</text>\n",
                       20, y0 + PANEL_H / 2, 20, y0 + PANEL_H / 2, unit);
  /* Last series first, heap_inuse wider: heap_alloc, often about equal,
   * stays visible on top of it. */
  for (s = last; s >= first; s--) {
    double lx = 0;
    double ly = 0;
    int any = 0;
    uv_pprof__buf_printf(b,
                         "<polyline fill=\"none\" stroke=\"%s\" "
                         "stroke-width=\"%d\" points=\"",
                         series[s].color, s == 1 ? 6 : 2);
    for (i = 0; i < t->count; i++) {
      const row_t* r = row_at(t, i);
      if (!series_value(r, s, &v))
        continue;
      lx = LEFT + (span > 0 ? (double)(r->time_ns - t0) / (double)span * pw
                            : pw / 2.0);
      ly = y0 + PANEL_H - v / max * PANEL_H;
      uv_pprof__buf_printf(b, "%.1f,%.1f ", lx, ly);
      any = 1;
    }
    uv_pprof__buf_printf(b, "\"/>\n");
    if (any)
      uv_pprof__buf_printf(b,
                           "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" "
                           "fill=\"%s\"/>\n",
                           lx, ly, series[s].color);
  }
}

/* With the history on, the chart picks moments: a click marks the sample
 * under it, a second click opens the difference between the two — the heap
 * profile's from the memory panel, the goroutine profile's from the
 * handles panel — as ?base=<the earlier>&at=<the later>&debug=1 (no at
 * when the later is the last sample: the difference with now). The kept
 * snapshot nearest each moment is used (the answer says which). A
 * "#pick=I,J" fragment shows the links of samples I and J without opening
 * one. */
static const char pick_script[] =
    "<script><![CDATA[\n"
    "(function(){\n"
    "var svg=document.documentElement,NS='http://www.w3.org/2000/svg';\n"
    "var first=null,line=null,links=document.getElementById('links');\n"
    "function iso(ms){return new Date(ms).toISOString();}\n"
    "function nearest(x){if(T.length<2)return 0;\n"
    " var t=T[0]+(x-L)/PW*(T[T.length-1]-T[0]),lo=0,hi=T.length-1;\n"
    " while(lo<hi){var m=(lo+hi)>>1;if(T[m]<t)lo=m+1;else hi=m;}\n"
    " if(lo>0&&t-T[lo-1]<T[lo]-t)lo--;return lo;}\n"
    "function xof(i){return T.length>1?L+(T[i]-T[0])/(T[T.length-1]-T[0])"
    "*PW:L+PW/2;}\n"
    "function url(p,a,b,d){var u=p+'?base='+encodeURIComponent(iso(T[a]));\n"
    " if(b<T.length-1)u+='&at='+encodeURIComponent(iso(T[b]));\n"
    " return u+(d?'&debug=1':'');}\n"
    "function link(x,text,href){var a=document.createElementNS(NS,'a');\n"
    " a.setAttribute('href',href);var t=document.createElementNS(NS,'text');"
    "\n t.setAttribute('x',x);t.setAttribute('y',Y);t.setAttribute('fill',"
    "'#06c');\n t.textContent=text;a.appendChild(t);links.appendChild(a);}\n"
    "function show(a,b){while(links.firstChild)links.removeChild("
    "links.firstChild);\n"
    " link(L,'heap difference',url('heap',a,b,1));\n"
    " link(L+150,'allocs',url('allocs',a,b,1));\n"
    " link(L+220,'handles',url('goroutine',a,b,1));\n"
    " link(L+300,'heap proto',url('heap',a,b,0));\n"
    " link(L+400,'goroutine proto',url('goroutine',a,b,0));}\n"
    "function mark(i){line=document.createElementNS(NS,'line');\n"
    " line.setAttribute('x1',xof(i));line.setAttribute('x2',xof(i));\n"
    " line.setAttribute('y1',TOP);line.setAttribute('y2',TOP+2*PH+30);\n"
    " line.setAttribute('stroke','#000');svg.appendChild(line);}\n"
    "document.getElementById('pick').addEventListener('click',function(e){\n"
    " var p=svg.createSVGPoint();p.x=e.clientX;p.y=e.clientY;\n"
    " p=p.matrixTransform(svg.getScreenCTM().inverse());var i=nearest(p.x);"
    "\n"
    " if(first===null){first=i;mark(i);return;}\n"
    " var a=Math.min(first,i),b=Math.max(first,i);first=null;\n"
    " if(line)svg.removeChild(line);line=null;if(a==b)return;show(a,b);\n"
    " window.location=url(p.y<TOP+PH?'heap':'goroutine',a,b,1);});\n"
    "var m=/pick=(\\d+),(\\d+)/.exec(location.hash);\n"
    "if(m&&+m[1]<T.length&&+m[2]<T.length&&m[1]!=m[2])"
    "show(Math.min(+m[1],+m[2]),Math.max(+m[1],+m[2]));\n"
    "})();\n"
    "]]></script>\n";

/* The samples' times (ms since the epoch) and the chart's geometry for
 * pick_script, the area that takes the clicks, and the line of links. */
static void write_pick(const uv_pprof__timeline_t* t, uv_pprof__buf_t* b,
                       int y) {
  size_t i;

  uv_pprof__buf_printf(b,
                       "<text x=\"%d\" y=\"%d\">Click two moments: the "
                       "difference between them opens (heap from the "
                       "memory panel, handles from the other).</text>\n"
                       "<g id=\"links\"></g>\n"
                       "<rect id=\"pick\" x=\"%d\" y=\"%d\" width=\"%d\" "
                       "height=\"%d\" fill=\"#fff\" fill-opacity=\"0\" "
                       "cursor=\"crosshair\"/>\n<script><![CDATA[\nvar "
                       "L=%d,PW=%d,TOP=%d,PH=%d,Y=%d,T=[",
                       LEFT, y, LEFT, TOP, W - LEFT - RIGHT, 2 * PANEL_H + 30,
                       LEFT, W - LEFT - RIGHT, TOP, PANEL_H, y + 20);
  for (i = 0; i < t->count; i++)
    uv_pprof__buf_printf(b, "%s%" PRId64, i != 0 ? "," : "",
                         row_at(t, i)->time_ns / 1000000);
  uv_pprof__buf_printf(b, "];\n]]></script>\n");
  uv_pprof__buf_append(b, pick_script, sizeof(pick_script) - 1);
}

static void write_svg(const uv_pprof__timeline_t* t, uv_pprof__buf_t* b) {
  const int h = TOP + 2 * PANEL_H + 160;
  char from[40] = "";
  char to[40] = "";
  size_t s;

  if (t->count > 0) {
    uv_pprof__format_time(row_at(t, 0)->time_ns, from, sizeof(from));
    uv_pprof__format_time(row_at(t, t->count - 1)->time_ns, to, sizeof(to));
  }
  uv_pprof__buf_printf(
      b,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
      "<text x=\"%d\" y=\"24\" font-size=\"16\">uv_pprof timeline: %zu "
      "samples, one every %u s</text>\n"
      "<text x=\"%d\" y=\"44\">%s %s %s</text>\n",
      W, h, W, h, LEFT, t->count, t->seconds, LEFT, from,
      t->count > 1 ? "to"
      : t->count   ? ""
                   : "no sample yet",
      to);
  panel(t, b, TOP, 0, 2, "MiB");
  panel(t, b, TOP + PANEL_H + 30, 3, 3, "handles");
  for (s = 0; s < UV_PPROF__ARRAY_SIZE(series); s++) {
    int x = LEFT + (int)s * 200;
    int y = TOP + 2 * PANEL_H + 60;
    uv_pprof__buf_printf(b,
                         "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" "
                         "fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                         x, y, series[s].color, x + 20, y + 12, series[s].name);
  }
  if (uv_pprof__history_on() && t->count > 1)
    write_pick(t, b, TOP + 2 * PANEL_H + 100);
  uv_pprof__buf_printf(b, "</svg>\n");
}

/* ---- the endpoint -------------------------------------------------------- */

typedef struct {
  uv_pprof__job_t job;
  uv_pprof__request_t* req;
  uv_pprof__timeline_t* t;
  int svg;
} render_job_t;

static void work_render(uv_pprof__job_t* job) {
  render_job_t* rj = job->data;
  uv_pprof__response_t* res = &rj->req->res;

  res->status = 200;
  if (rj->svg) {
    res->content_type = "image/svg+xml";
    write_svg(rj->t, &res->body);
  } else {
    res->content_type = "text/plain; charset=utf-8";
    uv_pprof__timeline_csv(rj->t, &res->body);
  }
  if (res->body.oom)
    uv_pprof__error(rj->req, 500, "out of memory");
}

static void on_render_done(uv_pprof__job_t* job, int cancelled) {
  render_job_t* rj = job->data;
  uv_pprof__request_t* req = rj->req;

  (void)cancelled; /* an abandoned request is freed by finish */
  release(rj->t);
  free(rj);
  uv_pprof__request_finish(req);
}

static void serve(uv_pprof__request_t* req) {
  render_job_t* rj;
  char format[16] = "csv";

  if (uv_pprof__query_get(req->query, "format", format, sizeof(format)) &&
      strcmp(format, "csv") != 0 && strcmp(format, "svg") != 0) {
    uv_pprof__error(req, 400,
                    "invalid value for \"format\" - must be csv or svg");
  } else if (current == NULL) {
    uv_pprof__error(req, 404,
                    "the timeline is off: start the process with "
                    "UV_PPROF_TIMELINE=<seconds> (or set "
                    "options.timeline_seconds)");
  }
  if (req->res.status != 0) {
    uv_pprof__request_finish(req);
    return;
  }
  rj = calloc(1, sizeof(*rj));
  if (rj == NULL) {
    uv_pprof__request_fail(req, 500, "out of memory");
    return;
  }
  rj->req = req;
  rj->t = current;
  rj->svg = strcmp(format, "svg") == 0;
  rj->job.work = work_render;
  rj->job.done = on_render_done;
  rj->job.data = rj;
  rj->job.light = 1;
  __atomic_add_fetch(&current->refs, 1, __ATOMIC_RELAXED);
  if (uv_pprof__request_submit(req, &rj->job) != 0) {
    __atomic_sub_fetch(&current->refs, 1, __ATOMIC_RELAXED);
    free(rj);
    return;
  }
  req->route_data = rj;
}

const uv_pprof__route_t uv_pprof__route_timeline = {
    .name = "timeline",
    .path = "/debug/pprof/timeline",
    .serve = serve,
};
