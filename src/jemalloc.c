/* Everything that touches jemalloc: mallctl found at run time (so a host
 * linked with -ljemalloc and one started with LD_PRELOAD=libjemalloc.so.2
 * both work), the profiling controls, prof.dump into a memfd, the heap_v2
 * parser, removal of jemalloc's own leading frames, and the allocator
 * statistics. Unbiasing and the profile itself are profile/heap.c's job.
 * Dumps and statistics run on uv_pprof's worker thread. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

#define ARENAS_ALL 4096 /* MALLCTL_ARENAS_ALL: the merged arena stats */
#define MAX_RANGES 8    /* executable segments of the jemalloc image */
#define STRIP_SCAN 16   /* frames searched for a static jemalloc's names */

typedef int (*mallctl_fn)(const char* name, void* oldp, size_t* oldlenp,
                          void* newp, size_t newlen);
typedef int (*nametomib_fn)(const char* name, size_t* mibp, size_t* miblenp);
typedef int (*bymib_fn)(const size_t* mib, size_t miblen, void* oldp,
                        size_t* oldlenp, void* newp, size_t newlen);

/* What lookup() found, once per process. */
static struct {
  mallctl_fn mallctl; /* NULL: malloc is not jemalloc's */
  nametomib_fn nametomib;
  bymib_fn bymib;
  uv_pprof__range_t ranges[MAX_RANGES]; /* the image's code */
  size_t nranges; /* 0: jemalloc is linked into a bigger object */
} je;

static uv_once_t lookup_once = UV_ONCE_INIT;

/* ---- finding jemalloc --------------------------------------------------- */

static int is_jemalloc_library(const char* path) {
  const char* base = strrchr(path, '/');

  base = base != NULL ? base + 1 : path;
  return strncmp(base, "libjemalloc", 11) == 0;
}

/* dl_iterate_phdr's callback: stops at the object holding *(uintptr_t*)arg
 * (mallctl) and notes its code when it is jemalloc's own library. */
static int on_object(struct dl_phdr_info* info, size_t size, void* arg) {
  uintptr_t addr = *(const uintptr_t*)arg;
  uv_pprof__range_t code[MAX_RANGES];
  size_t n = 0;
  int contains = 0;
  int i;

  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    uintptr_t end = start + ph->p_memsz;
    if (ph->p_type != PT_LOAD)
      continue;
    if (addr >= start && addr < end)
      contains = 1;
    if ((ph->p_flags & PF_X) && n < MAX_RANGES) {
      code[n].start = start;
      code[n].end = end;
      n++;
    }
  }
  if (!contains)
    return 0;
  if (info->dlpi_name != NULL && is_jemalloc_library(info->dlpi_name)) {
    memcpy(je.ranges, code, n * sizeof(code[0]));
    je.nranges = n;
  }
  return 1;
}

/* Whether a malloc called from here is served by the jemalloc of `ctl`: its
 * count of this thread's allocated bytes grows. For an executable built
 * without PIE that takes malloc's address (node), dlsym(RTLD_DEFAULT,
 * "malloc") answers the executable's PLT stub, not the definition that
 * calls reach, so the addresses alone cannot tell. */
static bool serves_malloc(mallctl_fn ctl) {
  void* (*volatile alloc)(size_t) = malloc; /* not elided with the free */
  uint64_t* allocated;
  size_t len = sizeof(allocated);
  uint64_t before;
  void* p;
  bool grew;

  if (ctl("thread.allocatedp", &allocated, &len, NULL, 0) != 0)
    return false;
  before = *allocated;
  p = alloc(4096);
  grew = p != NULL && *allocated - before >= 4096;
  free(p);
  return grew;
}

