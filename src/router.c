/* The one route table of uv_pprof and the dispatch from it. Every endpoint
 * is one row: its descriptor, uv_pprof__route_<name>, defined in the
 * endpoint's own file (path, handler, index-page description, body limit,
 * parameters). The router dispatches from it, the index page lists it,
 * /metrics names its per-endpoint series after it (in this order) and the
 * server takes the body limit from it. Adding an endpoint means adding its
 * file and its row. Paths that need cleaning are redirected as Go's
 * ServeMux does. */
#include <stdlib.h>
#include <string.h>

#include "router.h"

#define PREFIX "/debug/pprof/"

#define ROUTES(X) \
  X(index)        \
  X(allocs)       \
  X(block)        \
  X(cmdline)      \
  X(goroutine)    \
  X(heap)         \
  X(leaks)        \
  X(metrics)      \
  X(mutex)        \
  X(profile)      \
  X(symbol)       \
  X(threadcreate) \
  X(timeline)     \
  X(ui)

#define X(name) extern const uv_pprof__route_t uv_pprof__route_##name;
ROUTES(X)
#undef X

static const uv_pprof__route_t* const routes[] = {
#define X(name) &uv_pprof__route_##name,
    ROUTES(X)
#undef X
};

#define NROUTES UV_PPROF__ARRAY_SIZE(routes)

_Static_assert(NROUTES <= UV_PPROF__MAX_ROUTES,
               "UV_PPROF__MAX_ROUTES is too small for the route table");

static size_t find(const char* path) {
  size_t i;

  for (i = 0; i < NROUTES; i++) {
    const char* p = routes[i]->path;
    if (routes[i]->flags & UV_PPROF__ROUTE_PREFIX
            ? strncmp(path, p, strlen(p)) == 0
            : strcmp(path, p) == 0)
      return i;
  }
  return NROUTES;
}

const uv_pprof__route_t* const* uv_pprof__route_table(size_t* count) {
  *count = NROUTES;
  return routes;
}

const uv_pprof__route_t* uv_pprof__route_find(const char* path) {
  size_t i = find(path);

  return i < NROUTES ? routes[i] : NULL;
}

/* net/http's redirect: a short HTML body for GET and HEAD. The Location is
 * built by http.c, escaped: the path came percent-decoded, and a CR, LF or
 * backslash written back raw would add headers or leave the origin. */
static void redirect(uv_pprof__request_t* req, const char* path) {
  uv_pprof__response_t* res = &req->res;
  uv_pprof__buf_t location;
  int err;

  uv_pprof__buf_init(&location);
  err = uv_pprof__http_location(path, req->query, &location);
  if (err != 0) {
    uv_pprof__buf_free(&location);
    uv_pprof__request_fail(
        req, err == UV_ENOMEM ? 500 : 400,
        err == UV_ENOMEM ? "out of memory" : "Bad Request: invalid path");
    return;
  }
  res->status = 301;
  res->content_type = "text/html; charset=utf-8";
  uv_pprof__buf_printf(&res->body, "<a href=\"");
  uv_pprof__buf_html(&res->body, location.base);
  uv_pprof__buf_printf(&res->body, "\">Moved Permanently</a>.\n\n");
  /* The head is formatted before the request is freed: the request keeps
   * the string. */
  free(req->path);
  req->path = location.base;
  res->location = req->path;
  uv_pprof__request_finish(req);
}

void uv_pprof__route(uv_pprof__request_t* req) {
  const char* path = req->path;
  char* clean = uv_pprof__http_clean_path(path);

  req->routes = routes;
  req->nroutes = NROUTES;
  req->route_index = find(path);
  req->route = req->route_index < NROUTES ? routes[req->route_index] : NULL;
  uv_pprof__metrics_begin(req);
  if (clean == NULL) {
    uv_pprof__request_fail(req, 500, "out of memory");
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
  } else if (req->route != NULL) {
    req->route->serve(req);
  } else if (strncmp(path, PREFIX, strlen(PREFIX)) != 0) {
    req->res.status = 404;
    req->res.content_type = "text/plain; charset=utf-8";
    uv_pprof__buf_printf(&req->res.body, "404 page not found\n");
    uv_pprof__request_finish(req);
  } else {
    uv_pprof__request_fail(req, 404, "Unknown profile");
  }
}
