/* Routes of /debug/pprof/ as Go's net/http/pprof answers them: the index
 * page, cmdline, named profiles with their debug and seconds (delta)
 * parameters, and the one error helper. Profiles are built on the worker
 * thread; a delta waits on an unref'd uv timer between its two snapshots.
 * Adding a profile means adding its descriptor to `profiles` below. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PREFIX "/debug/pprof/"
#define MAX_DELTA_SECONDS 3600

static const uv_pprof__profile_t* const profiles[] = {
    &uv_pprof__profile_allocs,    &uv_pprof__profile_block,
    &uv_pprof__profile_goroutine, &uv_pprof__profile_heap,
    &uv_pprof__profile_mutex,     &uv_pprof__profile_threadcreate,
};

/* Index rows that are handlers rather than named profiles (count 0). */
static const struct {
  const char* name;
  const char* description;
} handlers[] = {
    {"cmdline", "The command line invocation of the current program"},
    {"profile",
     "CPU profile. You can specify the duration in the seconds "
     "GET parameter. After you get the profile file, use the go "
     "tool pprof command to investigate the profile."},
};

/* ---- the error helper and parameters ----------------------------------- */

void uv_pprof__error(uv_pprof__request_t* req, int status, const char* msg) {
  uv_pprof__response_t* res = &req->res;

  uv_pprof__buf_free(&res->body);
  memset(res, 0, sizeof(*res));
  res->status = status;
  res->content_type = "text/plain; charset=utf-8";
  res->go_error = 1;
  uv_pprof__buf_printf(&res->body, "%s\n", msg);
}

int uv_pprof__query_get(const char* query, const char* key, char* buf,
                        size_t size) {
  const char* p = query;

  while (*p != '\0') {
    const char* end = strchr(p, '&');
    const char* eq;
    char* k;
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

    eq = memchr(p, '=', len);
    k = uv_pprof__http_unescape(p, eq != NULL ? (size_t)(eq - p) : len, 1);
    if (k != NULL && strcmp(k, key) == 0) {
      char* v = eq != NULL ? uv_pprof__http_unescape(
                                 eq + 1, len - (size_t)(eq + 1 - p), 1)
                           : strdup("");
      free(k);
      if (v == NULL)
        return 0;
      snprintf(buf, size, "%s", v);
      free(v);
      return 1;
    }
    free(k);
    p += len;
    if (*p == '&')
      p++;
  }
  return 0;
}

/* strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no overflow. */
static int parse_int(const char* s, long long* out) {
  char* end;

  if (*s == '\0' || *s == ' ' || (s[0] == '0' && s[1] == 'x'))
    return -1;
  errno = 0;
  *out = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s)
    return -1;
  return 0;
}

/* strconv.Atoi with Go's handlers' convention: anything invalid is 0. */
static int param_int(const uv_pprof__request_t* req, const char* key) {
  char v[32];
  long long n;

  if (!uv_pprof__query_get(req->query, key, v, sizeof(v)) ||
      parse_int(v, &n) != 0 || n > INT_MAX || n < INT_MIN)
    return 0;
  return (int)n;
}

static void respond_text(uv_pprof__request_t* req, int status, const char* type,
                         const char* text) {
  uv_pprof__response_t* res = &req->res;

  res->status = status;
  res->content_type = type;
  uv_pprof__buf_printf(&res->body, "%s", text);
  uv_pprof__request_finish(req);
}

/* ---- profile jobs ------------------------------------------------------ */

typedef struct route_job_s {
  uv_pprof__job_t job;
  uv_pprof__request_t* req;
  const uv_pprof__profile_t* profile; /* NULL: the index page */
  int debug;
  long long seconds; /* > 0: delta */
  void* snap0;       /* delta: the first snapshot */
  int64_t time0;
  int waiting; /* delta: between the snapshots, on `timer` */
  uv_timer_t timer;
  /* Taken on the loop thread just before the job (loop_snapshot), per
   * profile: the job's own, or every such profile's for the index page. */
  void* loop_snaps[UV_PPROF__ARRAY_SIZE(profiles)];
} route_job_t;

static void job_free(route_job_t* rj) {
  size_t i;

  if (rj->snap0 != NULL)
    rj->profile->snapshot_free(rj->snap0);
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(profiles); i++)
    if (rj->loop_snaps[i] != NULL)
      profiles[i]->snapshot_free(rj->loop_snaps[i]);
  free(rj);
}

