/* Named profiles (heap, goroutine, threadcreate, ...) served generically
 * from their descriptors, as Go's net/http/pprof serves runtime/pprof's: the
 * gzipped proto, the ?debug=N text, and the ?seconds=N delta (snapshot p0,
 * wait on an unref'd uv timer, snapshot p1, encode p1 - p0); and for the
 * profiles the history keeps, ?base=<age> (now - the kept snapshot of that
 * age, or with ?at=<age> between two kept snapshots), in Go's delta form.
 * Also the index page, which counts them. Snapshots, text and encoding run
 * on the worker; a profile whose data only its loop's thread may read (the
 * goroutine profile) is snapshotted there right before each job. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define MAX_DELTA_SECONDS 3600

typedef struct named_job_s {
  uv_pprof__job_t job;
  uv_pprof__request_t* req;
  const uv_pprof__route_t* const* routes; /* req's (req may go first) */
  size_t nroutes;
  const uv_pprof__profile_t* profile; /* NULL: the index page */
  size_t index;                       /* the profile's route */
  int debug;
  long long seconds; /* > 0: delta */
  int with_base;     /* ?base= */
  int with_at;       /* ?at= */
  uv_pprof__when_t base;
  uv_pprof__when_t at;
  /* The first snapshot of a delta. A profile with nothing to capture
   * (block, mutex) has NULL for a snapshot: taken0 says it was taken. */
  void* snap0;
  int taken0;
  int64_t time0;
  int waiting; /* delta: between the snapshots, on `timer` */
  int hurried; /* the client sends no more: the window ends at once */
  uv_timer_t timer;
  /* Taken on the loop thread just before the job (loop_snapshot), by route:
   * the job's own profile's, or every such profile's for the index page. */
  void* loop_snaps[UV_PPROF__MAX_ROUTES];
} named_job_t;

/* strconv.Atoi with Go's handlers' convention: anything invalid is 0. */
static int param_int(const uv_pprof__request_t* req, const char* key) {
  char v[32];
  long long n;

  if (!uv_pprof__query_get(req->query, key, v, sizeof(v)) ||
      uv_pprof__parse_int(v, &n) != 0 || n > INT_MAX || n < INT_MIN)
    return 0;
  return (int)n;
}

static void job_free(named_job_t* nj) {
  size_t i;

  if (nj->snap0 != NULL)
    nj->profile->snapshot_free(nj->snap0);
  for (i = 0; i < nj->nroutes; i++)
    if (nj->loop_snaps[i] != NULL)
      nj->routes[i]->profile->snapshot_free(nj->loop_snaps[i]);
  free(nj);
}

static named_job_t* job_new(uv_pprof__request_t* req) {
  named_job_t* nj = calloc(1, sizeof(*nj));

  if (nj == NULL) {
    uv_pprof__request_fail(req, 500, "out of memory");
    return NULL;
  }
  nj->req = req;
  nj->routes = req->routes;
  nj->nroutes = req->nroutes;
  return nj;
}

/* On the loop thread, before each job: the loop snapshots the job needs. */
static int take_loop_snapshots(named_job_t* nj) {
  size_t i;
  int err;

  for (i = 0; i < nj->nroutes; i++) {
    const uv_pprof__profile_t* p = nj->routes[i]->profile;
    if (p == NULL || p->loop_snapshot == NULL ||
        (nj->profile != NULL && (nj->profile != p || nj->with_at)))
      continue;
    err = p->loop_snapshot(nj->req->loop, &nj->loop_snaps[i]);
    if (err != 0)
      return err;
  }
  return 0;
}

/* On the worker: the snapshot of routes[index]'s profile, the loop's
 * (completed) or a new one. */
static int job_snapshot(named_job_t* nj, size_t index, void** snap) {
  const uv_pprof__profile_t* p = nj->routes[index]->profile;
  int err;

  if (p->loop_snapshot == NULL)
    return p->snapshot(snap);
  *snap = nj->loop_snaps[index];
  nj->loop_snaps[index] = NULL;
  err = p->complete(*snap);
  if (err != 0)
    p->snapshot_free(*snap);
  return err;
}

static void fail_collect(uv_pprof__request_t* req, const char* name, int err) {
  char msg[160];

  snprintf(msg, sizeof(msg), "could not collect the %s profile: %s", name,
           uv_strerror(err));
  uv_pprof__error(req, 500, msg);
}

