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
#include <unistd.h>

#include "hash.h"
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

/* "@ 0x.. 0x.." into frames[0..UV_PPROF__STACK_MAX); returns how many, or
 * -1 when malformed. */
static int parse_stack(const char* s, size_t len, uintptr_t* frames) {
  size_t i = 1;
  int n = 0;

  for (;;) {
    uintptr_t addr = 0;
    size_t start;
    unsigned h;

    i = skip_spaces(s, len, i);
    if (i == len)
      return n;
    if (len - i < 3 || s[i] != '0' || (s[i + 1] != 'x' && s[i + 1] != 'X') ||
        n == UV_PPROF__STACK_MAX)
      return -1;
    start = i += 2;
    for (; i < len && (h = hex_value[(unsigned char)s[i]]) < 16; i++)
      addr = (addr << 4) | h;
    if (i == start || i - start > sizeof(uintptr_t) * 2 ||
        (i < len && s[i] != ' '))
      return -1;
    frames[n++] = addr;
  }
}

/* A 128-bit hash of a line: the key under which the stack table remembers
 * a stack line it has seen (2^-96 odds, as kept, that two different lines
 * share one). Four lanes of 8 bytes run side by side, so that a line of 20
 * addresses costs a few dozen cycles; their shifts differ so that the
 * compiler keeps them scalar (64-bit multiplies emulated in SSE2 were
 * slower). `salt` tells strip settings apart. */
static void hash_line(const char* s, size_t len, uint64_t salt, uint64_t* h1,
                      uint64_t* h2) {
  uint64_t a = salt ^ len;
  uint64_t b = salt + 0x9e3779b97f4a7c15ull;
  uint64_t c = ~salt;
  uint64_t d = len * 0x94d049bb133111ebull;
  uint64_t w[4];
  size_t i;

  for (i = 0;; i += sizeof(w)) {
    if (len - i >= sizeof(w)) {
      memcpy(w, s + i, sizeof(w));
    } else {
      memset(w, 0, sizeof(w));
      memcpy(w, s + i, len - i);
    }
    a = (a ^ w[0]) * 0xbf58476d1ce4e5b9ull;
    b = (b ^ w[1]) * 0x94d049bb133111ebull;
    c = (c ^ w[2]) * 0xd6e8feb86659fd93ull;
    d = (d ^ w[3]) * 0xff51afd7ed558ccdull;
    a ^= a >> 29;
    b ^= b >> 31;
    c ^= c >> 27;
    d ^= d >> 33;
    if (len - i < sizeof(w))
      break;
  }
  *h1 = uv_pprof__hash_combine(uv_pprof__hash64(a), b);
  *h2 = uv_pprof__hash_combine(uv_pprof__hash64(c), d);
}

static uint64_t strip_salt(const uv_pprof__je_strip_t* strip) {
  uint64_t h = strip != NULL && strip->by_name ? 1 : 0;
  size_t i;

  for (i = 0; strip != NULL && i < strip->nranges; i++)
    h = uv_pprof__hash_combine(
        uv_pprof__hash_combine(h, strip->ranges[i].start),
        strip->ranges[i].end);
  return h;
}