/* On the loop thread, before each job: the loop snapshots the job needs. */
static int take_loop_snapshots(route_job_t* rj) {
  uv_loop_t* loop = uv_pprof__server_loop(rj->req->server);
  size_t i;
  int err;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(profiles); i++) {
    const uv_pprof__profile_t* p = profiles[i];
    if (p->loop_snapshot == NULL || (rj->profile != NULL && rj->profile != p))
      continue;
    err = p->loop_snapshot(loop, &rj->loop_snaps[i]);
    if (err != 0)
      return err;
  }
  return 0;
}

/* On the worker: the snapshot of profiles[index], the loop's (completed)
 * or a new one. */
static int job_snapshot(route_job_t* rj, size_t index, void** snap) {
  const uv_pprof__profile_t* p = profiles[index];
  int err;

  if (p->loop_snapshot == NULL)
    return p->snapshot(snap);
  *snap = rj->loop_snaps[index];
  rj->loop_snaps[index] = NULL;
  err = p->complete(*snap);
  if (err != 0)
    p->snapshot_free(*snap);
  return err;
}

static size_t profile_index(const uv_pprof__profile_t* p) {
  size_t i;

  for (i = 0; profiles[i] != p; i++)
    ;
  return i;
}

static void fail_collect(uv_pprof__request_t* req, const char* name, int err) {
  char msg[160];

  snprintf(msg, sizeof(msg), "could not collect the %s profile: %s", name,
           uv_strerror(err));
  uv_pprof__error(req, 500, msg);
}

/* Encodes snap (and, for a delta, snap0 before it) as a gzipped proto. */
static int encode(route_job_t* rj, void* snap, uv_pprof__buf_t* out) {
  const uv_pprof__profile_t* p = rj->profile;
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  int err;

  if (b == NULL)
    return UV_ENOMEM;
  p->types(b);
  if (rj->snap0 != NULL) {
    int64_t now = uv_pprof__now_ns();
    p->emit(rj->snap0, b, -1);
    uv_pprof__builder_time(b, now);
    uv_pprof__builder_duration(b, now - rj->time0);
  }
  p->emit(snap, b, 1);
  err = uv_pprof__builder_encode(b, out);
  uv_pprof__builder_free(b);
  return err;
}

static void work_profile(uv_pprof__job_t* job) {
  route_job_t* rj = job->data;
  uv_pprof__request_t* req = rj->req;
  uv_pprof__response_t* res = &req->res;
  const uv_pprof__profile_t* p = rj->profile;
  void* snap = NULL;
  int err;

  err = job_snapshot(rj, profile_index(p), &snap);
  if (err != 0) {
    fail_collect(req, p->name, err);
    return;
  }
  if (rj->seconds > 0 && rj->snap0 == NULL) {
    rj->snap0 = snap; /* first half of a delta */
    rj->time0 = uv_pprof__now_ns();
    return;
  }
  res->status = 200;
  if (rj->debug != 0) {
    res->content_type = "text/plain; charset=utf-8";
    err = p->text(snap, rj->debug, &res->body);
  } else {
    res->content_type = "application/octet-stream";
    snprintf(res->disposition, sizeof(res->disposition), "%s%s", p->name,
             rj->seconds > 0 ? "-delta" : "");
    err = encode(rj, snap, &res->body);
  }
  p->snapshot_free(snap);
  if (err != 0)
    fail_collect(req, p->name, err);
}

static void on_delta_timer(uv_timer_t* timer);
static void on_job_done(uv_pprof__job_t* job, int cancelled);

static void submit(route_job_t* rj) {
  uv_pprof__request_t* req = rj->req;
  int err;

  rj->job.done = on_job_done;
  rj->job.data = rj;
  err = take_loop_snapshots(rj);
  if (err != 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "could not walk the loop: %s", uv_strerror(err));
    job_free(rj);
    uv_pprof__error(req, 500, msg);
    uv_pprof__request_finish(req);
    return;
  }
  err = uv_pprof__worker_submit(uv_pprof__server_worker(req->server), &rj->job);
  if (err != 0) {
    char msg[128];
    snprintf(msg, sizeof(msg), "could not start uv_pprof's worker: %s",
             uv_strerror(err));
    job_free(rj);
    uv_pprof__error(req, 500, msg);
    uv_pprof__request_finish(req);
  }
}