static void lookup(void) {
  void* ctl = dlsym(RTLD_DEFAULT, "mallctl");
  void* mal = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info ctl_info;
  Dl_info mal_info;
  uintptr_t addr = (uintptr_t)ctl;

  /* A jemalloc that is loaded but does not serve malloc (a library's
   * private copy, or ASan's interceptors in front of it) has nothing to
   * say about this process's heap. */
  if (ctl == NULL || mal == NULL || dladdr(ctl, &ctl_info) == 0 ||
      dladdr(mal, &mal_info) == 0)
    return;
  if (ctl_info.dli_fbase != mal_info.dli_fbase &&
      !serves_malloc((mallctl_fn)ctl))
    return;
  dl_iterate_phdr(on_object, &addr);
  je.nametomib = (nametomib_fn)dlsym(RTLD_DEFAULT, "mallctlnametomib");
  je.bymib = (bymib_fn)dlsym(RTLD_DEFAULT, "mallctlbymib");
  je.mallctl = (mallctl_fn)ctl;
}

static mallctl_fn get_mallctl(void) {
  uv_once(&lookup_once, lookup);
  return je.mallctl;
}

static int read_bool(mallctl_fn ctl, const char* name, int* out) {
  bool v = false;
  size_t len = sizeof(v);

  if (ctl(name, &v, &len, NULL, 0) != 0)
    return -1;
  *out = v;
  return 0;
}

static int read_size(mallctl_fn ctl, const char* name, size_t* out) {
  size_t len = sizeof(*out);

  return ctl(name, out, &len, NULL, 0) == 0 ? 0 : -1;
}

/* ---- state and controls ------------------------------------------------- */

void uv_pprof__je_state(uv_pprof__je_state_t* st) {
  mallctl_fn ctl = get_mallctl();
  size_t lg = 0;
  int v = 0;

  memset(st, 0, sizeof(*st));
  st->mode = UV_PPROF__HEAP_NO_JEMALLOC;
  if (ctl == NULL)
    return;
  st->mode = UV_PPROF__HEAP_NO_PROF;
  if (read_bool(ctl, "config.prof", &v) != 0 || !v)
    return;
  if (read_size(ctl, "opt.lg_prof_sample", &lg) == 0)
    st->lg_sample = (unsigned)lg;
  st->mode = UV_PPROF__HEAP_PROF_OFF;
  if (read_bool(ctl, "opt.prof", &v) != 0 || !v)
    return;
  st->mode = UV_PPROF__HEAP_PROF_ON;
  if (read_bool(ctl, "prof.active", &v) == 0)
    st->active = v;
  if (read_bool(ctl, "opt.prof_accum", &v) == 0)
    st->accum = v;
  if (read_size(ctl, "prof.lg_sample", &lg) == 0)
    st->lg_sample = (unsigned)lg;
}

int uv_pprof__je_activate(void) {
  mallctl_fn ctl = get_mallctl();
  uv_pprof__je_state_t st;
  bool on = true;

  uv_pprof__je_state(&st);
  if (st.mode != UV_PPROF__HEAP_PROF_ON || st.active)
    return 0;
  return ctl("prof.active", NULL, NULL, &on, sizeof(on)) == 0;
}

void uv_pprof__je_thread_unsampled(void) {
  mallctl_fn ctl = get_mallctl();
  bool off = false;

  if (ctl != NULL)
    ctl("thread.prof.active", NULL, NULL, &off, sizeof(off));
}

const char* uv_pprof__je_howto(uv_pprof__heap_mode_t mode) {
  switch (mode) {
    case UV_PPROF__HEAP_NO_JEMALLOC:
      return "heap profiling is off: this process's malloc is not jemalloc. "
             "Start it with LD_PRELOAD=libjemalloc.so.2 "
             "MALLOC_CONF=prof:true,prof_accum:true (or link it with "
             "-ljemalloc and set MALLOC_CONF) to turn it on";
    case UV_PPROF__HEAP_NO_PROF:
      return "heap profiling is off: this jemalloc was built without "
             "profiling (config.prof is false). Use a jemalloc configured "
             "with --enable-prof, such as Debian's libjemalloc2, with "
             "MALLOC_CONF=prof:true,prof_accum:true";
    case UV_PPROF__HEAP_PROF_OFF:
      return "heap profiling is off: jemalloc's profiling was not enabled "
             "at startup (opt.prof is false). Restart the process with "
             "MALLOC_CONF=prof:true,prof_accum:true to turn it on";
    case UV_PPROF__HEAP_PROF_ON:
      break;
  }
  return NULL;
}

