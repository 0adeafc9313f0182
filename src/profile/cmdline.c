/* /debug/pprof/cmdline: the process's argv joined by NUL bytes, as Go's
 * handler writes os.Args (no trailing NUL or newline), answered at once on
 * the loop thread (a few bytes of /proc). */
#include <fcntl.h>
#include <unistd.h>

#include "profile.h"

int uv_pprof__cmdline(uv_pprof__buf_t* out) {
  char chunk[4096];
  ssize_t n;
  int fd;

  fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return UV_EIO;
  while ((n = read(fd, chunk, sizeof(chunk))) > 0)
    uv_pprof__buf_append(out, chunk, (size_t)n);
  close(fd);
  if (n < 0)
    return UV_EIO;
  if (out->len > 0 && out->base[out->len - 1] == '\0')
    out->len--;
  return out->oom ? UV_ENOMEM : 0;
}

static void serve(uv_pprof__request_t* req) {
  req->res.status = 200;
  req->res.content_type = "text/plain; charset=utf-8";
  if (uv_pprof__cmdline(&req->res.body) != 0)
    uv_pprof__error(req, 500, "could not read /proc/self/cmdline");
  uv_pprof__request_finish(req);
}

const uv_pprof__route_t uv_pprof__route_cmdline = {
    .name = "cmdline",
    .path = "/debug/pprof/cmdline",
    .serve = serve,
    .description = "The command line invocation of the current program",
};
