/* The request/HTTP layer: a request and its answer, owned by request.c from
 * the moment the server hands it over until its answer is written: the one
 * error helper, completion, the one "submit to the worker or answer 500"
 * path. Also the connection-independent HTTP of http.c: status texts, the
 * response head, percent-decoding, path cleaning, query parameters, the
 * loopback test. Depends on base.h and loop.h (a request carries its loop
 * and worker). */
#ifndef UV_PPROF_REQUEST_H
#define UV_PPROF_REQUEST_H

#include <sys/socket.h>

#include "loop.h"

/* Request limits. Larger requests get Go-style plain-text errors. */
#define UV_PPROF__MAX_URL 4096      /* 414 beyond */
#define UV_PPROF__MAX_HEADERS 16384 /* 431 beyond (names + values) */
/* Pipelined bytes kept per connection. */
#define UV_PPROF__MAX_PENDING_INPUT 65536

typedef struct uv_pprof__request_s uv_pprof__request_t;
typedef struct uv_pprof__route_s uv_pprof__route_t;

typedef struct uv_pprof__response_s {
  int status;
  const char* content_type; /* static string */
  char disposition[64];     /* attachment file name, or "" */
  const char* location;     /* Location header (redirects), static */
  /* extra "Name: value" lines, unused ones NULL: static strings, or
   * header_text */
  const char* headers[6];
  char header_text[192]; /* one formatted line headers[] may point to */
  int go_error;          /* X-Go-Pprof: 1 */
  uv_pprof__buf_t body;
} uv_pprof__response_t;

struct uv_pprof__request_s {
  /* Set by the server. */
  uv_loop_t* loop;            /* the serving loop: the handler's timers */
  uv_pprof__worker_t* worker; /* where the handler's heavy work runs */
  void* conn;                 /* the server's; NULL once the client left */
  /* Sends res (taking its body) and frees the request, or only frees it
   * when the client has gone. Called through uv_pprof__request_finish. */
  void (*finish)(uv_pprof__request_t* req);
  int method;  /* llhttp_method_t */
  char* path;  /* percent-decoded */
  char* query; /* raw query string without '?', "" if none */
  uv_pprof__buf_t body;
  /* Request headers a handler reads (up to 256 bytes each; empty if
   * absent). */
  uv_pprof__buf_t accept_encoding;
  uv_pprof__buf_t if_none_match;
  uv_pprof__response_t res;
  int busy; /* a handler owns it (see uv_pprof__route) */
  /* Set by the router: the route matched (NULL: none), and the whole table,
   * for the handlers that list routes (the index page, /metrics). */
  const uv_pprof__route_t* route;
  const uv_pprof__route_t* const* routes;
  size_t nroutes;
  size_t route_index; /* route's row in routes (nroutes: none) */
  uint64_t start_ns;  /* uv_hrtime() when routed */
  /* Set by the handler that owns a busy request: its state, and what to do
   * when the client goes away (see uv_pprof__request_abandon). */
  void* route_data;
  void (*abandon)(uv_pprof__request_t* req);
  /* Optional, set by the same handler: the client will send nothing more
   * (it half-closed, as `nc -N` does, or closed). A handler waiting for a
   * window ends it now and answers with what it has, as Go's handlers do
   * when the request's context ends; the others answer as usual. */
  void (*hurry)(uv_pprof__request_t* req);
};

/* ---- src/request.c: a request's life ---------------------------------- */

/* A new request of a connection (`conn`, the server's) on the serving loop,
 * answered through `finish`. NULL when out of memory. Loop thread. */
uv_pprof__request_t* uv_pprof__request_new(
    uv_loop_t* loop, uv_pprof__worker_t* worker, void* conn,
    void (*finish)(uv_pprof__request_t* req));
/* Frees req with everything it holds (path, query, bodies). */
void uv_pprof__request_free(uv_pprof__request_t* req);

/* Fills req->res with Go's error form: text/plain, X-Go-Pprof: 1, message +
 * "\n" (what was in res before is dropped). */