/* ---- the heap_v2 parser -------------------------------------------------- */

typedef struct {
  const char* p;
  const char* end;
} cursor_t;

/* The next line, without its '\n'; 0 at the end of the text. */
static int next_line(cursor_t* c, const char** line, size_t* len) {
  const char* nl;

  if (c->p >= c->end)
    return 0;
  nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
  *line = c->p;
  *len = nl != NULL ? (size_t)(nl - c->p) : (size_t)(c->end - c->p);
  c->p = nl != NULL ? nl + 1 : c->end;
  return 1;
}

static int has_prefix(const char* s, size_t len, const char* prefix) {
  size_t n = strlen(prefix);

  return len >= n && memcmp(s, prefix, n) == 0;
}

static size_t skip_spaces(const char* s, size_t len, size_t i) {
  while (i < len && s[i] == ' ')
    i++;
  return i;
}

/* A decimal uint64 at s[*i]; -1 when there is none or it overflows. */
static int parse_u64(const char* s, size_t len, size_t* i, uint64_t* out) {
  uint64_t v = 0;
  size_t j = *i;

  if (j >= len || s[j] < '0' || s[j] > '9')
    return -1;
  for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
    unsigned d = (unsigned)(s[j] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *i = j;
  *out = v;
  return 0;
}

static int expect_char(const char* s, size_t len, size_t* i, char ch) {
  *i = skip_spaces(s, len, *i);
  if (*i >= len || s[*i] != ch)
    return -1;
  (*i)++;
  *i = skip_spaces(s, len, *i);
  return 0;
}

/* "  t<*|uid>: a: b [c: d][ name]"; *all is set for "t*". */
static int parse_counts(const char* s, size_t len, int* all,
                        uv_pprof__je_counts_t* out) {
  size_t i = 0;
  uint64_t uid;

  i = skip_spaces(s, len, i);
  if (i >= len || s[i] != 't')
    return -1;
  i++;
  if (i < len && s[i] == '*') {
    *all = 1;
    i++;
  } else {
    *all = 0;
    if (parse_u64(s, len, &i, &uid) != 0)
      return -1;
  }
  if (expect_char(s, len, &i, ':') != 0 ||
      parse_u64(s, len, &i, &out->cur_objs) != 0 ||
      expect_char(s, len, &i, ':') != 0 ||
      parse_u64(s, len, &i, &out->cur_bytes) != 0 ||
      expect_char(s, len, &i, '[') != 0 ||
      parse_u64(s, len, &i, &out->accum_objs) != 0 ||
      expect_char(s, len, &i, ':') != 0 ||
      parse_u64(s, len, &i, &out->accum_bytes) != 0)
    return -1;
  i = skip_spaces(s, len, i);
  if (i >= len || s[i] != ']')
    return -1;
  i++;
  /* Only a thread line may go on, with the thread's name. */
  return i == len || (!*all && s[i] == ' ') ? 0 : -1;
}

/* 0-15 for a hex digit, 16 for anything else. */
static const unsigned char hex_value[256] =
    {
#define H16 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16
        H16, H16, H16, 0,   1,   2,   3,   4,   5,   6,   7,  8,  9,
        16,  16,  16,  16,  16,  16,  16,  10,  11,  12,  13, 14, 15,
        16,  16,  16,  16,  16,  16,  16,  16,  16,  H16, 16, 10, 11,
        12,  13,  14,  15,  16,  16,  16,  16,  16,  16,  16, 16, 16,
        H16, H16, H16, H16, H16, H16, H16, H16, H16, /* 0x70 to 0xff */
#undef H16
};

typedef struct {
  uintptr_t* v;
  size_t n;
  size_t cap;
} frames_t;

/* "@ 0x.. 0x.." appended to f. A line of n bytes holds at most n / 4 + 1
 * addresses ("0x1 "), so room is made once per line. Returns 0, -1 when
 * malformed, UV_ENOMEM. */
static int parse_stack(const char* s, size_t len, frames_t* f) {
  size_t i = 1;

  if (f->cap - f->n < len / 4 + 1) {
    size_t cap = f->cap != 0 ? f->cap : 1024;
    uintptr_t* v;
    while (cap - f->n < len / 4 + 1)
      cap *= 2;
    v = realloc(f->v, cap * sizeof(*v));
    if (v == NULL)
      return UV_ENOMEM;
    f->v = v;
    f->cap = cap;
  }
  for (;;) {
    uintptr_t addr = 0;
    size_t start;
    unsigned h;

    i = skip_spaces(s, len, i);
    if (i == len)
      return 0;
    if (len - i < 3 || s[i] != '0' || (s[i + 1] != 'x' && s[i + 1] != 'X'))
      return -1;
    start = i += 2;
    for (; i < len && (h = hex_value[(unsigned char)s[i]]) < 16; i++)
      addr = (addr << 4) | h;
    if (i == start || i - start > sizeof(uintptr_t) * 2 ||
        (i < len && s[i] != ' '))
      return -1;
    f->v[f->n++] = addr;
  }
}

void uv_pprof__je_dump_free(uv_pprof__je_dump_t* d) {
  free(d->stacks);
  free(d->frames);
  memset(d, 0, sizeof(*d));
}

int uv_pprof__je_parse(const char* text, size_t len, uv_pprof__je_dump_t* out) {
  uv_pprof__buf_t stacks;
  frames_t frames = {NULL, 0, 0};
  cursor_t c = {text, text + len};
  const char* line;
  size_t n;
  size_t i = 8;
  uint64_t period;
  int all;
  int rc = UV_EINVAL;

  memset(out, 0, sizeof(*out));
  uv_pprof__buf_init(&stacks);
  if (!next_line(&c, &line, &n) || !has_prefix(line, n, "heap_v2/") ||
      parse_u64(line, n, &i, &period) != 0 || i != n || period == 0)
    return UV_EINVAL;
  out->period = period;
  /* The summary: "t*" then one line per thread. */
  if (!next_line(&c, &line, &n) ||
      parse_counts(line, n, &all, &out->total) != 0 || !all)
    return UV_EINVAL;
  while (next_line(&c, &line, &n)) {
    uv_pprof__je_stack_t st;
    uv_pprof__je_counts_t thread;

    if (n == 0 || has_prefix(line, n, "MAPPED_LIBRARIES:")) {
      rc = 0; /* the process's maps follow; we read our own */
      break;
    }
    if (line[0] == ' ') {
      /* Per-thread lines, of the summary or of the last stack. */
      if (parse_counts(line, n, &all, &thread) != 0 || all)
        goto done;
      continue;
    }
    if (line[0] != '@')
      goto done;
    memset(&st, 0, sizeof(st));
    st.first = frames.n;
    rc = parse_stack(line, n, &frames);
    if (rc != 0) {
      rc = rc == UV_ENOMEM ? rc : UV_EINVAL;
      goto done;
    }
    rc = UV_EINVAL;
    st.n = frames.n - st.first;
    if (!next_line(&c, &line, &n) ||
        parse_counts(line, n, &all, &st.counts) != 0 || !all)
      goto done;
    if (uv_pprof__buf_append(&stacks, &st, sizeof(st)) != 0) {
      rc = UV_ENOMEM;
      goto done;
    }
    out->nstacks++;
  }
  if (c.p >= c.end)
    rc = 0; /* a dump may end right after its last stack */

done:
  if (rc == 0 && stacks.oom)
    rc = UV_ENOMEM;
  if (rc != 0) {
    uv_pprof__buf_free(&stacks);
    free(frames.v);
    memset(out, 0, sizeof(*out));
    return rc;
  }
  out->stacks = (uv_pprof__je_stack_t*)stacks.base;
  out->frames = frames.v;
  out->nframes = frames.n;
  return 0;
}

/* ---- jemalloc's own frames ---------------------------------------------- */

static int in_ranges(uintptr_t addr, const uv_pprof__range_t* r, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (addr >= r[i].start && addr < r[i].end)
      return 1;
  return 0;
}

void uv_pprof__je_strip_ranges(uv_pprof__je_dump_t* d,
                               const uv_pprof__range_t* ranges, size_t n) {
  size_t i;

  for (i = 0; i < d->nstacks; i++) {
    uv_pprof__je_stack_t* st = &d->stacks[i];
    size_t k = 0;
    while (k < st->n && in_ranges(d->frames[st->first + k], ranges, n))
      k++;
    /* Like Go hiding runtime frames: a stack that is all allocator keeps
     * its frames rather than becoming empty. */
    if (k < st->n) {
      st->first += k;
      st->n -= k;
    }
  }
}

/* jeprof's skip list (bin/jeprof.in), with the internal names of a static
 * jemalloc: every non-static internal symbol is prefixed je_, and the
 * frames of prof_backtrace_impl, do_rallocx and the C++ fallback_impl are
 * static functions. */
static int is_allocator_name(const char* name) {
  static const char* const exact[] = {
      "malloc",         "calloc",
      "realloc",        "free",
      "cfree",          "memalign",
      "posix_memalign", "aligned_alloc",
      "valloc",         "pvalloc",
      "mallocx",        "rallocx",
      "xallocx",        "dallocx",
      "sdallocx",       "sdallocx_noflags",
      "do_rallocx",     "prof_backtrace_impl",
  };
  size_t i;

  if (strncmp(name, "je_", 3) == 0 || strstr(name, "fallback_impl") != NULL)
    return 1;
  /* operator new and new[] in all their overloads (mangled) */
  if (strncmp(name, "_Znw", 4) == 0 || strncmp(name, "_Zna", 4) == 0)
    return 1;
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(exact); i++)
    if (strcmp(name, exact[i]) == 0)
      return 1;
  return 0;
}

