/* The process's memory figures shared by /metrics and the timeline: the
 * allocator's own (jemalloc's stats through src/jemalloc.c, glibc's
 * mallinfo2, nothing for an allocator we cannot read) and the resident set
 * size. Which allocator serves malloc is told by the object that defines
 * it, so a sanitizer's malloc is never reported under glibc's name. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "proc.h"

uint64_t uv_pprof__memstat_rss(void) {
  unsigned long size = 0;
  unsigned long resident = 0;
  FILE* f = fopen("/proc/self/statm", "re");
  long page = sysconf(_SC_PAGESIZE);

  if (f == NULL)
    return 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2)
    resident = 0;
  fclose(f);
  return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

/* The basename of the object that defines the malloc we call, or "". */
static const char* malloc_object(void) {
  void* (*fn)(size_t) = malloc;
  Dl_info info;
  const char* slash;

  if (dladdr(*(void**)&fn, &info) == 0 || info.dli_fname == NULL)
    return "";
  slash = strrchr(info.dli_fname, '/');
  return slash != NULL ? slash + 1 : info.dli_fname;
}

void uv_pprof__memstat_read(uv_pprof__memstat_t* m) {
  struct rusage ru;

  memset(m, 0, sizeof(*m));
  m->object = malloc_object();
  if (uv_pprof__je_stats(&m->je) == 0) {
    m->kind = UV_PPROF__ALLOC_JEMALLOC;
    m->heap_alloc = m->je.value[UV_PPROF__JE_ALLOCATED];
    m->heap_inuse = m->je.value[UV_PPROF__JE_ACTIVE];
  } else if (strncmp(m->object, "libc.so", 7) == 0) {
    struct mallinfo2 mi = mallinfo2();
    m->kind = UV_PPROF__ALLOC_GLIBC;
    m->mi.arena = mi.arena;
    m->mi.ordblks = mi.ordblks;
    m->mi.hblks = mi.hblks;
    m->mi.hblkhd = mi.hblkhd;
    m->mi.uordblks = mi.uordblks;
    m->mi.fordblks = mi.fordblks;
    m->mi.keepcost = mi.keepcost;
    /* As /debug/pprof/heap?debug=1 maps them to Go's names. */
    m->heap_alloc = mi.uordblks + mi.hblkhd;
    m->heap_inuse = mi.uordblks + mi.hblkhd;
  } else {
    m->kind = UV_PPROF__ALLOC_OTHER;
  }
  m->rss = uv_pprof__memstat_rss();
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    m->max_rss = (uint64_t)ru.ru_maxrss * 1024;
}