static void on_timer_close(uv_handle_t* handle) {
  route_job_t* rj = handle->data;
  uv_pprof__request_t* req = rj->req;

  uv_pprof__handle_disown(handle);
  if (req->conn != NULL && req->res.status == 0) {
    /* the window is over: take the second snapshot */
    rj->waiting = 0;
    submit(rj);
    return;
  }
  job_free(rj);
  uv_pprof__request_finish(req);
}

static void on_delta_timer(uv_timer_t* timer) {
  uv_close((uv_handle_t*)timer, on_timer_close);
}

static void on_job_done(uv_pprof__job_t* job, int cancelled) {
  route_job_t* rj = job->data;
  uv_pprof__request_t* req = rj->req;

  if (!cancelled && req->conn != NULL && rj->seconds > 0 &&
      req->res.status == 0) {
    /* p0 is taken; wait for the window on the loop, never blocking it */
    uv_loop_t* loop = uv_pprof__server_loop(req->server);
    rj->waiting = 1;
    rj->timer.data = rj;
    uv_timer_init(loop, &rj->timer);
    /* The window starts now, not at the loop's last tick. */
    uv_update_time(loop);
    uv_pprof__handle_own(&rj->timer);
    uv_unref((uv_handle_t*)&rj->timer);
    uv_timer_start(&rj->timer, on_delta_timer, (uint64_t)rj->seconds * 1000, 0);
    return;
  }
  job_free(rj);
  uv_pprof__request_finish(req);
}

void uv_pprof__route_abandon(uv_pprof__request_t* req) {
  if (req->abandon != NULL)
    req->abandon(req);
}

/* A job on the worker finishes and is then freed by on_job_done; a delta
 * waiting for its window stops waiting. */
static void abandon_job(uv_pprof__request_t* req) {
  route_job_t* rj = req->route_data;

  if (rj->waiting && !uv_is_closing((uv_handle_t*)&rj->timer))
    uv_close((uv_handle_t*)&rj->timer, on_timer_close);
}

static void serve_profile(uv_pprof__request_t* req,
                          const uv_pprof__profile_t* p) {
  route_job_t* rj;
  char sec[32];
  long long seconds = 0;
  int debug = param_int(req, "debug");

  if (uv_pprof__query_get(req->query, "seconds", sec, sizeof(sec)) &&
      sec[0] != '\0') {
    if (parse_int(sec, &seconds) != 0 || seconds <= 0) {
      uv_pprof__error(req, 400,
                      "invalid value for \"seconds\" - must be a positive "
                      "integer");
    } else if (!(p->flags & UV_PPROF__PROFILE_DELTA)) {
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
  rj = calloc(1, sizeof(*rj));
  if (rj == NULL) {
    uv_pprof__error(req, 500, "out of memory");
    uv_pprof__request_finish(req);
    return;
  }
  rj->req = req;
  rj->profile = p;
  rj->debug = debug;
  rj->seconds = seconds;
  rj->job.work = work_profile;
  req->route_data = rj;
  req->abandon = abandon_job;
  submit(rj);
}

/* ---- the index page ---------------------------------------------------- */

typedef struct {
  const char* name;
  const char* description;
  int64_t count;
} row_t;

static int row_cmp(const void* a, const void* b) {
  return strcmp(((const row_t*)a)->name, ((const row_t*)b)->name);
}

static void work_index(uv_pprof__job_t* job) {
  route_job_t* rj = job->data;
  uv_pprof__response_t* res = &rj->req->res;
  uv_pprof__buf_t* b = &res->body;
  row_t rows[UV_PPROF__ARRAY_SIZE(profiles) + UV_PPROF__ARRAY_SIZE(handlers)];
  size_t n = 0;
  size_t i;
  int goroutine = 0;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(profiles); i++, n++) {
    const uv_pprof__profile_t* p = profiles[i];
    void* snap;
    rows[n].name = p->name;
    rows[n].description = p->description;
    rows[n].count = 0;
    if (p->loop_snapshot == NULL) {
      rows[n].count = p->count();
    } else if (job_snapshot(rj, i, &snap) == 0) {
      rows[n].count = p->snapshot_count(snap);
      p->snapshot_free(snap);
    }
    goroutine |= strcmp(rows[n].name, "goroutine") == 0;
  }
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(handlers); i++, n++) {
    rows[n].name = handlers[i].name;
    rows[n].description = handlers[i].description;
    rows[n].count = 0;
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
                         "href=\"timeline?format=svg\">chart</a>",
                         uv_pprof__timeline_interval());
  else
    uv_pprof__buf_printf(b,
                         ", the memory timeline: off "
                         "(UV_PPROF_TIMELINE=&lt;seconds&gt;)");
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
    uv_pprof__error(rj->req, 500, "out of memory");
}