static int is_allocator_frame(uintptr_t return_addr) {
  uv_pprof__symbol_t sym[UV_PPROF__MAX_INLINE];
  size_t n = uv_pprof__symbolize(return_addr - 1, sym, UV_PPROF__MAX_INLINE);
  size_t i;

  for (i = 0; i < n; i++)
    if (sym[i].name != NULL && is_allocator_name(sym[i].name))
      return 1;
  return 0;
}

/* jemalloc linked into a bigger object (statically, usually): its frames
 * cannot be told by address, so by name, as jeprof does: everything up to
 * the last allocator frame among the first STRIP_SCAN goes. */
static void strip_names(uv_pprof__je_dump_t* d) {
  size_t i;
  size_t k;

  for (i = 0; i < d->nstacks; i++) {
    uv_pprof__je_stack_t* st = &d->stacks[i];
    size_t cut = 0;
    for (k = 0; k < st->n && k < STRIP_SCAN; k++)
      if (is_allocator_frame(d->frames[st->first + k]))
        cut = k + 1;
    if (cut < st->n) {
      st->first += cut;
      st->n -= cut;
    }
  }
}

/* ---- prof.dump ---------------------------------------------------------- */

/* prof.dump writes to a path; /proc/self/fd/N of a memfd is one that leaves
 * nothing on disk. The text is mapped, parsed and unmapped. */