/* Encodes snap (and, for a delta, snap0 before it) as a gzipped proto. */
static int encode(named_job_t* nj, void* snap, uv_pprof__buf_t* out) {
  const uv_pprof__profile_t* p = nj->profile;
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  int err;

  if (b == NULL)
    return UV_ENOMEM;
  p->types(b);
  if (nj->taken0) {
    int64_t now = uv_pprof__now_ns();
    p->emit(nj->snap0, b, -1);
    uv_pprof__builder_time(b, now);
    uv_pprof__builder_duration(b, now - nj->time0);
  }
  p->emit(snap, b, 1);
  err = uv_pprof__builder_encode(b, out);
  uv_pprof__builder_free(b);
  return err;
}

/* The kept snapshot for w, decoded into *out; on failure the answer says
 * why (404: no history; 400: a moment older than the process). */
static int get_kept(named_job_t* nj, const char* name,
                    const uv_pprof__when_t* w, int64_t now,
                    uv_pprof__placed_t* placed, uv_pprof__hsnap_t* out) {
  char why[320];
  int err;

  err = uv_pprof__history_off_reason(why, sizeof(why));
  if (err == 0)
    err = uv_pprof__when_place(name, w, now, placed, why, sizeof(why));
  if (err == 0) {
    err = uv_pprof__history_get(placed->index, out);
    if (err != 0)
      fail_collect(nj->req, nj->profile->name, err);
  } else {
    uv_pprof__error(nj->req, err == UV_ENOENT ? 404 : 400, why);
  }
  return err;
}

/* Puts the text in `extra` right after the first line of out (Go's
 * header, which `head -1` shows). */
static void insert_after_header(uv_pprof__buf_t* out, const char* extra) {
  char* nl = out->base != NULL ? memchr(out->base, '\n', out->len) : NULL;
  size_t at = nl != NULL ? (size_t)(nl - out->base) + 1 : out->len;
  size_t n = strlen(extra);

  if (uv_pprof__buf_room(out, n) == NULL)
    return;
  memmove(out->base + at + n, out->base + at, out->len - at);
  memcpy(out->base + at, extra, n);
  out->len += n;
  out->base[out->len] = '\0';
}

/* ?base=: the difference between now (or ?at=) and a kept snapshot. */
static void work_base(named_job_t* nj, void* snap) {
  uv_pprof__request_t* req = nj->req;
  uv_pprof__response_t* res = &req->res;
  const uv_pprof__profile_t* p = nj->profile;
  uv_pprof__hsnap_t base;
  uv_pprof__hsnap_t at;
  uv_pprof__placed_t pb;
  uv_pprof__placed_t pa;
  char note_base[320];
  char note_at[320] = "";
  char when[40];
  char age[32];
  int64_t now = uv_pprof__now_ns();
  int64_t later = now;
  int err;

  memset(&base, 0, sizeof(base));
  memset(&at, 0, sizeof(at));
  if (get_kept(nj, "base", &nj->base, now, &pb, &base) != 0)
    goto out;
  if (nj->with_at) {
    if (get_kept(nj, "at", &nj->at, now, &pa, &at) != 0)
      goto out;
    if (pa.time_ns <= pb.time_ns) {
      uv_pprof__error(req, 400,
                      "invalid value for \"at\" - its snapshot must be "
                      "later than base's");
      goto out;
    }
    later = pa.time_ns;
    uv_pprof__when_note("at", &nj->at, &pa, note_at, sizeof(note_at));
  }
  uv_pprof__when_note("base", &nj->base, &pb, note_base, sizeof(note_base));
  uv_pprof__format_time(pb.time_ns, when, sizeof(when));
  uv_pprof__format_age(pb.age_ns, age, sizeof(age));
  snprintf(
      res->header_text, sizeof(res->header_text),
      "X-Uv-Pprof-Base: %s (%s ago)%s", when, age,
      pb.before_history ? "; older than asked: the history starts here" : "");
  res->headers[0] = res->header_text;
  res->status = 200;
  if (nj->debug != 0) {
    uv_pprof__buf_t notes;
    res->content_type = "text/plain; charset=utf-8";
    err = p->base_text(snap, nj->with_at ? &at : NULL, &base, &res->body);
    uv_pprof__buf_init(&notes);
    uv_pprof__buf_printf(&notes, "# %s\n", note_base);
    if (nj->with_at)
      uv_pprof__buf_printf(&notes, "# %s\n", note_at);
    if (err == 0 && !notes.oom)
      insert_after_header(&res->body, notes.base);
    uv_pprof__buf_free(&notes);
  } else {
    uv_pprof__builder_t* b = uv_pprof__builder_new();
    err = UV_ENOMEM;
    if (b != NULL) {
      res->content_type = "application/octet-stream";
      snprintf(res->disposition, sizeof(res->disposition), "%s-delta", p->name);
      p->types(b);
      uv_pprof__builder_time(b, later);
      uv_pprof__builder_duration(b, later - pb.time_ns);
      uv_pprof__builder_comment(b, note_base);
      if (nj->with_at)
        uv_pprof__builder_comment(b, note_at);
      p->base_emit(snap, nj->with_at ? &at : NULL, &base, b);
      err = uv_pprof__builder_encode(b, &res->body);
      uv_pprof__builder_free(b);
    }
  }
  if (err != 0)
    fail_collect(req, p->name, err);
out:
  uv_pprof__hsnap_free(&base);
  uv_pprof__hsnap_free(&at);
}