static int in_ranges(uintptr_t addr, const uv_pprof__range_t* r, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (addr >= r[i].start && addr < r[i].end)
      return 1;
  return 0;
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

/* How many leading frames are jemalloc's own (a stack made only of those
 * keeps them all, as Go keeps a stack of runtime frames only). By name
 * (jemalloc linked into a bigger object, statically usually): everything
 * up to the last allocator frame among the first STRIP_SCAN, as jeprof
 * does. */
static size_t strip_count(const uv_pprof__je_strip_t* strip,
                          const uintptr_t* frames, size_t n) {
  size_t cut = 0;
  size_t k;

  if (strip == NULL)
    return 0;
  if (strip->by_name) {
    for (k = 0; k < n && k < STRIP_SCAN; k++)
      if (is_allocator_frame(frames[k]))
        cut = k + 1;
  } else {
    while (cut < n && in_ranges(frames[cut], strip->ranges, strip->nranges))
      cut++;
  }
  return cut < n ? cut : 0;
}

/* The id of the stack of line "@ ...", held: from its key when the table
 * knows the line, else parsed, stripped and interned. */
static int stack_of(const char* line, size_t len,
                    const uv_pprof__je_strip_t* strip, uint64_t salt,
                    uint32_t* id) {
  uintptr_t frames[UV_PPROF__STACK_MAX];
  uint64_t h1;
  uint64_t h2;
  size_t cut;
  int n;
  int rc;

  hash_line(line, len, salt, &h1, &h2);
  if (uv_pprof__stacks_find_key(h1, h2, id))
    return 0;
  n = parse_stack(line, len, frames);
  if (n < 0)
    return UV_EINVAL;
  cut = strip_count(strip, frames, (size_t)n);
  rc = uv_pprof__stacks_intern(frames + cut, (size_t)n - cut, id);
  if (rc == 0)
    uv_pprof__stacks_add_key(h1, h2, *id);
  return rc;
}

void uv_pprof__je_dump_free(uv_pprof__je_dump_t* d) {
  size_t i;

  for (i = 0; i < d->nstacks; i++)
    uv_pprof__stacks_release(d->stacks[i].id);
  free(d->stacks);
  memset(d, 0, sizeof(*d));
}

/* The parser takes a dump line by line, so that a dump can be read in
 * chunks. */
enum { AT_HEADER, AT_SUMMARY, AT_BODY, AT_END };

typedef struct {
  int stage;
  int counts_due; /* the last line was a stack: its "t*" line is next */
  uv_pprof__je_stack_t pending;
  const uv_pprof__je_strip_t* strip;
  uint64_t salt;
  uv_pprof__buf_t stacks;
  uv_pprof__je_dump_t* out;
} parser_t;

/* How many stacks the last dump had: the next one is sized for as many
 * and a quarter more, so that its rows are not copied again and again as
 * they grow (at 50k stacks that was most of a parse). */
static size_t last_nstacks;

static void parser_init(parser_t* ps, const uv_pprof__je_strip_t* strip,
                        uv_pprof__je_dump_t* out) {
  memset(ps, 0, sizeof(*ps));
  memset(out, 0, sizeof(*out));
  ps->strip = strip;
  ps->salt = strip_salt(strip);
  ps->out = out;
  uv_pprof__buf_init(&ps->stacks);
  uv_pprof__buf_room(&ps->stacks, (last_nstacks + last_nstacks / 4) *
                                      sizeof(uv_pprof__je_stack_t));
}

/* One line, without its '\n'. Returns 0 or a negative code. */
static int parse_line(parser_t* ps, const char* line, size_t n) {
  uv_pprof__je_dump_t* out = ps->out;
  uv_pprof__je_counts_t thread;
  size_t i = 8;
  int all;
  int rc;

  switch (ps->stage) {
    case AT_HEADER:
      if (!has_prefix(line, n, "heap_v2/") ||
          parse_u64(line, n, &i, &out->period) != 0 || i != n ||
          out->period == 0)
        return UV_EINVAL;
      ps->stage = AT_SUMMARY;
      return 0;
    case AT_SUMMARY:
      /* "t*", then one line per thread. */
      if (parse_counts(line, n, &all, &out->total) != 0 || !all)
        return UV_EINVAL;
      ps->stage = AT_BODY;
      return 0;
    case AT_END:
      return 0; /* the process's maps; we read our own */
    default:
      break;
  }
  if (ps->counts_due) {
    ps->counts_due = 0;
    if (parse_counts(line, n, &all, &ps->pending.counts) != 0 || !all) {
      uv_pprof__stacks_release(ps->pending.id);
      return UV_EINVAL;
    }
    if (uv_pprof__buf_append(&ps->stacks, &ps->pending, sizeof(ps->pending))) {
      uv_pprof__stacks_release(ps->pending.id);
      return UV_ENOMEM;
    }
    out->nstacks++;
    return 0;
  }
  if (n == 0 || has_prefix(line, n, "MAPPED_LIBRARIES:")) {
    ps->stage = AT_END;
    return 0;
  }
  if (line[0] == ' ') {
    /* Per-thread lines, of the summary or of the last stack: nothing of
     * them is used, so past the summary only their start is checked. */
    if (out->nstacks == 0)
      return parse_counts(line, n, &all, &thread) != 0 || all ? UV_EINVAL : 0;
    return n >= 4 && line[1] == ' ' && line[2] == 't' && line[3] >= '0' &&
                   line[3] <= '9'
               ? 0
               : UV_EINVAL;
  }
  if (line[0] != '@')
    return UV_EINVAL;
  memset(&ps->pending, 0, sizeof(ps->pending));
  rc = stack_of(line, n, ps->strip, ps->salt, &ps->pending.id);
  if (rc == 0)
    ps->counts_due = 1;
  return rc;
}

/* The lines of text[0..len): all when `last`, else up to the last '\n'.
 * Returns the bytes consumed, or a negative code. */
static ssize_t parse_lines(parser_t* ps, const char* text, size_t len,
                           int last) {
  const char* p = text;
  const char* end = text + len;

  while (p < end && ps->stage != AT_END) {
    const char* nl = memchr(p, '\n', (size_t)(end - p));
    const char* eol = nl != NULL ? nl : end;
    int rc;
    if (nl == NULL && !last)
      break;
    rc = parse_line(ps, p, (size_t)(eol - p));
    if (rc != 0)
      return rc;
    p = nl != NULL ? nl + 1 : end;
  }
  return ps->stage == AT_END ? (ssize_t)len : p - text;
}

static int parser_finish(parser_t* ps, int rc) {
  uv_pprof__je_dump_t* out = ps->out;

  if (rc == 0 && (ps->stage < AT_BODY || ps->counts_due))
    rc = UV_EINVAL; /* no summary, or a stack without its counts */
  if (rc != 0 && ps->counts_due)
    uv_pprof__stacks_release(ps->pending.id);
  out->stacks = (uv_pprof__je_stack_t*)ps->stacks.base;
  if (rc != 0)
    uv_pprof__je_dump_free(out);
  else
    last_nstacks = out->nstacks;
  return rc;
}

int uv_pprof__je_parse(const char* text, size_t len,
                       const uv_pprof__je_strip_t* strip,
                       uv_pprof__je_dump_t* out) {
  parser_t ps;
  ssize_t n;

  parser_init(&ps, strip, out);
  n = parse_lines(&ps, text, len, 1);
  return parser_finish(&ps, n < 0 ? (int)n : 0);
}

/* ---- prof.dump ---------------------------------------------------------- */

#define CHUNK 262144 /* of the dump read at a time; a line is ~2.5 KiB */

/* prof.dump writes to a path; /proc/self/fd/N of a memfd is one that leaves
 * nothing on disk. Returns the memfd, or a negative code. */
static int dump_fd(mallctl_fn ctl) {
  char path[64];
  const char* p = path;
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
  return fd;
}

/* Takes the complete lines of text[0..len) (all of it when `last`) and
 * says in *used how many bytes it took. Returns 0 to go on, 1 to stop
 * (the rest is not needed), or a negative code. */
typedef int (*chunk_cb)(void* arg, const char* text, size_t len, int last,
                        size_t* used);

/* Reads the dump in fd in chunks into `each`. Reading beats mapping:
 * populating the page tables for a 4 MiB dump cost 2.7 ms, reading it
 * through one 256 KiB buffer 0.6 ms. Returns 0 or a negative code. */
static int read_dump(int fd, chunk_cb each, void* arg) {
  char* buf = malloc(CHUNK);
  size_t have = 0;
  off_t off = 0;
  int rc = 0;

  if (buf == NULL)
    return UV_ENOMEM;
  for (;;) {
    ssize_t r = pread(fd, buf + have, CHUNK - have, off);
    size_t used = 0;
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = uv_translate_sys_error(errno);
      break;
    }
    off += r;
    have += (size_t)r;
    rc = each(arg, buf, have, r == 0, &used);
    if (rc != 0 || r == 0)
      break;
    if (used == 0 && have == CHUNK) {
      rc = UV_EINVAL; /* a line longer than the buffer */
      break;
    }
    memmove(buf, buf + used, have - used);
    have -= used;
  }
  free(buf);
  return rc < 0 ? rc : 0;
}