static int dump_and_parse(mallctl_fn ctl, uv_pprof__je_dump_t* out) {
  char path[64];
  const char* p = path;
  struct stat sb;
  void* text;
  int fd;
  int rc;

  fd = memfd_create("uv_pprof-heap", MFD_CLOEXEC);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  rc = ctl("prof.dump", NULL, NULL, &p, sizeof(p));
  if (rc != 0) {
    close(fd);
    return rc == ENOENT ? UV_ENOENT : UV_EIO;
  }
  if (fstat(fd, &sb) != 0) {
    rc = uv_translate_sys_error(errno);
    close(fd);
    return rc;
  }
  if (sb.st_size == 0) {
    close(fd);
    return UV_EINVAL;
  }
  text = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (text == MAP_FAILED)
    return uv_translate_sys_error(errno);
  rc = uv_pprof__je_parse(text, (size_t)sb.st_size, out);
  munmap(text, (size_t)sb.st_size);
  return rc;
}

int uv_pprof__je_dump(uv_pprof__je_dump_t* out) {
  mallctl_fn ctl = get_mallctl();
  int rc;

  memset(out, 0, sizeof(*out));
  if (ctl == NULL)
    return UV_ENOENT;
  rc = dump_and_parse(ctl, out);
  if (rc != 0)
    return rc;
  if (je.nranges != 0)
    uv_pprof__je_strip_ranges(out, je.ranges, je.nranges);
  else
    strip_names(out);
  return 0;
}