static void serve_index(uv_pprof__request_t* req) {
  route_job_t* rj = calloc(1, sizeof(*rj));

  if (rj == NULL) {
    uv_pprof__error(req, 500, "out of memory");
    uv_pprof__request_finish(req);
    return;
  }
  rj->req = req;
  rj->job.work = work_index;
  req->route_data = rj;
  req->abandon = abandon_job;
  submit(rj);
}

/* ---- dispatch ---------------------------------------------------------- */

static void serve_cmdline(uv_pprof__request_t* req) {
  req->res.status = 200;
  req->res.content_type = "text/plain; charset=utf-8";
  if (uv_pprof__cmdline(&req->res.body) != 0)
    uv_pprof__error(req, 500, "could not read /proc/self/cmdline");
  uv_pprof__request_finish(req);
}

/* net/http's redirect: a short HTML body for GET and HEAD. */
static void redirect(uv_pprof__request_t* req, const char* path) {
  uv_pprof__response_t* res = &req->res;
  char* location;
  size_t len = strlen(path) + strlen(req->query) + 2;

  location = malloc(len);
  if (location == NULL) {
    uv_pprof__error(req, 500, "out of memory");
    uv_pprof__request_finish(req);
    return;
  }
  snprintf(location, len, "%s%s%s", path, req->query[0] ? "?" : "", req->query);
  res->status = 301;
  res->content_type = "text/html; charset=utf-8";
  uv_pprof__buf_printf(&res->body, "<a href=\"");
  uv_pprof__buf_html(&res->body, location);
  uv_pprof__buf_printf(&res->body, "\">Moved Permanently</a>.\n\n");
  /* The head is formatted before the request is freed; keep the string
   * alive in the body's buffer-owned copy. */
  free(req->path);
  req->path = location;
  res->location = req->path;
  uv_pprof__request_finish(req);
}

void uv_pprof__route(uv_pprof__request_t* req) {
  const char* path = req->path;
  char* clean = uv_pprof__http_clean_path(path);
  size_t i;

  uv_pprof__metrics_begin(req);
  if (clean == NULL) {
    uv_pprof__error(req, 500, "out of memory");
    uv_pprof__request_finish(req);
    return;
  }
  if (strcmp(clean, path) != 0) {
    redirect(req, clean);
    free(clean);
    return;
  }
  free(clean);
  if (strcmp(path, "/debug/pprof") == 0) {
    redirect(req, PREFIX);
    return;
  }
  if (strcmp(path, PREFIX) == 0) {
    serve_index(req);
    return;
  }
  if (strcmp(path, "/metrics") == 0) {
    uv_pprof__serve_metrics(req);
    return;
  }
  if (strncmp(path, PREFIX, strlen(PREFIX)) != 0) {
    respond_text(req, 404, "text/plain; charset=utf-8", "404 page not found\n");
    return;
  }
  path += strlen(PREFIX);
  if (strcmp(path, "cmdline") == 0) {
    serve_cmdline(req);
    return;
  }
  if (strcmp(path, "symbol") == 0) {
    uv_pprof__serve_symbol(req);
    return;
  }
  if (strcmp(path, "profile") == 0) {
    uv_pprof__serve_cpu(req);
    return;
  }
  if (strcmp(path, "timeline") == 0) {
    uv_pprof__serve_timeline(req);
    return;
  }
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(profiles); i++) {
    if (strcmp(path, profiles[i]->name) == 0) {
      serve_profile(req, profiles[i]);
      return;
    }
  }
  uv_pprof__error(req, 404, "Unknown profile");
  uv_pprof__request_finish(req);
}