static int parse_chunk(void* arg, const char* text, size_t len, int last,
                       size_t* used) {
  parser_t* ps = arg;
  ssize_t n = parse_lines(ps, text, len, last);

  if (n < 0)
    return (int)n;
  *used = (size_t)n;
  return ps->stage == AT_END; /* past the stacks: the rest is not read */
}

int uv_pprof__je_dump(uv_pprof__je_dump_t* out) {
  mallctl_fn ctl = get_mallctl();
  uv_pprof__je_strip_t strip;
  parser_t ps;
  int fd;
  int rc;

  memset(out, 0, sizeof(*out));
  if (ctl == NULL)
    return UV_ENOENT;
  fd = dump_fd(ctl);
  if (fd < 0)
    return fd;
  strip.ranges = je.ranges;
  strip.nranges = je.nranges;
  strip.by_name = je.nranges == 0;
  parser_init(&ps, &strip, out);
  rc = read_dump(fd, parse_chunk, &ps);
  close(fd);
  rc = parser_finish(&ps, rc);
  uv_pprof__stacks_maybe_collect();
  return rc;
}

static int count_chunk(void* arg, const char* text, size_t len, int last,
                       size_t* used) {
  int64_t* n = arg;
  const char* p = text;
  const char* end = text + len;

  while (p < end) {
    const char* nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL && !last)
      break;
    if (*p == '\n' || *p == 'M')
      return 1; /* the maps that follow the stacks */
    *n += *p == '@';
    p = nl != NULL ? nl + 1 : end;
  }
  *used = (size_t)(p - text);
  return 0;
}

int64_t uv_pprof__je_count(void) {
  uv_pprof__je_state_t st;
  int64_t n = 0;
  int fd;

  uv_pprof__je_state(&st);
  if (st.mode != UV_PPROF__HEAP_PROF_ON || (fd = dump_fd(je.mallctl)) < 0)
    return 0;
  read_dump(fd, count_chunk, &n);
  close(fd);
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