int64_t uv_pprof__je_count(void) {
  uv_pprof__je_state_t st;
  uv_pprof__je_dump_t d;
  int64_t n;

  uv_pprof__je_state(&st);
  if (st.mode != UV_PPROF__HEAP_PROF_ON)
    return 0;
  if (dump_and_parse(je.mallctl, &d) != 0)
    return 0;
  n = (int64_t)d.nstacks;
  uv_pprof__je_dump_free(&d);
  return n;
}

/* ---- statistics ---------------------------------------------------------- */

/* Σ nmalloc × size over every small and large size class of the merged
 * arena stats: the bytes ever handed out by the arenas (TotalAlloc). */
static int total_allocated(uint64_t* out) {
  static const struct {
    const char* count;
    const char* size;
    const char* classes;
  } kinds[] = {
      {"stats.arenas.0.bins.0.nmalloc", "arenas.bin.0.size", "arenas.nbins"},
      {"stats.arenas.0.lextents.0.nmalloc", "arenas.lextent.0.size",
       "arenas.nlextents"},
  };
  uint64_t total = 0;
  size_t k;

  if (je.nametomib == NULL || je.bymib == NULL)
    return -1;
  for (k = 0; k < UV_PPROF__ARRAY_SIZE(kinds); k++) {
    size_t cmib[6];
    size_t smib[4];
    size_t clen = UV_PPROF__ARRAY_SIZE(cmib);
    size_t slen = UV_PPROF__ARRAY_SIZE(smib);
    unsigned nclasses = 0;
    size_t len = sizeof(nclasses);
    unsigned j;

    if (je.mallctl(kinds[k].classes, &nclasses, &len, NULL, 0) != 0 ||
        je.nametomib(kinds[k].count, cmib, &clen) != 0 || clen != 6 ||
        je.nametomib(kinds[k].size, smib, &slen) != 0 || slen != 4)
      return -1;
    cmib[2] = ARENAS_ALL;
    for (j = 0; j < nclasses; j++) {
      uint64_t nmalloc = 0;
      size_t size = 0;
      size_t nlen = sizeof(nmalloc);
      size_t zlen = sizeof(size);
      cmib[4] = j;
      smib[2] = j;
      if (je.bymib(cmib, clen, &nmalloc, &nlen, NULL, 0) != 0 ||
          je.bymib(smib, slen, &size, &zlen, NULL, 0) != 0)
        return -1;
      total += nmalloc * size;
    }
  }
  *out = total;
  return 0;
}

int uv_pprof__je_stats(uv_pprof__je_stats_t* st) {
  mallctl_fn ctl = get_mallctl();
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);

  memset(st, 0, sizeof(*st));
  if (ctl == NULL)
    return UV_ENOENT;
  /* Statistics are a snapshot taken at the last epoch: take a new one. */
  if (ctl("epoch", &epoch, &len, &epoch, len) != 0)
    return UV_EIO;
  len = sizeof(st->version);
  if (ctl("version", &st->version, &len, NULL, 0) != 0)
    st->version = NULL;
#define XX(id, name, type)                        \
  do {                                            \
    type v = 0;                                   \
    size_t n = sizeof(v);                         \
    if (ctl(name, &v, &n, NULL, 0) == 0) {        \
      st->value[UV_PPROF__JE_##id] = (uint64_t)v; \
      st->have |= 1u << UV_PPROF__JE_##id;        \
    }                                             \
  } while (0);
  UV_PPROF__JE_STATS_MAP(XX)
#undef XX
  st->have_total = total_allocated(&st->total_bytes) == 0;
  return 0;
}
