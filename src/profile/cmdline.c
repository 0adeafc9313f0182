/* /debug/pprof/cmdline: the process's argv joined by NUL bytes, as Go's
 * handler writes os.Args (no trailing NUL or newline). */
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"

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