static void work_profile(uv_pprof__job_t* job) {
  named_job_t* nj = job->data;
  uv_pprof__request_t* req = nj->req;
  uv_pprof__response_t* res = &req->res;
  const uv_pprof__profile_t* p = nj->profile;
  void* snap = NULL;
  int err;

  if (!nj->with_at) {
    err = job_snapshot(nj, nj->index, &snap);
    if (err != 0) {
      fail_collect(req, p->name, err);
      return;
    }
  }
  if (nj->with_base) {
    work_base(nj, snap);
    if (snap != NULL)
      p->snapshot_free(snap);
    return;
  }
  if (nj->seconds > 0 && !nj->taken0) {
    nj->snap0 = snap; /* first half of a delta */
    nj->taken0 = 1;
    nj->time0 = uv_pprof__now_ns();
    return;
  }
  res->status = 200;
  if (nj->debug != 0) {
    res->content_type = "text/plain; charset=utf-8";
    err = p->text(snap, nj->debug, &res->body);
  } else {
    res->content_type = "application/octet-stream";
    snprintf(res->disposition, sizeof(res->disposition), "%s%s", p->name,
             nj->seconds > 0 ? "-delta" : "");
    err = encode(nj, snap, &res->body);
  }
  p->snapshot_free(snap);
  if (err != 0)
    fail_collect(req, p->name, err);
}

static void on_job_done(uv_pprof__job_t* job, int cancelled);

static void submit(named_job_t* nj) {
  uv_pprof__request_t* req = nj->req;
  int err;

  nj->job.done = on_job_done;
  nj->job.data = nj;
  err = take_loop_snapshots(nj);
  if (err != 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "could not walk the loop: %s", uv_strerror(err));
    job_free(nj);
    uv_pprof__request_fail(req, 500, msg);
    return;
  }
  if (uv_pprof__request_submit(req, &nj->job) != 0)
    job_free(nj);
}

static void on_timer_close(uv_handle_t* handle) {
  named_job_t* nj = handle->data;
  uv_pprof__request_t* req = nj->req;

  uv_pprof__handle_disown(handle);
  if (req->conn != NULL && req->res.status == 0) {
    /* the window is over: take the second snapshot */
    nj->waiting = 0;
    submit(nj);
    return;
  }
  job_free(nj);
  uv_pprof__request_finish(req);
}

static void on_delta_timer(uv_timer_t* timer) {
  uv_close((uv_handle_t*)timer, on_timer_close);
}

static void on_job_done(uv_pprof__job_t* job, int cancelled) {
  named_job_t* nj = job->data;
  uv_pprof__request_t* req = nj->req;

  if (!cancelled && req->conn != NULL && nj->seconds > 0 &&
      req->res.status == 0) {
    if (nj->hurried) {
      submit(nj); /* p1 at once */
      return;
    }
    /* p0 is taken; wait for the window on the loop, never blocking it */
    nj->waiting = 1;
    nj->timer.data = nj;
    uv_timer_init(req->loop, &nj->timer);
    /* The window starts now, not at the loop's last tick. */
    uv_update_time(req->loop);
    uv_pprof__handle_own(&nj->timer);
    uv_unref((uv_handle_t*)&nj->timer);
    /* One millisecond more: the loop's clock has millisecond steps, so a
     * timer may fire up to one early, and a 1 s window read 999.98 ms. */
    uv_timer_start(&nj->timer, on_delta_timer, (uint64_t)nj->seconds * 1000 + 1,
                   0);
    return;
  }
  job_free(nj);
  uv_pprof__request_finish(req);
}

/* A job on the worker finishes and is then freed by on_job_done; a delta
 * waiting for its window stops waiting. */
static void abandon_job(uv_pprof__request_t* req) {
  named_job_t* nj = req->route_data;

  if (nj->waiting && !uv_is_closing((uv_handle_t*)&nj->timer))
    uv_close((uv_handle_t*)&nj->timer, on_timer_close);
}

