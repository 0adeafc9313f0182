/* The one stderr report of a stall that outlasts UV_PPROF_STALL_REPORT_S:
 * which loop, for how long, on which thread, and the stack sampled last,
 * symbolized. It is written by the stall watchdog (the stuck loop cannot
 * serve a profile), in one write(2), so that it is never interleaved with
 * the host's own output. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

static void thread_name(int tid, char* name, size_t size) {
  char path[64];
  ssize_t n;
  int fd;

  name[0] = '\0';
  snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  n = read(fd, name, size - 1);
  close(fd);
  name[n > 0 ? n : 0] = '\0';
  name[strcspn(name, "\n")] = '\0';
}

/* One frame line per inlined frame: "\tname (file:line)", else the module
 * and offset, else the bare address. Symbolizer lock held. */
static void frame_lines(uv_pprof__buf_t* b, uintptr_t pc) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  size_t n = uv_pprof__symbolize(pc, f, UV_PPROF__ARRAY_SIZE(f));
  size_t i;

  if (n == 0) {
    uv_pprof__buf_printf(b, "\t0x%" PRIxPTR "\n", pc);
    return;
  }
  for (i = 0; i < n; i++) {
    if (f[i].name == NULL) {
      const char* module = f[i].module != NULL ? f[i].module : "";
      const char* base = strrchr(module, '/');
      uv_pprof__buf_printf(b, "\t0x%" PRIxPTR " %s\n", pc,
                           base != NULL ? base + 1 : module);
    } else if (f[i].file != NULL) {
      uv_pprof__buf_printf(b, "\t%s (%s:%d)\n",
                           uv_pprof__symbol_readable(f[i].name), f[i].file,
                           f[i].line);
    } else {
      uv_pprof__buf_printf(b, "\t%s+0x%" PRIxPTR "\n",
                           uv_pprof__symbol_readable(f[i].name),
                           pc - f[i].start);
    }
  }
}

void uv_pprof__stall_report(const uv_pprof__stall_report_t* r) {
  uv_pprof__buf_t b;
  char name[32];
  const char* phase = uv_pprof__phase_name(r->phase);
  size_t off = 0;
  size_t i;

  thread_name(r->tid, name, sizeof(name));
  uv_pprof__buf_init(&b);
  uv_pprof__buf_printf(&b,
                       "uv_pprof: loop 0x%" PRIxPTR
                       " has been held by its callbacks for %.1f s "
                       "(stall threshold %u ms), on thread %d \"%s\"",
                       r->loop, (double)r->held_ns / 1e9, r->threshold_ms,
                       r->tid, name);
  if (r->type != UV_UNKNOWN_HANDLE && r->type != UV_STREAM)
    uv_pprof__buf_printf(&b, ", in a uv_%s_t callback",
                         uv_handle_type_name((uv_handle_type)r->type));
  else if (r->type == UV_STREAM)
    uv_pprof__buf_printf(&b, ", in a stream's read callback");
  if (phase != NULL)
    uv_pprof__buf_printf(&b, " (phase %s)", phase);
  if (r->npcs == 0) {
    uv_pprof__buf_printf(&b, "; its stack could not be sampled\n");
  } else {
    uv_pprof__buf_printf(&b, "; its stack now:\n");
    uv_pprof__symbolizer_lock();
    for (i = 0; i < r->npcs; i++)
      frame_lines(&b, r->pcs[i]);
    uv_pprof__symbolizer_unlock();
  }
  if (b.oom) {
    uv_pprof__buf_free(&b);
    return;
  }
  while (off < b.len) {
    ssize_t n = write(2, b.base + off, b.len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  uv_pprof__buf_free(&b);
}
