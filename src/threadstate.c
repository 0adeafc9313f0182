/* What one thread of the process is doing now, from
 * /proc/self/task/TID/syscall: running, or blocked in a system call (its
 * number, arguments, user stack pointer and pc), or in the kernel for a
 * fault. The stall watchdog tells a loop waiting for events from one held
 * in a callback with it, and copies a blocked thread's stack without
 * interrupting its system call. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

int uv_pprof__parse_syscall(const char* text, uv_pprof__syscall_t* out) {
  unsigned long long v[9];
  const char* p = text;
  char* end;
  long nr;
  int n = 0;

  memset(out, 0, sizeof(*out));
  if (strncmp(text, "running", 7) == 0) {
    out->state = UV_PPROF__THREAD_RUNNING;
    return 0;
  }
  errno = 0;
  nr = strtol(p, &end, 10);
  if (end == p || errno != 0)
    return UV_EINVAL;
  p = end;
  while (n < 9 && *p == ' ') {
    p++;
    if (strncmp(p, "0x", 2) != 0)
      return UV_EINVAL;
    errno = 0;
    v[n] = strtoull(p, &end, 16);
    if (end == p || errno != 0)
      return UV_EINVAL;
    p = end;
    n++;
  }
  if (*p != '\n' && *p != '\0')
    return UV_EINVAL;
  out->nr = nr;
  if (nr < 0 && n == 2) { /* in the kernel, not in a system call */
    out->state = UV_PPROF__THREAD_IN_KERNEL;
    out->sp = (uintptr_t)v[0];
    out->pc = (uintptr_t)v[1];
    return 0;
  }
  if (nr < 0 || n != 8)
    return UV_EINVAL;
  out->state = UV_PPROF__THREAD_IN_SYSCALL;
  for (n = 0; n < 6; n++)
    out->args[n] = (uintptr_t)v[n];
  out->sp = (uintptr_t)v[6];
  out->pc = (uintptr_t)v[7];
  return 0;
}

int uv_pprof__thread_syscall(int tid, uv_pprof__syscall_t* out) {
  char path[64];
  char text[256];
  ssize_t n;
  int err;
  int fd;

  snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  do
    n = read(fd, text, sizeof(text) - 1);
  while (n < 0 && errno == EINTR);
  err = n < 0 ? uv_translate_sys_error(errno) : 0;
  close(fd);
  if (err != 0)
    return err;
  if (n == 0)
    return UV_ESRCH; /* a thread that has exited reads empty */
  text[n] = '\0';
  return uv_pprof__parse_syscall(text, out);
}

int uv_pprof__syscall_waits_on(const uv_pprof__syscall_t* s, int epfd) {
  if (s->state != UV_PPROF__THREAD_IN_SYSCALL || epfd < 0 ||
      s->args[0] != (uintptr_t)epfd)
    return 0;
#if defined(__x86_64__)
  return s->nr == 232 || s->nr == 281 || s->nr == 441;
#elif defined(__aarch64__)
  return s->nr == 22 || s->nr == 441;
#else
  return 0;
#endif
}