/* The client sends no more: a delta's window ends now (p1 is taken when
 * p0 is, or at once), as Go's ends with the request's context. */
static void hurry_job(uv_pprof__request_t* req) {
  named_job_t* nj = req->route_data;

  nj->hurried = 1;
  if (nj->waiting && !uv_is_closing((uv_handle_t*)&nj->timer))
    uv_close((uv_handle_t*)&nj->timer, on_timer_close);
}

/* ?base= and ?at=: parsed here, placed among the kept snapshots on the
 * worker. Returns 0, or -1 with the 400 answer set. */
static int parse_base(uv_pprof__request_t* req, named_job_t* nj) {
  const uv_pprof__route_t* route = req->route;
  int64_t now = uv_pprof__now_ns();
  char why[320];
  char v[128];

  if (uv_pprof__query_get(req->query, "base", v, sizeof(v))) {
    if (!(route->flags & UV_PPROF__ROUTE_BASE)) {
      uv_pprof__error(req, 400,
                      "\"base\" parameter is not supported for this "
                      "profile type");
      return -1;
    }
    if (uv_pprof__when_parse("base", v, now, &nj->base, why, sizeof(why))) {
      uv_pprof__error(req, 400, why);
      return -1;
    }
    nj->with_base = 1;
  }
  if (uv_pprof__query_get(req->query, "at", v, sizeof(v))) {
    if (!nj->with_base) {
      uv_pprof__error(req, 400,
                      "\"at\" needs \"base\": the difference between the "
                      "snapshots of base and at");
      return -1;
    }
    if (uv_pprof__when_parse("at", v, now, &nj->at, why, sizeof(why))) {
      uv_pprof__error(req, 400, why);
      return -1;
    }
    nj->with_at = 1;
  }
  return 0;
}

void uv_pprof__serve_profile(uv_pprof__request_t* req) {
  const uv_pprof__route_t* route = req->route;
  named_job_t* nj;
  char sec[32];
  long long seconds = 0;
  int debug = param_int(req, "debug");

  if (uv_pprof__query_get(req->query, "seconds", sec, sizeof(sec)) &&
      sec[0] != '\0') {
    if (uv_pprof__parse_int(sec, &seconds) != 0 || seconds <= 0) {
      uv_pprof__error(req, 400,
                      "invalid value for \"seconds\" - must be a positive "
                      "integer");
    } else if (!(route->flags & UV_PPROF__ROUTE_SECONDS)) {
      uv_pprof__error(req, 400,
                      "\"seconds\" parameter is not supported for this "
                      "profile type");
    } else if (seconds > MAX_DELTA_SECONDS) {
      uv_pprof__error(req, 400,
                      "invalid value for \"seconds\" - must be at most 3600");
    } else if (debug != 0) {
      uv_pprof__error(req, 400, "seconds and debug params are incompatible");
    }
    if (req->res.status != 0) {
      uv_pprof__request_finish(req);
      return;
    }
  }
  nj = job_new(req);
  if (nj == NULL)
    return;
  if (parse_base(req, nj) != 0) {
    job_free(nj);
    uv_pprof__request_finish(req);
    return;
  }
  if (nj->with_base && seconds > 0) {
    job_free(nj);
    uv_pprof__request_fail(req, 400,
                           "base and seconds params are incompatible");
    return;
  }
  nj->profile = route->profile;
  nj->index = req->route_index;
  nj->debug = debug;
  nj->seconds = seconds;
  nj->job.work = work_profile;
  req->route_data = nj;
  req->abandon = abandon_job;
  req->hurry = hurry_job;
  submit(nj);
}

/* ---- the index page ---------------------------------------------------- */

typedef struct {
  const char* name;
  const char* description;
  int64_t count;
  int ui; /* a profile.proto: /debug/pprof/ui/<name> draws it */
} row_t;

static int row_cmp(const void* a, const void* b) {
  return strcmp(((const row_t*)a)->name, ((const row_t*)b)->name);
}

