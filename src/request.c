/* A request's life once the server has parsed it: the one error helper,
 * completion through the server's req->finish (so that handlers never call
 * up into server.c), the one "submit to the worker or answer 500" path, and
 * abandonment when the client goes away (or hurrying when it half-closes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

uv_pprof__request_t* uv_pprof__request_new(
    uv_loop_t* loop, uv_pprof__worker_t* worker, void* conn,
    void (*finish)(uv_pprof__request_t* req)) {
  uv_pprof__request_t* req = calloc(1, sizeof(*req));

  if (req == NULL)
    return NULL;
  req->loop = loop;
  req->worker = worker;
  req->conn = conn;
  req->finish = finish;
  return req;
}

void uv_pprof__request_free(uv_pprof__request_t* req) {
  free(req->path);
  free(req->query);
  uv_pprof__buf_free(&req->body);
  uv_pprof__buf_free(&req->accept_encoding);
  uv_pprof__buf_free(&req->if_none_match);
  uv_pprof__buf_free(&req->res.body);
  free(req);
}

void uv_pprof__error(uv_pprof__request_t* req, int status, const char* msg) {
  uv_pprof__response_t* res = &req->res;

  uv_pprof__buf_free(&res->body);
  memset(res, 0, sizeof(*res));
  res->status = status;
  res->content_type = "text/plain; charset=utf-8";
  res->go_error = 1;
  uv_pprof__buf_printf(&res->body, "%s\n", msg);
}

void uv_pprof__request_finish(uv_pprof__request_t* req) {
  req->busy = 0;
  req->finish(req);
}

void uv_pprof__request_fail(uv_pprof__request_t* req, int status,
                            const char* msg) {
  uv_pprof__error(req, status, msg);
  uv_pprof__request_finish(req);
}

int uv_pprof__request_submit(uv_pprof__request_t* req, uv_pprof__job_t* job) {
  char msg[128];
  int err = uv_pprof__worker_submit(req->worker, job);

  if (err == 0)
    return 0;
  snprintf(msg, sizeof(msg), "could not start uv_pprof's worker: %s",
           uv_strerror(err));
  uv_pprof__request_fail(req, 500, msg);
  return err;
}

void uv_pprof__request_abandon(uv_pprof__request_t* req) {
  if (req->abandon != NULL)
    req->abandon(req);
}

void uv_pprof__request_hurry(uv_pprof__request_t* req) {
  if (req->hurry != NULL)
    req->hurry(req);
}