void uv_pprof__error(uv_pprof__request_t* req, int status, const char* msg);
/* Answers req: writes req->res, or drops it when the client has gone, and
 * frees req. The owner calls it exactly once. Loop thread. */
void uv_pprof__request_finish(uv_pprof__request_t* req);
/* uv_pprof__error, then uv_pprof__request_finish. */
void uv_pprof__request_fail(uv_pprof__request_t* req, int status,
                            const char* msg);
/* Queues job on the request's worker. On failure answers 500 with the
 * reason and finishes req, and returns the error: the caller then frees
 * only its own state (job included). Loop thread. */
int uv_pprof__request_submit(uv_pprof__request_t* req, uv_pprof__job_t* job);
/* The client of a busy request went away or the server stops: calls the
 * owner's req->abandon, which cancels its timers; a job already on the
 * worker finishes on its own. Loop thread. */
void uv_pprof__request_abandon(uv_pprof__request_t* req);
/* The client of a busy request has half-closed: calls the owner's
 * req->hurry, if any. The answer is still written. Loop thread. */
void uv_pprof__request_hurry(uv_pprof__request_t* req);

/* ---- src/http.c: HTTP without a connection ----------------------------- */

/* Formats the status line and headers of res (with the body length
 * `body_len`) into out, Go's header order. Returns 0, UV_ENOMEM, or
 * UV_EINVAL when a header value holds a line break (nothing is written
 * then that could split a header). */
int uv_pprof__http_head(const uv_pprof__response_t* res, size_t body_len,
                        int keep_alive, uv_pprof__buf_t* out);
const char* uv_pprof__http_status_text(int status);
/* Percent-decodes src[0..len) into a new NUL-terminated string; '+' is kept
 * when !plus_is_space. Returns NULL on a bad escape (errno EINVAL) or out
 * of memory (errno ENOMEM). */
char* uv_pprof__http_unescape(const char* src, size_t len, int plus_is_space);
/* The Location of a redirect to `path` (clean, absolute) with the raw
 * `query` ("" for none), into out: the path escaped as Go's
 * url.URL.String() escapes it (so "\\", CR and LF travel as %5C, %0D, %0A)
 * and the query's bytes outside a URL's set escaped too. Always a path on
 * the same origin: UV_EINVAL when path does not start with exactly one "/".
 * Returns 0, UV_EINVAL or UV_ENOMEM. */
int uv_pprof__http_location(const char* path, const char* query,
                            uv_pprof__buf_t* out);
/* Go's path.Clean of an absolute path, keeping a trailing slash as
 * net/http's ServeMux does. Returns a new string or NULL. */
char* uv_pprof__http_clean_path(const char* path);
/* 1 when addr is a loopback address (127/8, ::1, ::ffff:127/104). */
int uv_pprof__is_loopback(const struct sockaddr* addr);
/* 1 when a Host header's value (len bytes) names this machine's loopback:
 * "localhost" (any case) or a loopback IPv4 or bracketed IPv6 literal, each
 * with or without ":port". A loopback server without a token answers only
 * those (DNS rebinding: a page's own name, rebound to 127.0.0.1, arrives
 * as its Host). */
int uv_pprof__http_host_is_local(const char* host, size_t len);
/* First value of `key` in a raw query string, URL-decoded into buf.
 * Returns 1 when present, 0 when absent. */
int uv_pprof__query_get(const char* query, const char* key, char* buf,
                        size_t size);
/* 1 when an Accept-Encoding value takes gzip (a q of 0 refuses it). */
int uv_pprof__accepts_gzip(const char* value);
/* 1 when an If-None-Match value names `etag` (quoted, as sent; W/ compares
 * weakly) or is "*". */
int uv_pprof__etag_matches(const char* value, const char* etag);
/* strconv.ParseInt(s, 10, 64): an optional sign, decimal digits and
 * nothing else, no overflow. Returns 0 and *out, or -1. */
int uv_pprof__parse_int(const char* s, long long* out);

#endif /* UV_PPROF_REQUEST_H */