static void work_index(uv_pprof__job_t* job) {
  named_job_t* nj = job->data;
  uv_pprof__response_t* res = &nj->req->res;
  uv_pprof__buf_t* b = &res->body;
  row_t rows[UV_PPROF__MAX_ROUTES];
  size_t n = 0;
  size_t i;
  int goroutine = 0;

  for (i = 0; i < nj->nroutes; i++) {
    const uv_pprof__route_t* r = nj->routes[i];
    const uv_pprof__profile_t* p = r->profile;
    void* snap;
    if (r->description == NULL)
      continue;
    rows[n].name = r->name;
    rows[n].description = r->description;
    rows[n].count = 0;
    rows[n].ui = p != NULL || (r->flags & UV_PPROF__ROUTE_PROTO) != 0;
    if (p != NULL && p->loop_snapshot == NULL) {
      rows[n].count = p->count();
    } else if (p != NULL && job_snapshot(nj, i, &snap) == 0) {
      rows[n].count = p->snapshot_count(snap);
      p->snapshot_free(snap);
    }
    goroutine |= strcmp(rows[n].name, "goroutine") == 0;
    n++;
  }
  qsort(rows, n, sizeof(rows[0]), row_cmp);

  uv_pprof__buf_printf(b,
                       "<html>\n<head>\n<title>/debug/pprof/</title>\n"
                       "<style>\n.profile-name{\n\tdisplay:inline-block;\n"
                       "\twidth:6rem;\n}\n</style>\n</head>\n<body>\n"
                       "/debug/pprof/<br>\n<br>\n"
                       "Types of profiles available:\n<table>\n"
                       "<thead><td>Count</td><td>Profile</td></thead>\n");
  for (i = 0; i < n; i++) {
    uv_pprof__buf_printf(b, "<tr><td>%lld</td><td><a href='",
                         (long long)rows[i].count);
    uv_pprof__buf_html(b, rows[i].name);
    uv_pprof__buf_printf(b, "?debug=1'>");
    uv_pprof__buf_html(b, rows[i].name);
    uv_pprof__buf_printf(b, "</a></td></tr>\n");
  }
  uv_pprof__buf_printf(b, "</table>\n");
  if (goroutine)
    uv_pprof__buf_printf(
        b, "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n");
  uv_pprof__buf_printf(b,
                       "<br>\n<p>\nAlso: <a href=\"/metrics\">/metrics"
                       "</a> (Prometheus)");
  if (uv_pprof__timeline_interval() > 0)
    uv_pprof__buf_printf(b,
                         ", the memory timeline (every %u s): <a "
                         "href=\"timeline\">CSV</a>, <a "
                         "href=\"timeline?format=svg\">chart</a>; what "
                         "grew steadily: <a href=\"leaks?format=html\">"
                         "leaks</a>",
                         uv_pprof__timeline_interval());
  else
    uv_pprof__buf_printf(b,
                         ", the memory timeline: off "
                         "(UV_PPROF_TIMELINE=&lt;seconds&gt;)");
  uv_pprof__buf_printf(b, "\n</p>\n");
  /* The built-in UI (profile/ui.c): each profile drawn in the browser. */
  uv_pprof__buf_printf(b,
                       "<br>\n<p>\nIn the browser (flame graph, top table; "
                       "nothing to install):");
  for (i = 0; i < n; i++) {
    int cpu = strcmp(rows[i].name, "profile") == 0;
    if (!rows[i].ui)
      continue;
    uv_pprof__buf_printf(b, " <a href=\"ui/");
    uv_pprof__buf_html(b, rows[i].name);
    uv_pprof__buf_printf(b, "%s\">", cpu ? "?seconds=10" : "");
    uv_pprof__buf_html(b, rows[i].name);
    uv_pprof__buf_printf(b, "%s</a>", cpu ? " (CPU, 10 s)" : "");
  }
  uv_pprof__buf_printf(b, "\n</p>\n");
  uv_pprof__buf_printf(b, "<br>\n<p>\nProfile Descriptions:\n<ul>\n");
  for (i = 0; i < n; i++) {
    uv_pprof__buf_printf(b, "<li><div class=profile-name>");
    uv_pprof__buf_html(b, rows[i].name);
    uv_pprof__buf_printf(b, ": </div> ");
    uv_pprof__buf_html(b, rows[i].description);
    uv_pprof__buf_printf(b, "</li>\n");
  }
  uv_pprof__buf_printf(b, "</ul>\n</p>\n</body>\n</html>");
  res->status = 200;
  res->content_type = "text/html; charset=utf-8";
  if (b->oom)
    uv_pprof__error(nj->req, 500, "out of memory");
}

static void serve_index(uv_pprof__request_t* req) {
  named_job_t* nj = job_new(req);

  if (nj == NULL)
    return;
  nj->job.work = work_index;
  req->route_data = nj;
  req->abandon = abandon_job;
  submit(nj);
}

const uv_pprof__route_t uv_pprof__route_index = {
    .name = "index",
    .path = "/debug/pprof/",
    .serve = serve_index,
};
