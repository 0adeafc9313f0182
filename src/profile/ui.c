/* The built-in UI: /debug/pprof/ui/<profile> answers one page, the same for
 * every profile (it fetches /debug/pprof/<profile> with its own query and
 * draws it in the browser: src/ui/), and /debug/pprof/ui/assets/<file> its
 * script and style. The files are embedded and gzipped at build time
 * (cmake/ui_assets.cmake), so an answer is a copy from memory on the loop
 * thread: gzipped when the client takes gzip, 304 when its ETag is current. */
#include <string.h>

#include "profile.h"

/* The page runs only its own scripts and talks only to this process. */
#define CSP                                                               \
  "Content-Security-Policy: default-src 'none'; script-src 'self'; "      \
  "style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri " \
  "'none'; form-action 'none'; frame-ancestors 'none'"

static const uv_pprof__asset_t* find(const char* name) {
  size_t i;

  for (i = 0; i < uv_pprof__ui_nassets; i++)
    if (strcmp(uv_pprof__ui_assets[i].name, name) == 0)
      return &uv_pprof__ui_assets[i];
  return NULL;
}

static void answer(uv_pprof__request_t* req, const uv_pprof__asset_t* a) {
  uv_pprof__response_t* res = &req->res;
  const char* ae = req->accept_encoding.base;
  const char* inm = req->if_none_match.base;
  int gz = ae != NULL && uv_pprof__accepts_gzip(ae);
  const char* etag = gz ? a->etag_gz : a->etag;
  size_t n = 0;

  res->status = 200;
  res->content_type = a->content_type;
  /* Revalidated on every load (the names of the files never change, their
   * content does with each build): a 304 costs one round trip. */
  res->headers[n++] = "Cache-Control: no-cache";
  if (gz)
    res->headers[n++] = "Content-Encoding: gzip";
  if (strcmp(a->name, "index.html") == 0)
    res->headers[n++] = CSP;
  res->headers[n++] = etag;
  res->headers[n++] = "Vary: Accept-Encoding";
  if (inm != NULL && uv_pprof__etag_matches(inm, etag + strlen("ETag: "))) {
    res->status = 304;
  } else {
    uv_pprof__buf_append(&res->body, gz ? a->gz : a->data,
                         gz ? a->gz_len : a->len);
    if (res->body.oom)
      uv_pprof__error(req, 500, "out of memory");
  }
  uv_pprof__request_finish(req);
}

/* 1 when /debug/pprof/<name> is a route that answers a profile.proto. */
static int draws(const uv_pprof__request_t* req, const char* name) {
  static const char prefix[] = "/debug/pprof/";
  size_t i;

  for (i = 0; i < req->nroutes; i++) {
    const uv_pprof__route_t* r = req->routes[i];
    if ((r->profile != NULL || (r->flags & UV_PPROF__ROUTE_PROTO)) &&
        strncmp(r->path, prefix, sizeof(prefix) - 1) == 0 &&
        strcmp(r->path + sizeof(prefix) - 1, name) == 0)
      return 1;
  }
  return 0;
}

static void serve(uv_pprof__request_t* req) {
  const char* rest = req->path + strlen(req->route->path);
  const uv_pprof__asset_t* a;

  if (strncmp(rest, "assets/", 7) == 0) {
    a = find(rest + 7);
    if (a == NULL) {
      uv_pprof__error(req, 404, "404 page not found");
      req->res.go_error = 0;
      uv_pprof__request_finish(req);
      return;
    }
    answer(req, a);
    return;
  }
  if (!draws(req, rest)) {
    uv_pprof__request_fail(req, 404, "Unknown profile");
    return;
  }
  answer(req, find("index.html"));
}

/* Not on the index page's table: the page links each profile's UI. */
const uv_pprof__route_t uv_pprof__route_ui = {
    .name = "ui",
    .path = "/debug/pprof/ui/",
    .serve = serve,
    .flags = UV_PPROF__ROUTE_PREFIX,
};
