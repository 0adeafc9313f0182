/* /debug/pprof/symbol: the symbol protocol of gperftools that Go's
 * net/http/pprof serves and `go tool pprof` (and jeprof) speak for addresses
 * a profile left unsymbolized. The answer is built on the worker thread (it
 * symbolizes) in a job of its own: it needs none of a profile job's
 * snapshots or timers. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "profile.h"

typedef struct {
  uv_pprof__job_t job;
  uv_pprof__request_t* req;
} symbol_job_t;

/* A token as C's strtoull(s, NULL, 0) reads it (0x... hex, 0... octal, else
 * decimal), but only when it is all number, as Go's ParseUint(s, 0, 64)
 * insists: no sign, no spaces, no trailing bytes, no overflow. 0 when not. */
static uintptr_t parse_token(const char* s, size_t len) {
  char buf[32];
  char* end;
  unsigned long long v;

  if (len == 0 || len >= sizeof(buf) || s[0] < '0' || s[0] > '9')
    return 0;
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  v = strtoull(buf, &end, 0);
  if (errno != 0 || *end != '\0' || v > UINTPTR_MAX)
    return 0;
  return (uintptr_t)v;
}

/* Appends "0x<addr> <name>\n" for an address inside a function. The name is
 * the linker's, mangled for C++, as gperftools answers: pprof demangles
 * whatever it receives (and honours its -symbolize=demangle=... choice), so
 * a demangled answer would be demangled twice or lose the choice. Inlining
 * is not told: the protocol has one name per address, the real function. */
static void append_symbol(uv_pprof__buf_t* out, uintptr_t addr) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  size_t n = uv_pprof__symbolize(addr, f, UV_PPROF__ARRAY_SIZE(f));

  if (n != 0 && f[n - 1].name != NULL)
    uv_pprof__buf_printf(out, "0x%" PRIxPTR " %s\n", addr, f[n - 1].name);
}

/* The number of '+'-separated tokens in p[0..end). */
static size_t count_tokens(const char* p, const char* end) {
  size_t n = 1;

  if (p == end)
    return 0;
  while ((p = memchr(p, '+', (size_t)(end - p))) != NULL) {
    n++;
    p++;
  }
  return n;
}

int uv_pprof__symbol_answer(const char* p, size_t len, uv_pprof__buf_t* out) {
  const char* end = p + len;
  size_t n = 0;

  if (count_tokens(p, end) > UV_PPROF__MAX_SYMBOL_ADDRS)
    return UV_E2BIG;
  uv_pprof__buf_printf(out, "num_symbols: 1\n");
  while (p < end) {
    const char* plus = memchr(p, '+', (size_t)(end - p));
    const char* stop = plus != NULL ? plus : end;
    uintptr_t addr = parse_token(p, (size_t)(stop - p));
    if (addr != 0)
      append_symbol(out, addr);
    p = plus != NULL ? plus + 1 : end;
    if (++n % 1024 == 0 && uv_pprof__stopping())
      return UV_ECANCELED;
  }
  return out->oom ? UV_ENOMEM : 0;
}

/* Go's handler: the addresses of a POST body, or else of the raw query
 * string. */
static void work_symbol(uv_pprof__job_t* job) {
  symbol_job_t* sj = job->data;
  uv_pprof__request_t* req = sj->req;
  uv_pprof__response_t* res = &req->res;
  int err;

  if (req->method == HTTP_POST)
    err = uv_pprof__symbol_answer(req->body.base != NULL ? req->body.base : "",
                                  req->body.len, &res->body);
  else
    err = uv_pprof__symbol_answer(req->query, strlen(req->query), &res->body);
  if (err == UV_E2BIG) {
    char msg[128];
    snprintf(msg, sizeof(msg),
             "Request Entity Too Large: at most %d addresses per request",
             UV_PPROF__MAX_SYMBOL_ADDRS);
    uv_pprof__error(req, 413, msg);
  } else if (err == UV_ENOMEM) {
    uv_pprof__error(req, 500, "out of memory");
  } else {
    res->status = 200;
    res->content_type = "text/plain; charset=utf-8";
  }
}

static void on_symbol_done(uv_pprof__job_t* job, int cancelled) {
  symbol_job_t* sj = job->data;
  uv_pprof__request_t* req = sj->req;

  free(sj);
  uv_pprof__request_finish(req);
}

static void serve(uv_pprof__request_t* req) {
  symbol_job_t* sj = calloc(1, sizeof(*sj));

  if (sj == NULL) {
    uv_pprof__request_fail(req, 500, "out of memory");
    return;
  }
  sj->req = req;
  sj->job.work = work_symbol;
  sj->job.done = on_symbol_done;
  sj->job.data = sj;
  if (uv_pprof__request_submit(req, &sj->job) != 0)
    free(sj);
}

const uv_pprof__route_t uv_pprof__route_symbol = {
    .name = "symbol",
    .path = "/debug/pprof/symbol",
    .serve = serve,
    .body_limit = UV_PPROF__MAX_SYMBOL_BODY,
};
