/* Tests of the heap and allocs profiles. Unit: the heap_v2 parser on real
 * dumps (made at test time by the real jemalloc: uv_pprof_jedump) and on
 * malformed input, Go's unbiasing against Go's own numbers, profile and text
 * from such a dump. End
 * to end: real jemalloc (linked, preloaded, static) in uv_pprof_heaphost and
 * glibc in this process, read with curl and `go tool pprof`. Accuracy
 * bounds, and why they hold, are at check_accuracy(). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profile.h"
#include "profile.pb-c.h"
#include "task.h"

#define MIB (1024LL * 1024)
#define HEAP_OFF_PROF                                                       \
  "heap profiling is off: jemalloc's profiling was not enabled at startup " \
  "(opt.prof is false). Restart the process with "                          \
  "MALLOC_CONF=prof:true,prof_accum:true to turn it on"

typedef Perftools__Profiles__Profile profile_t;

/* ---- small helpers ------------------------------------------------------ */

static char* read_whole(const char* path, size_t* len) {
  uv_pprof__buf_t b;
  char chunk[65536];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    fprintf(stderr, "open %s: %s\n", path, strerror(errno));
  ASSERT_GE(fd, 0);
  uv_pprof__buf_init(&b);
  while ((n = read(fd, chunk, sizeof(chunk))) > 0)
    ASSERT_EQ(uv_pprof__buf_append(&b, chunk, (size_t)n), 0);
  ASSERT_EQ(n, 0);
  close(fd);
  ASSERT_EQ(uv_pprof__buf_append(&b, "", 1), 0);
  *len = b.len - 1;
  return b.base;
}

static void write_whole(const char* path, const void* data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* s with every run of blanks made one space, in place. */
static char* squeeze(char* s) {
  char* out = s;
  char* p;

  for (p = s; *p != '\0'; p++)
    if (!(*p == ' ' && out > s && out[-1] == ' '))
      *out++ = *p;
  *out = '\0';
  return s;
}

static size_t count_lines_starting(const char* text, const char* prefix) {
  size_t n = 0;
  const char* p = text;

  while (p != NULL && *p != '\0') {
    if (strncmp(p, prefix, strlen(prefix)) == 0)
      n++;
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
  return n;
}

/* Parses text placed at the very end of a readable region, followed by an
 * unreadable page: any read past the end faults at once. */
static int parse_guarded(const char* text, size_t len, uv_pprof__je_dump_t* d) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t span = (len + page - 1) / page * page + page;
  char* region;
  int rc;

  region = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
  ASSERT(region != MAP_FAILED);
  ASSERT_EQ(mprotect(region + span - page, page, PROT_NONE), 0);
  memcpy(region + span - page - len, text, len);
  rc = uv_pprof__je_parse(region + span - page - len, len, NULL, d);
  munmap(region, span);
  return rc;
}

/* The invariants every successful parse keeps. */
static void check_dump(const uv_pprof__je_dump_t* d) {
  size_t i;

  ASSERT_GT(d->period, 0);
  for (i = 0; i < d->nstacks; i++)
    ASSERT_LT(d->stacks[i].id, uv_pprof__stacks_limit());
}

/* The frames of row i of a dump, into f (UV_PPROF__STACK_MAX); how many. */
static size_t row_frames(const uv_pprof__je_dump_t* d, size_t i, uintptr_t* f) {
  return uv_pprof__stacks_frames(d->stacks[i].id, f, UV_PPROF__STACK_MAX);
}

/* The executable ranges of libjemalloc in a dump's MAPPED_LIBRARIES. */
static size_t jemalloc_ranges(const char* text, uv_pprof__range_t* r,
                              size_t max) {
  const char* p = strstr(text, "MAPPED_LIBRARIES:\n");
  size_t n = 0;

  ASSERT(p != NULL);
  while ((p = strchr(p, '\n')) != NULL && *++p != '\0') {
    unsigned long long start;
    unsigned long long end;
    char perms[8];
    const char* eol = strchr(p, '\n');
    const char* lib = strstr(p, "libjemalloc");
    if (sscanf(p, "%llx-%llx %7s", &start, &end, perms) == 3 &&
        perms[2] == 'x' && lib != NULL && (eol == NULL || lib < eol)) {
      ASSERT_LT(n, max);
      r[n].start = (uintptr_t)start;
      r[n].end = (uintptr_t)end;
      n++;
    }
  }
  return n;
}

/* Go's heap types, in Go's order, and period type space/bytes. */
/* The real jemalloc dumps the unit tests read, made by uv_pprof_jedump
 * (test/jedump.c: 25 blocks of 4 MiB kept from jedump_keep_calloc, 10
 * freed from jedump_churn_malloc, one block of a distinct size class from
 * each entry point) under each configuration, once per test process. */
typedef struct {
  const char* name;
  const char* exe;
  const char* conf;
} je_fixture_t;

static const je_fixture_t je_fixtures[] = {
    {"dynamic_prof_accum_lg17", UV_PPROF_JEDUMP,
     "prof:true,prof_accum:true,lg_prof_sample:17"},
    {"static_lg0_entrypoints", UV_PPROF_JEDUMP_STATIC,
     "prof:true,prof_accum:true,lg_prof_sample:0"},
    {"static_lg17", UV_PPROF_JEDUMP_STATIC, "prof:true,lg_prof_sample:17"},
    {"static_lg17_unbias_false", UV_PPROF_JEDUMP_STATIC,
     "prof:true,lg_prof_sample:17,prof_unbias:false"},
};

#define JEDUMP_BLOCK (4 * MIB)
#define JEDUMP_KEPT 25
#define JEDUMP_FREED 10

/* The text of fixture `name` (dumped on first use); free() it. */
static char* je_fixture(const char* name, size_t* len) {
  char path[512];
  char conf[128];
  const je_fixture_t* f = NULL;
  size_t i;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(je_fixtures); i++)
    if (strcmp(je_fixtures[i].name, name) == 0)
      f = &je_fixtures[i];
  ASSERT(f != NULL);
  snprintf(path, sizeof(path), "%s/%s.heap", test_tmpdir(), name);
  if (access(path, R_OK) != 0) {
    const char* argv[] = {f->exe, path, NULL};
    const char* env[] = {conf, NULL};
    run_result_t r;
    snprintf(conf, sizeof(conf), "MALLOC_CONF=%s", f->conf);
    run_cmd(argv, env, 30000, &r);
    if (r.status != 0)
      fprintf(stderr, "%s %s: exit %d\n%s", f->exe, path, r.status, r.err);
    ASSERT_EQ(r.status, 0);
    run_free(&r);
  }
  return read_whole(path, len);
}

/* The stack of d holding the blocks of one call (cur_objs == objs, and
 * cur_bytes within 1/64 over objs * size, as jemalloc's unbiased numbers
 * are back-solved), or NULL. */
static const uv_pprof__je_stack_t* je_find(const uv_pprof__je_dump_t* d,
                                           uint64_t objs, uint64_t size) {
  size_t i;

  for (i = 0; i < d->nstacks; i++) {
    const uv_pprof__je_counts_t* c = &d->stacks[i].counts;
    if (c->cur_objs == objs && c->cur_bytes >= objs * size &&
        c->cur_bytes <= objs * size + objs * size / 64)
      return &d->stacks[i];
  }
  return NULL;
}

/* The executable range of the mapping of `file` in a dump's
 * MAPPED_LIBRARIES (its first executable line). */
static uv_pprof__range_t mapped_range(const char* text, const char* file) {
  const char* p = strstr(text, "MAPPED_LIBRARIES:\n");
  uv_pprof__range_t r = {0, 0};

  ASSERT(p != NULL);
  while ((p = strchr(p, '\n')) != NULL && *++p != '\0') {
    unsigned long long start;
    unsigned long long end;
    char perms[8];
    const char* eol = strchr(p, '\n');
    const char* at = strstr(p, file);
    if (sscanf(p, "%llx-%llx %7s", &start, &end, perms) == 3 &&
        perms[2] == 'x' && at != NULL && (eol == NULL || at < eol)) {
      r.start = (uintptr_t)start;
      r.end = (uintptr_t)end;
      return r;
    }
  }
  ASSERT(0);
  return r;
}

static int in_ranges(uintptr_t a, const uv_pprof__range_t* r, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (a >= r[i].start && a < r[i].end)
      return 1;
  return 0;
}

static void expect_heap_types(const profile_t* p, const char* dflt) {
  static const char* const types[][2] = {{"alloc_objects", "count"},
                                         {"alloc_space", "bytes"},
                                         {"inuse_objects", "count"},
                                         {"inuse_space", "bytes"}};
  size_t i;

  ASSERT_EQ(p->n_sample_type, 4);
  for (i = 0; i < 4; i++) {
    ASSERT_STR_EQ(profile_str(p, p->sample_type[i]->type), types[i][0]);
    ASSERT_STR_EQ(profile_str(p, p->sample_type[i]->unit), types[i][1]);
  }
  ASSERT(p->period_type != NULL);
  ASSERT_STR_EQ(profile_str(p, p->period_type->type), "space");
  ASSERT_STR_EQ(profile_str(p, p->period_type->unit), "bytes");
  ASSERT_STR_EQ(profile_str(p, p->default_sample_type), dflt);
}

static int has_comment(const profile_t* p, const char* text) {
  size_t i;

  for (i = 0; i < p->n_comment; i++)
    if (strcmp(profile_str(p, p->comment[i]), text) == 0)
      return 1;
  return 0;
}

/* ---- go tool pprof ------------------------------------------------------ */

/* `-top` in bytes of one sample type, every node shown. */
static void pprof_top(const char* index, const char* base, const char* file,
                      run_result_t* r) {
  char si[64];
  const char* args[] = {"-top",
                        "-unit=B",
                        "-nodefraction=0",
                        si,
                        base != NULL ? "-base" : file,
                        base,
                        file,
                        NULL};

  snprintf(si, sizeof(si), "-sample_index=%s", index);
  if (base == NULL)
    args[5] = NULL;
  go_pprof(args, r);
}

/* The flat value in bytes of function `name` in `-top -unit=B` output;
 * found is 0 when it is not listed. */
static long long top_flat(const char* out, const char* name, int* found) {
  const char* p = strstr(out, "flat  flat%");

  *found = 0;
  ASSERT(p != NULL);
  while ((p = strchr(p, '\n')) != NULL && *++p != '\0') {
    char flat[64];
    char f1[32], f2[32], f3[32], f4[32];
    char fn[512];
    if (sscanf(p, "%63s %31s %31s %31s %31s %511[^\n]", flat, f1, f2, f3, f4,
               fn) != 6)
      continue;
    if (strcmp(fn, name) == 0) {
      *found = 1;
      return strtoll(flat, NULL, 10);
    }
  }
  return 0;
}

/* |flat| of the biggest function other than `except`. */
static long long top_largest_other(const char* out, const char* except,
                                   char* name, size_t size) {
  const char* p = strstr(out, "flat  flat%");
  long long largest = 0;

  ASSERT(p != NULL);
  snprintf(name, size, "(none)");
  while ((p = strchr(p, '\n')) != NULL && *++p != '\0') {
    char flat[64];
    char f1[32], f2[32], f3[32], f4[32];
    char fn[512];
    long long v;
    if (sscanf(p, "%63s %31s %31s %31s %31s %511[^\n]", flat, f1, f2, f3, f4,
               fn) != 6 ||
        strcmp(fn, except) == 0)
      continue;
    v = llabs(strtoll(flat, NULL, 10));
    if (v > largest) {
      largest = v;
      snprintf(name, size, "%s", fn);
    }
  }
  return largest;
}

static void expect_within(const char* out, const char* name, long long truth,
                          int percent) {
  int found;
  long long v = top_flat(out, name, &found);

  if (!found || llabs(v - truth) * 100 > truth * percent) {
    fprintf(stderr, "%s: %lld bytes%s, expected %lld ±%d %%\n%s\n", name, v,
            found ? "" : " (not listed)", truth, percent, out);
    ASSERT(0);
  }
}

/* ---- the heap host ---------------------------------------------------- */

typedef struct {
  child_t child; /* commands on its stdin, answers on its stdout */
  char base[64];
  int port;
  char dir[64];
} heaphost_t;

/* Starts `exe` with UV_PPROF on a free port, without the allocator settings
 * of this process, and `env` ("K=V" adds, "K" removes); waits for its
 * "port=N". */
static void host_spawn(heaphost_t* h, const char* exe,
                       const char* const env[]) {
  const char* argv[] = {exe, NULL};
  const char* all[16] = {"UV_PPROF*", "MALLOC_CONF", "LD_PRELOAD",
                         "UV_PPROF=127.0.0.1:0"};
  char line[64];
  size_t n = 4;
  size_t i;

  memset(h, 0, sizeof(*h));
  snprintf(h->dir, sizeof(h->dir), "%s", test_tmpdir());
  for (i = 0; env[i] != NULL; i++) {
    ASSERT_LT(n, 15);
    all[n++] = env[i];
  }
  all[n] = NULL;
  child_start(&h->child, "heaphost", argv, all);
  child_line(&h->child, line, sizeof(line), 60000);
  ASSERT_STARTS_WITH(line, "port=");
  h->port = atoi(line + 5);
  ASSERT_GT(h->port, 0);
  snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", h->port);
}

/* Sends a command and returns its answer line (static buffer). */
static const char* host_cmd(heaphost_t* h, const char* cmd) {
  static char answer[128];
  char line[64];

  snprintf(line, sizeof(line), "%s\n", cmd);
  ASSERT_EQ(write(h->child.in, line, strlen(line)), (ssize_t)strlen(line));
  child_line(&h->child, answer, sizeof(answer), 60000);
  return answer;
}

static void host_do(heaphost_t* h, const char* cmd) {
  ASSERT_STR_EQ(host_cmd(h, cmd), "ok");
}

/* Closes its stdin (it then exits) and returns its stderr (malloc'd). */
static char* host_end(heaphost_t* h) {
  size_t len;
  int status = child_end(&h->child, 120000, NULL);

  if (status != 0)
    fprintf(stderr, "heaphost exit status %d\n", status);
  ASSERT_EQ(status, 0);
  return read_whole(h->child.log, &len);
}

/* GETs base+path into `file` under the host's temp dir; returns the file's
 * path (static buffer) after asserting status 200. */
static const char* fetch(const heaphost_t* h, const char* path,
                         const char* name) {
  static char file[256];
  char url[512];
  const char* argv[] = {"curl", "-s", "--max-time",   "60", "-o",
                        file,   "-w", "%{http_code}", url,  NULL};
  run_result_t r;

  snprintf(file, sizeof(file), "%s/%s", h->dir, name);
  snprintf(url, sizeof(url), "%s%s", h->base, path);
  run_cmd(argv, NULL, 90000, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_STR_EQ(r.out, "200");
  run_free(&r);
  return file;
}

/* GETs the heap profile into the host's temp dir (its path in `file`) and
 * decodes it. */
static profile_t* fetch_heap(const heaphost_t* h, char* file, size_t size) {
  size_t len;
  char* data;
  profile_t* p;

  snprintf(file, size, "%s", fetch(h, "/debug/pprof/heap", "heap.pb.gz"));
  data = read_whole(file, &len);
  p = profile_decode(data, len);
  free(data);
  return p;
}

static char* fetch_text(const heaphost_t* h, const char* path) {
  size_t len;

  return read_whole(fetch(h, path, "text"), &len);
}

static void expect_banner(const char* err, const heaphost_t* h,
                          const char* heap_line) {
  char want[512];

  snprintf(want, sizeof(want),
           "pprof enabled on http://localhost:%d/debug/pprof/\n%s%s%s", h->port,
           heap_line != NULL ? "uv_pprof: " : "",
           heap_line != NULL ? heap_line : "", heap_line != NULL ? "\n" : "");
  ASSERT_STR_EQ(err, want);
}

/* ---- unit: the parser --------------------------------------------------- */

TEST_IMPL(heap_fixtures_parse) {
  static const uint64_t entry_sizes[] = {1024,  2048,  4096, 8192,
                                         16384, 32768, 65536};
  size_t f;

  for (f = 0; f < UV_PPROF__ARRAY_SIZE(je_fixtures); f++) {
    const char* name = je_fixtures[f].name;
    const uv_pprof__je_stack_t* kept;
    uv_pprof__je_dump_t d;
    uintptr_t fr[UV_PPROF__STACK_MAX];
    unsigned long long period;
    size_t len;
    size_t i;
    char* text = je_fixture(name, &len);
    const char* total;
    uv_pprof__je_counts_t t;

    if (parse_guarded(text, len, &d) != 0) {
      fprintf(stderr, "%s does not parse:\n%s\n", name, text);
      ASSERT(0);
    }
    check_dump(&d);
    ASSERT_EQ(sscanf(text, "heap_v2/%llu", &period), 1);
    ASSERT_EQ(d.period, period);
    ASSERT_EQ(d.nstacks, count_lines_starting(text, "@"));
    total = strstr(text, "t*: ");
    ASSERT(total != NULL);
    ASSERT_EQ(
        sscanf(total, "t*: %" SCNu64 ": %" SCNu64 " [%" SCNu64 ": %" SCNu64 "]",
               &t.cur_objs, &t.cur_bytes, &t.accum_objs, &t.accum_bytes),
        4);
    ASSERT_EQ(d.total.cur_objs, t.cur_objs);
    ASSERT_EQ(d.total.cur_bytes, t.cur_bytes);
    ASSERT_EQ(d.total.accum_objs, t.accum_objs);
    ASSERT_EQ(d.total.accum_bytes, t.accum_bytes);
    for (i = 0; i < d.nstacks; i++)
      ASSERT_GE(row_frames(&d, i, fr), 5); /* 4 jemalloc frames + caller */
    /* 4 MiB blocks are sampled whatever the rate. */
    kept = je_find(&d, JEDUMP_KEPT, JEDUMP_BLOCK);
    if (kept == NULL) {
      fprintf(stderr, "%s: no stack of %d blocks of 4 MiB:\n%s\n", name,
              JEDUMP_KEPT, text);
      ASSERT(0);
    }
    if (strstr(name, "lg17") != NULL)
      ASSERT_EQ(d.period, 131072);
    if (strcmp(name, "dynamic_prof_accum_lg17") == 0) {
      int churn = 0;
      ASSERT_EQ(kept->counts.accum_objs, JEDUMP_KEPT);
      ASSERT_EQ(kept->counts.accum_bytes, kept->counts.cur_bytes);
      for (i = 0; i < d.nstacks; i++)
        churn += d.stacks[i].counts.cur_objs == 0 &&
                 d.stacks[i].counts.accum_objs == JEDUMP_FREED;
      ASSERT_EQ(churn, 1);
    }
    if (strcmp(name, "static_lg0_entrypoints") == 0) {
      /* Every allocation recorded, so exact: each entry point's block. */
      ASSERT_EQ(d.period, 1);
      ASSERT_EQ(kept->counts.cur_bytes, JEDUMP_KEPT * JEDUMP_BLOCK);
      for (i = 0; i < UV_PPROF__ARRAY_SIZE(entry_sizes); i++) {
        const uv_pprof__je_stack_t* st = je_find(&d, 1, entry_sizes[i]);
        ASSERT(st != NULL);
        ASSERT_EQ(st->counts.cur_bytes, entry_sizes[i]);
      }
    }
    uv_pprof__je_dump_free(&d);
    free(text);
  }
  return 0;
}

/* jemalloc's own frames are dropped by the address range of its image:
 * the 3 profiling frames and the entry point (malloc, calloc, new...). */
TEST_IMPL(heap_fixture_strip) {
  char all_jemalloc[256];
  uv_pprof__range_t ranges[4];
  uv_pprof__range_t exe;
  uv_pprof__je_strip_t strip;
  uv_pprof__je_dump_t raw;
  uv_pprof__je_dump_t d;
  const uv_pprof__je_stack_t* kept;
  uintptr_t before[UV_PPROF__STACK_MAX];
  uintptr_t after[UV_PPROF__STACK_MAX];
  size_t nbefore;
  size_t nafter;
  size_t len;
  size_t i;
  size_t j;
  char* text = je_fixture("dynamic_prof_accum_lg17", &len);

  memset(&strip, 0, sizeof(strip));
  strip.ranges = ranges;
  strip.nranges = jemalloc_ranges(text, ranges, 4);
  ASSERT(strip.nranges >= 1);
  exe = mapped_range(text, "uv_pprof_jedump");
  /* The same text parsed without stripping is other stacks: the stack
   * table's memory of a line depends on the strip settings. */
  ASSERT_EQ(uv_pprof__je_parse(text, len, NULL, &raw), 0);
  ASSERT_EQ(uv_pprof__je_parse(text, len, &strip, &d), 0);
  ASSERT_EQ(d.nstacks, raw.nstacks);
  for (i = 0; i < d.nstacks; i++) {
    nbefore = row_frames(&raw, i, before);
    nafter = row_frames(&d, i, after);
    ASSERT(nafter > 0);
    ASSERT(nafter < nbefore);
    /* Exactly the leading frames inside jemalloc went. */
    for (j = 0; j < nbefore - nafter; j++)
      ASSERT(in_ranges(before[j], ranges, strip.nranges));
    ASSERT(!in_ranges(after[0], ranges, strip.nranges));
    ASSERT_EQ(after[0], before[nbefore - nafter]);
  }
  /* The 4 MiB callocs: 3 profiling frames and calloc itself dropped; the
   * stack starts at the call in the program. */
  kept = je_find(&d, JEDUMP_KEPT, JEDUMP_BLOCK);
  ASSERT(kept != NULL);
  i = (size_t)(kept - d.stacks);
  nbefore = row_frames(&raw, i, before);
  nafter = row_frames(&d, i, after);
  ASSERT_EQ(nbefore - nafter, 4);
  ASSERT(after[0] >= exe.start && after[0] < exe.end);
  uv_pprof__je_dump_free(&raw);
  uv_pprof__je_dump_free(&d);
  free(text);

  /* A stack of allocator frames only is kept whole, as Go keeps one made
   * of runtime frames only. */
  snprintf(all_jemalloc, sizeof(all_jemalloc),
           "heap_v2/2\n  t*: 1: 8 [0: 0]\n"
           "@ 0x%" PRIxPTR " 0x%" PRIxPTR "\n  t*: 1: 8 [0: 0]\n",
           ranges[0].start + 0x10, ranges[0].start + 0x20);
  ASSERT_EQ(uv_pprof__je_parse(all_jemalloc, strlen(all_jemalloc), &strip, &d),
            0);
  ASSERT_EQ(row_frames(&d, 0, after), 2);
  ASSERT_EQ(after[0], ranges[0].start + 0x10);
  uv_pprof__je_dump_free(&d);
  return 0;
}

/* xorshift32: the same mutations every run. */
static uint32_t next_random(uint32_t* state) {
  uint32_t x = *state;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

/* The parser refuses text[0..len): UV_EINVAL, nothing kept. */
static void expect_refused(const char* text, size_t len) {
  uv_pprof__je_dump_t d;

  if (parse_guarded(text, len, &d) != UV_EINVAL) {
    fprintf(stderr, "accepted: \"%s\"\n", text);
    ASSERT(0);
  }
  ASSERT(d.stacks == NULL);
  ASSERT_EQ(d.nstacks, 0);
}

static void expect_accepted(const char* text) {
  uv_pprof__je_dump_t d;

  if (parse_guarded(text, strlen(text), &d) != 0) {
    fprintf(stderr, "refused: \"%s\"\n", text);
    ASSERT(0);
  }
  check_dump(&d);
  uv_pprof__je_dump_free(&d);
}

/* An answer either way, never a crash or a read past the end; a dump when
 * accepted. */
static void expect_either(const char* text, size_t len) {
  uv_pprof__je_dump_t d;
  int rc = parse_guarded(text, len, &d);

  ASSERT(rc == 0 || rc == UV_EINVAL);
  if (rc == 0)
    check_dump(&d);
  uv_pprof__je_dump_free(&d);
}

/* Every prefix of the real dump `name`, and 3000 single-byte mutations of it
 * (drawn from *seed). */
static void mutate_fixture(const char* name, uint32_t* seed) {
  static const char alphabet[] = "@0x:[] t*\n0123456789abcdef";
  size_t len;
  size_t i;
  char* text = je_fixture(name, &len);
  char* copy;

  for (i = 0; i <= len; i++)
    expect_either(text, i);
  copy = malloc(len + 1);
  ASSERT(copy != NULL);
  for (i = 0; i < 3000; i++) {
    memcpy(copy, text, len);
    copy[next_random(seed) % len] =
        (i & 1) ? (char)(next_random(seed) & 0xff)
                : alphabet[next_random(seed) % (sizeof(alphabet) - 1)];
    expect_either(copy, len);
  }
  free(copy);
  free(text);
}

TEST_IMPL(heap_parse_garbage) {
  static const char* const bad[] = {
      "",
      "heap_v2/",
      "heap_v2/0\n  t*: 0: 0 [0: 0]\n",
      "heap_v2/x\n  t*: 0: 0 [0: 0]\n",
      "heap_v2/524288 \n  t*: 0: 0 [0: 0]\n",
      "heap_v1/524288\n  t*: 0: 0 [0: 0]\n",
      "heap_v2/524288\n",
      "heap_v2/524288\n  t1: 0: 0 [0: 0]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n@ 0x1 0x2\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n@ 0x1\n  t1: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n@ 0xZZ\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n@ 0x\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n@ 1234\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n@ 0x1g\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n"
      "@ 0x11111111111111111\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 18446744073709551616: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4] x\n",
      "heap_v2/524288\n  t*: 1: 2 [3 4]\n",
      "heap_v2/524288\n  t*: -1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\nhello\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n  tx: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n\0@ 0x1\n",
  };
  static const char* const good[] = {
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]",
      "heap_v2/524288\n  t*: 1: 2 [3: 4]\n  t7: 1: 2 [3: 4] worker thread\n",
      "heap_v2/1\n  t*: 1: 2 [3: 4]\n@\n  t*: 1: 2 [3: 4]\n",
      "heap_v2/1\n  t*: 1: 2 [3: 4]\n@ 0xffffffffffffffff\n"
      "  t*: 18446744073709551615: 2 [3: 4]\n  t0: 1: 2 [3: 4]\n\n"
      "MAPPED_LIBRARIES:\ngarbage after the sentinel is not ours to read",
  };
  static const char* const names[] = {"dynamic_prof_accum_lg17",
                                      "static_lg0_entrypoints", "static_lg17"};
  uint32_t seed = 2463534242u;
  size_t i;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(bad); i++) {
    size_t len = strlen(bad[i]);
    if (i == UV_PPROF__ARRAY_SIZE(bad) - 1)
      len += 7; /* the one with a NUL inside */
    expect_refused(bad[i], len);
  }
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(good); i++)
    expect_accepted(good[i]);
  /* Every prefix of real dumps, and thousands of single-byte mutations. */
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(names); i++)
    mutate_fixture(names[i], &seed);
  return 0;
}

/* Rows of Go 1.19's own heap profile (reference/go119: the raw numbers of
 * heap_debug1.txt and the values of heap.pbdump.txt), rate 524288. */
TEST_IMPL(heap_unbias_go) {
  static const int64_t cases[][4] = {
      {14, 57344, 1799, 7368741},
      {2, 832, 2521, 1048992},
      {1, 663552, 1, 924248},
      {2, 147456, 15, 1124031},
      {1, 64, 8192, 524320},
      {3, 1990656, 4, 2772744},
      {1, 1048576, 1, 1212696},
      {2, 1327104, 2, 1848496},
      {0, 0, 0, 0},
  };
  int64_t objs;
  int64_t bytes;
  size_t i;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(cases); i++) {
    uv_pprof__heap_unbias((uint64_t)cases[i][0], (uint64_t)cases[i][1], 524288,
                          &objs, &bytes);
    ASSERT_EQ(objs, cases[i][2]);
    ASSERT_EQ(bytes, cases[i][3]);
  }
  /* Rate 1: every allocation was recorded; nothing to scale. */
  uv_pprof__heap_unbias(10000, 10240000, 1, &objs, &bytes);
  ASSERT_EQ(objs, 10000);
  ASSERT_EQ(bytes, 10240000);
  /* A zero on either side is no data. */
  uv_pprof__heap_unbias(0, 5, 524288, &objs, &bytes);
  ASSERT_EQ(objs, 0);
  ASSERT_EQ(bytes, 0);
  /* Garbage stays finite. */
  uv_pprof__heap_unbias(1, UINT64_MAX, 2, &objs, &bytes);
  ASSERT_EQ(bytes, INT64_MAX);
  return 0;
}

/* ---- unit: the profile and the text from a fixture ----------------------- */

typedef struct {
  uv_pprof__je_dump_t dump; /* a copy, for the expectations */
  void* snap;
} fixture_snap_t;

static void fixture_snapshot(int accum, int active, fixture_snap_t* fs) {
  uv_pprof__je_state_t st;
  uv_pprof__je_dump_t d;
  uv_pprof__range_t ranges[4];
  uv_pprof__je_strip_t strip;
  size_t len;
  char* text = je_fixture("dynamic_prof_accum_lg17", &len);

  memset(&strip, 0, sizeof(strip));
  strip.ranges = ranges;
  strip.nranges = jemalloc_ranges(text, ranges, 4);
  ASSERT_EQ(uv_pprof__je_parse(text, len, &strip, &d), 0);
  ASSERT_EQ(uv_pprof__je_parse(text, len, &strip, &fs->dump), 0);
  free(text);
  memset(&st, 0, sizeof(st));
  st.mode = UV_PPROF__HEAP_PROF_ON;
  st.accum = accum;
  st.active = active;
  st.lg_sample = 17;
  ASSERT_EQ(uv_pprof__heap_snapshot(&st, &d, &fs->snap), 0);
  ASSERT(d.stacks == NULL); /* taken over */
}

static profile_t* fixture_profile(const uv_pprof__profile_t* desc, void* snap,
                                  int delta) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uv_pprof__buf_t gz;
  profile_t* p;

  ASSERT(b != NULL);
  uv_pprof__buf_init(&gz);
  desc->types(b);
  if (delta)
    desc->emit(snap, b, -1);
  desc->emit(snap, b, 1);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__builder_free(b);
  p = profile_decode(gz.base, gz.len);
  uv_pprof__buf_free(&gz);
  return p;
}

/* Each sample is the stack of its row, as call sites, with the row's
 * unbiased pairs and Go's `bytes` label; a row with nothing to show (freed
 * blocks without prof_accum) is left out. */
static void expect_rows(const profile_t* p, const uv_pprof__je_dump_t* d,
                        int accum) {
  size_t rows = 0;
  size_t i;
  size_t j;

  for (i = 0; i < d->nstacks; i++) {
    const uv_pprof__je_stack_t* st = &d->stacks[i];
    const uv_pprof__je_counts_t* c = &st->counts;
    const Perftools__Profiles__Sample* s = NULL;
    int64_t v[4] = {0, 0, 0, 0};
    uint64_t objs = accum ? c->accum_objs : c->cur_objs;
    uint64_t bytes = accum ? c->accum_bytes : c->cur_bytes;
    uintptr_t f[UV_PPROF__STACK_MAX];
    size_t n;

    if (objs == 0)
      continue;
    rows++;
    n = row_frames(d, i, f);
    for (j = 0; j < p->n_sample && s == NULL; j++)
      if (p->sample[j]->n_location_id > 0 &&
          profile_location(p, p->sample[j]->location_id[0])->address ==
              f[0] - 1)
        s = p->sample[j];
    ASSERT(s != NULL);
    ASSERT_EQ(s->n_location_id, n);
    for (j = 0; j < n; j++)
      ASSERT_EQ(profile_location(p, s->location_id[j])->address, f[j] - 1);
    if (accum)
      uv_pprof__heap_unbias(c->accum_objs, c->accum_bytes, d->period, &v[0],
                            &v[1]);
    uv_pprof__heap_unbias(c->cur_objs, c->cur_bytes, d->period, &v[2], &v[3]);
    ASSERT_EQ(s->n_value, 4);
    for (j = 0; j < 4; j++)
      ASSERT_EQ(s->value[j], v[j]);
    ASSERT_EQ(s->n_label, 1);
    ASSERT_STR_EQ(profile_str(p, s->label[0]->key), "bytes");
    ASSERT_EQ(s->label[0]->num, (int64_t)(bytes / objs));
  }
  ASSERT_EQ(p->n_sample, rows);
}

TEST_IMPL(heap_fixture_profile) {
  static const char no_accum[] =
      "alloc_objects and alloc_space are unknown (0 here): jemalloc keeps "
      "cumulative counts only with prof_accum. Restart the process with "
      "MALLOC_CONF=prof:true,prof_accum:true to have them";
  static const char paused[] =
      "jemalloc's sampling is paused (prof.active is false): allocations "
      "made while it is off are not in this profile";
  fixture_snap_t fs;
  profile_t* p;

  fixture_snapshot(1, 1, &fs);
  p = fixture_profile(&uv_pprof__profile_heap, fs.snap, 0);
  expect_heap_types(p, "");
  ASSERT_EQ(p->period, 131072);
  ASSERT_EQ(p->n_comment, 0);
  expect_rows(p, &fs.dump, 1);
  perftools__profiles__profile__free_unpacked(p, NULL);

  p = fixture_profile(&uv_pprof__profile_allocs, fs.snap, 0);
  expect_heap_types(p, "alloc_space");
  expect_rows(p, &fs.dump, 1);
  perftools__profiles__profile__free_unpacked(p, NULL);

  /* A delta of a snapshot with itself is empty. */
  p = fixture_profile(&uv_pprof__profile_allocs, fs.snap, 1);
  expect_heap_types(p, "alloc_space");
  ASSERT_EQ(p->n_sample, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);
  uv_pprof__profile_heap.snapshot_free(fs.snap);
  uv_pprof__je_dump_free(&fs.dump);

  /* Without prof_accum the alloc pair is 0 and the comment says why. */
  fixture_snapshot(0, 0, &fs);
  p = fixture_profile(&uv_pprof__profile_heap, fs.snap, 0);
  expect_heap_types(p, "");
  ASSERT_EQ(p->n_comment, 2);
  ASSERT(has_comment(p, no_accum));
  ASSERT(has_comment(p, paused));
  expect_rows(p, &fs.dump, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);
  uv_pprof__profile_heap.snapshot_free(fs.snap);
  uv_pprof__je_dump_free(&fs.dump);
  return 0;
}

/* Go's text of a dump: the header sums the rows, the rows go by in-use
 * bytes, each followed by its frame lines. */
static void expect_text_rows(const char* text, const uv_pprof__je_dump_t* d) {
  const uv_pprof__je_stack_t* top = NULL;
  uv_pprof__je_counts_t t;
  uv_pprof__buf_t want;
  uintptr_t f[UV_PPROF__STACK_MAX];
  const char* p;
  uint64_t last = UINT64_MAX;
  size_t rows = 0;
  size_t nf;
  size_t i;

  memset(&t, 0, sizeof(t));
  for (i = 0; i < d->nstacks; i++) {
    const uv_pprof__je_counts_t* c = &d->stacks[i].counts;
    t.cur_objs += c->cur_objs;
    t.cur_bytes += c->cur_bytes;
    t.accum_objs += c->accum_objs;
    t.accum_bytes += c->accum_bytes;
    if (top == NULL || c->cur_bytes > top->counts.cur_bytes)
      top = &d->stacks[i];
  }
  uv_pprof__buf_init(&want);
  uv_pprof__buf_printf(&want,
                       "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64
                       ": %" PRIu64 "] @ heap/%" PRIu64 "\n",
                       t.cur_objs, t.cur_bytes, t.accum_objs, t.accum_bytes,
                       2 * d->period);
  uv_pprof__buf_printf(&want,
                       "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @",
                       top->counts.cur_objs, top->counts.cur_bytes,
                       top->counts.accum_objs, top->counts.accum_bytes);
  nf = row_frames(d, (size_t)(top - d->stacks), f);
  for (i = 0; i < nf; i++)
    uv_pprof__buf_printf(&want, " 0x%" PRIxPTR, f[i]);
  uv_pprof__buf_printf(&want, "\n#\t0x%" PRIxPTR, f[0] - 1);
  ASSERT_EQ(uv_pprof__buf_append(&want, "", 1), 0);
  if (strncmp(text, want.base, want.len - 1) != 0) {
    fprintf(stderr, "text:\n%s\nexpected to start with:\n%s\n", text,
            want.base);
    ASSERT(0);
  }
  uv_pprof__buf_free(&want);
  for (p = strchr(text, '\n'); p != NULL; p = strchr(p + 1, '\n')) {
    unsigned long long objs;
    unsigned long long bytes;
    if (strncmp(p + 1, "# runtime.MemStats", 18) == 0)
      break;
    if (p[1] < '0' || p[1] > '9' ||
        sscanf(p + 1, "%llu: %llu [", &objs, &bytes) != 2)
      continue;
    ASSERT(bytes <= last);
    last = bytes;
    rows++;
  }
  ASSERT_EQ(rows, d->nstacks);
}

TEST_IMPL(heap_fixture_text) {
  fixture_snap_t fs;
  uv_pprof__buf_t out;
  const uv_pprof__je_stack_t* kept;
  char file[256];
  char want[128];
  run_result_t r;
  int64_t objs;
  int64_t bytes;
  const char* args[] = {"-raw", file, NULL};

  fixture_snapshot(1, 1, &fs);
  uv_pprof__buf_init(&out);
  ASSERT_EQ(uv_pprof__profile_heap.text(fs.snap, 1, &out), 0);
  ASSERT_EQ(uv_pprof__buf_append(&out, "", 1), 0);
  expect_text_rows(out.base, &fs.dump);
  ASSERT_CONTAINS(out.base, "\n\n\n# runtime.MemStats\n");
  ASSERT_CONTAINS(out.base, "\n# RSS = ");
  ASSERT_CONTAINS(out.base, "\n# MaxRSS = ");
  kept = je_find(&fs.dump, JEDUMP_KEPT, JEDUMP_BLOCK);
  ASSERT(kept != NULL);

  /* go tool pprof reads it, with the numbers of our proto. */
  snprintf(file, sizeof(file), "%s/heap.txt", test_tmpdir());
  write_whole(file, out.base, out.len - 1);
  go_pprof(args, &r);
  ASSERT_CONTAINS(r.out, "PeriodType: space bytes");
  ASSERT_CONTAINS(r.out, "Period: 131072");
  ASSERT_CONTAINS(r.out,
                  "alloc_objects/count alloc_space/bytes "
                  "inuse_objects/count inuse_space/bytes");
  uv_pprof__heap_unbias(kept->counts.cur_objs, kept->counts.cur_bytes, 131072,
                        &objs, &bytes);
  snprintf(want, sizeof(want),
           " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 ": ", objs, bytes,
           objs, bytes);
  ASSERT_CONTAINS(squeeze(r.out), want);
  run_free(&r);
  uv_pprof__buf_free(&out);
  uv_pprof__profile_heap.snapshot_free(fs.snap);
  uv_pprof__je_dump_free(&fs.dump);

  /* Without prof_accum the text says so right under the header. */
  fixture_snapshot(0, 1, &fs);
  uv_pprof__buf_init(&out);
  ASSERT_EQ(uv_pprof__profile_heap.text(fs.snap, 1, &out), 0);
  ASSERT_EQ(uv_pprof__buf_append(&out, "", 1), 0);
  ASSERT_CONTAINS(out.base,
                  "@ heap/262144\n# alloc_objects and alloc_space "
                  "are unknown (0 here)");
  uv_pprof__buf_free(&out);
  uv_pprof__profile_heap.snapshot_free(fs.snap);
  uv_pprof__je_dump_free(&fs.dump);
  return 0;
}

/* ---- integration: this process, whose malloc is glibc's ----------------- */

static profile_t* get_profile(test_host_t* h, const char* path,
                              const char* disposition) {
  char want[128];
  run_result_t r;
  size_t len;
  const char* body;
  profile_t* p;

  curl_get(h, path, NULL, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), "application/octet-stream");
  snprintf(want, sizeof(want), "attachment; filename=\"%s\"", disposition);
  ASSERT_STR_EQ(http_header(&r, "Content-Disposition"), want);
  body = http_body(&r, &len);
  p = profile_decode(body, len);
  run_free(&r);
  return p;
}

TEST_IMPL(heap_no_jemalloc) {
  static const char howto[] =
      "heap profiling is off: this process's malloc is not jemalloc. Start "
      "it with LD_PRELOAD=libjemalloc.so.2 "
      "MALLOC_CONF=prof:true,prof_accum:true (or link it with -ljemalloc "
      "and set MALLOC_CONF) to turn it on";
  static const char* const paths[][3] = {
      {"/debug/pprof/heap", "heap", ""},
      {"/debug/pprof/heap?gc=1", "heap", ""},
      {"/debug/pprof/allocs", "allocs", "alloc_space"},
      {"/debug/pprof/allocs?seconds=1", "allocs-delta", "alloc_space"},
      {"/debug/pprof/heap?seconds=1", "heap-delta", ""},
  };
  test_host_t* h = host_start(NULL);
  run_result_t r;
  size_t len;
  size_t i;
  const char* body;
  char file[256];
  char head[512];
  const char* args[] = {"-raw", file, NULL};

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(paths); i++) {
    profile_t* p = get_profile(h, paths[i][0], paths[i][1]);
    expect_heap_types(p, paths[i][2]);
    ASSERT_EQ(p->period, 524288);
    ASSERT_EQ(p->n_sample, 0);
    ASSERT_EQ(p->n_comment, 1);
    ASSERT_STR_EQ(profile_str(p, p->comment[0]), howto);
    if (strstr(paths[i][0], "seconds=") != NULL)
      ASSERT_GT(p->duration_nanos, 0);
    perftools__profiles__profile__free_unpacked(p, NULL);
  }

  curl_get(h, "/debug/pprof/heap?debug=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), "text/plain; charset=utf-8");
  body = http_body(&r, &len);
  snprintf(head, sizeof(head),
           "heap profile: 0: 0 [0: 0] @ heap/1048576\n# %s\n\n"
           "# runtime.MemStats\n# Alloc = ",
           howto);
  if (strncmp(body, head, strlen(head)) != 0) {
    fprintf(stderr, "text:\n%s\nexpected to start with:\n%s\n", body, head);
    ASSERT(0);
  }
  ASSERT_CONTAINS(body, "\n# HeapInuse = ");
  ASSERT_CONTAINS(body, "\n# glibc.mallinfo2.arena = ");
  ASSERT_CONTAINS(body, "\n# RSS = ");
  snprintf(file, sizeof(file), "%s/heap.txt", test_tmpdir());
  write_whole(file, body, len);
  run_free(&r);
  go_pprof(args, &r);
  ASSERT_CONTAINS(r.out, "PeriodType: space bytes");
  run_free(&r);

  /* The index counts stacks: none here. */
  curl_get(h, "/debug/pprof/", NULL, &r);
  ASSERT_CONTAINS(r.out, "<tr><td>0</td><td><a href='heap?debug=1'>heap</a>");
  ASSERT_CONTAINS(r.out,
                  "<tr><td>0</td><td><a href='allocs?debug=1'>allocs</a>");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* ---- integration: real jemalloc in uv_pprof_heaphost -------------------- */

/* jemalloc samples one allocation per R = 512 KiB on average (its default),
 * a block of s bytes with probability p = 1 - exp(-s/R), and weighs each
 * sample by 1/p. The host's blocks make ±10 % fail only when something is
 * wrong: 64 MiB live in 16 blocks of 4 MiB (p = 1 - 3.4e-4; failing takes 2
 * blocks unsampled: probability 1.4e-5); 32 MiB leaked in 4 blocks of 8 MiB
 * (p = 1 - 1.1e-7); 256 MiB allocated and freed in 1 MiB blocks, where
 * unbiasing matters (p = 0.865, weight 1.156: without it the answer is 13 %
 * short) and the number sampled, binomial(256, 0.865), stays within ±10 %
 * of its mean but with probability 5e-5. */
static void check_accuracy(heaphost_t* h) {
  char file[256];
  run_result_t r;
  profile_t* p;
  char* text;

  host_do(h, "live");
  host_do(h, "churn");
  p = fetch_heap(h, file, sizeof(file));
  expect_heap_types(p, "");
  ASSERT_EQ(p->period, 524288);
  ASSERT_EQ(p->n_comment, 0);
  ASSERT_GT(p->n_sample, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);

  pprof_top("inuse_space", NULL, file, &r);
  expect_within(r.out, "heaphost_keep_live", 64 * MIB, 10);
  run_free(&r);
  pprof_top("alloc_space", NULL, file, &r);
  expect_within(r.out, "heaphost_churn", 256 * MIB, 10);
  expect_within(r.out, "heaphost_keep_live", 64 * MIB, 10);
  run_free(&r);

  text = fetch_text(h, "/debug/pprof/heap?debug=1");
  ASSERT_STARTS_WITH(text, "heap profile: ");
  ASSERT_CONTAINS(text, "] @ heap/1048576\n");
  ASSERT_CONTAINS(text, "\n# runtime.MemStats\n# Alloc = ");
  ASSERT_CONTAINS(text, "\n# TotalAlloc = ");
  ASSERT_CONTAINS(text, "\n# jemalloc.opt.prof = true\n");
  ASSERT_CONTAINS(text, "\n# jemalloc.opt.prof_accum = true\n");
  ASSERT_CONTAINS(text, "\n# jemalloc.stats.allocated = ");
  ASSERT_CONTAINS(text, "\n# RSS = ");
  ASSERT_GE(strtoll(strstr(text, "# HeapAlloc = ") + 14, NULL, 10), 64 * MIB);
  free(text);
}

static const char* const accum_env[] = {"MALLOC_CONF=prof:true,prof_accum:true",
                                        NULL};

TEST_IMPL(heap_jemalloc_linked) {
  heaphost_t h;
  char* err;

  host_spawn(&h, UV_PPROF_HEAPHOST, accum_env);
  check_accuracy(&h);
  err = host_end(&h);
  expect_banner(err, &h, NULL); /* profiling on: nothing more to say */
  free(err);
  return 0;
}

TEST_IMPL(heap_jemalloc_preload) {
  static const char* const env[] = {"MALLOC_CONF=prof:true,prof_accum:true",
                                    "LD_PRELOAD=" UV_PPROF_JEMALLOC_SO, NULL};
  heaphost_t h;

  host_spawn(&h, UV_PPROF_HEAPHOST_PLAIN, env);
  check_accuracy(&h);
  free(host_end(&h));
  return 0;
}

/* jemalloc linked statically: its frames are told by name (jeprof's rule),
 * through the symbolizer. */
TEST_IMPL(heap_jemalloc_static) {
  static const char* const allocator[] = {"malloc",
                                          "prof_backtrace_impl",
                                          "je_prof_backtrace",
                                          "je_prof_tctx_create",
                                          "je_malloc_default",
                                          NULL};
  heaphost_t h;
  char file[256];
  run_result_t r;
  profile_t* p;
  size_t i;
  int found;

  host_spawn(&h, UV_PPROF_HEAPHOST_STATIC, accum_env);
  host_do(&h, "live");
  p = fetch_heap(&h, file, sizeof(file));
  perftools__profiles__profile__free_unpacked(p, NULL);
  pprof_top("inuse_space", NULL, file, &r);
  expect_within(r.out, "heaphost_keep_live", 64 * MIB, 10);
  for (i = 0; allocator[i] != NULL; i++) {
    top_flat(r.out, allocator[i], &found);
    if (found) {
      fprintf(stderr, "%s is still in the profile:\n%s\n", allocator[i], r.out);
      ASSERT(0);
    }
  }
  run_free(&r);
  free(host_end(&h));
  return 0;
}

/* Leak hunting as Go users do it: -base between two snapshots. */
TEST_IMPL(heap_jemalloc_base) {
  heaphost_t h;
  char before[256];
  char after[256];
  char other[512];
  run_result_t r;
  long long noise;

  host_spawn(&h, UV_PPROF_HEAPHOST, accum_env);
  host_do(&h, "live");
  /* The first profile loads uv_pprof's symbol tables: not sampled
   * (heap_jemalloc_own_unsampled), so no growth in the diff. */
  snprintf(before, sizeof(before), "%s",
           fetch(&h, "/debug/pprof/heap", "before.pb.gz"));
  host_do(&h, "leak");
  snprintf(after, sizeof(after), "%s",
           fetch(&h, "/debug/pprof/heap", "after.pb.gz"));
  pprof_top("inuse_space", before, after, &r);
  expect_within(r.out, "heaphost_leak", 32 * MIB, 10);
  /* Anything else that moved is noise: a few samples (each stands for
   * about 512 KiB) of uv_pprof's own work between the snapshots. */
  noise = top_largest_other(r.out, "heaphost_leak", other, sizeof(other));
  if (noise * 10 > 32 * MIB) {
    fprintf(stderr, "%s moved by %lld bytes:\n%s\n", other, noise, r.out);
    ASSERT(0);
  }
  run_free(&r);
  free(host_end(&h));
  return 0;
}

/* uv_pprof's worker allocates its symbol tables (MBs: libdw's copy of the
 * DWARF it reads) and every profile's buffers; jemalloc must not sample
 * them, or the host's heap profile shows uv_pprof growing after its first
 * use. Sampling every allocation (lg_prof_sample:0), no live sample may
 * have a symbolizer or libdw frame, while the host's own are all there. */
TEST_IMPL(heap_jemalloc_own_unsampled) {
  static const char* const env[] = {
      "MALLOC_CONF=prof:true,prof_accum:true,lg_prof_sample:0", NULL};
  static const char* const own[] = {
      "uv_pprof__symbolize", "dwfl_", "dwarf_", "elf_", "__libdw", "__libelf"};
  heaphost_t h;
  char file[256];
  profile_t* p;
  long long live = 0;
  size_t i;

  host_spawn(&h, UV_PPROF_HEAPHOST, env);
  host_do(&h, "live");
  /* The first profile loads the symbol tables; they are live for the
   * second. */
  fetch(&h, "/debug/pprof/heap", "first.pb.gz");
  p = fetch_heap(&h, file, sizeof(file));
  for (i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample* s = p->sample[i];
    int64_t bytes = s->value[3]; /* inuse_space */
    size_t j;
    if (bytes == 0)
      continue;
    for (j = 0; j < s->n_location_id; j++) {
      const Perftools__Profiles__Location* loc =
          profile_location(p, s->location_id[j]);
      size_t k;
      size_t m;
      for (k = 0; k < loc->n_line; k++) {
        const char* name = profile_str(
            p, profile_function(p, loc->line[k]->function_id)->name);
        if (strcmp(name, "heaphost_keep_live") == 0)
          live += bytes;
        for (m = 0; m < UV_PPROF__ARRAY_SIZE(own); m++) {
          if (strncmp(name, own[m], strlen(own[m])) == 0) {
            fprintf(stderr, "uv_pprof's own %lld bytes, under %s\n",
                    (long long)bytes, name);
            ASSERT(0);
          }
        }
      }
    }
  }
  ASSERT_GE(live, 64 * MIB);
  perftools__profiles__profile__free_unpacked(p, NULL);
  free(host_end(&h));
  return 0;
}

/* Reads a whole HTTP/1.1 answer (Connection: close) and returns its body. */
static char* read_answer(int fd, const char* disposition, size_t* len) {
  char want[128];
  size_t n;
  char* all = tcp_read_all(fd, 60000, &n);
  char* body = strstr(all, "\r\n\r\n");
  char* copy;

  ASSERT_STARTS_WITH(all, "HTTP/1.1 200 OK\r\n");
  snprintf(want, sizeof(want),
           "\r\nContent-Disposition: attachment; filename=\"%s\"\r\n",
           disposition);
  ASSERT(body != NULL);
  *body = '\0';
  ASSERT_CONTAINS(all, want);
  body += 4;
  *len = n - (size_t)(body - all);
  copy = malloc(*len + 1);
  ASSERT(copy != NULL);
  memcpy(copy, body, *len);
  free(all);
  return copy;
}

/* heap?seconds=N: what grew during the window, and only that. */
TEST_IMPL(heap_jemalloc_delta) {
  static const char req[] =
      "GET /debug/pprof/heap?seconds=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n";
  static const char allocs_req[] =
      "GET /debug/pprof/allocs?seconds=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n";
  heaphost_t h;
  char file[256];
  char other[512];
  run_result_t r;
  profile_t* p;
  char* body;
  size_t len;
  long long noise;
  int fd;

  host_spawn(&h, UV_PPROF_HEAPHOST, accum_env);
  host_do(&h, "live");
  fd = tcp_connect(h.port);
  ASSERT_EQ(tcp_send(fd, req, sizeof(req) - 1), 0);
  /* The first snapshot is taken as the request arrives; the leak comes
   * well inside the 3 s window. */
  sleep(1);
  host_do(&h, "leak");
  body = read_answer(fd, "heap-delta", &len);
  close(fd);
  p = profile_decode(body, len);
  expect_heap_types(p, "");
  ASSERT_GT(p->duration_nanos, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);
  snprintf(file, sizeof(file), "%s/delta.pb.gz", h.dir);
  write_whole(file, body, len);
  free(body);
  pprof_top("inuse_space", NULL, file, &r);
  expect_within(r.out, "heaphost_leak", 32 * MIB, 10);
  noise = top_largest_other(r.out, "heaphost_leak", other, sizeof(other));
  if (noise * 10 > 32 * MIB) {
    fprintf(stderr, "%s moved by %lld bytes:\n%s\n", other, noise, r.out);
    ASSERT(0);
  }
  run_free(&r);

  /* allocs keeps its default sample type in a delta (Go 1.19 loses it). */
  fd = tcp_connect(h.port);
  ASSERT_EQ(tcp_send(fd, allocs_req, sizeof(allocs_req) - 1), 0);
  body = read_answer(fd, "allocs-delta", &len);
  close(fd);
  p = profile_decode(body, len);
  expect_heap_types(p, "alloc_space");
  perftools__profiles__profile__free_unpacked(p, NULL);
  free(body);
  free(host_end(&h));
  return 0;
}

/* go tool pprof reads the ?debug=1 text from the URL, as it reads Go's;
 * it names the addresses through /debug/pprof/symbol. */
TEST_IMPL(heap_jemalloc_debug1_pprof) {
  heaphost_t h;
  char url[256];
  const char* args[] = {
      "-top", "-unit=B", "-nodefraction=0", "-sample_index=inuse_space",
      url,    NULL};
  run_result_t r;

  host_spawn(&h, UV_PPROF_HEAPHOST, accum_env);
  host_do(&h, "live");
  snprintf(url, sizeof(url), "%s/debug/pprof/heap?debug=1", h.base);
  go_pprof(args, &r);
  expect_within(r.out, "heaphost_keep_live", 64 * MIB, 10);
  run_free(&r);
  free(host_end(&h));
  return 0;
}

/* The host's loop keeps running while uv_pprof dumps and encodes: its 1 ms
 * timer fires and it answers commands before the heap answer arrives. With
 * every allocation sampled and 4096 distinct stacks, the request is long
 * enough to watch. */
TEST_IMPL(heap_jemalloc_ticks) {
  static const char* const env[] = {"MALLOC_CONF=prof:true,lg_prof_sample:0",
                                    NULL};
  static const char req[] =
      "GET /debug/pprof/heap HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
      "close\r\n\r\n";
  heaphost_t h;
  unsigned long long first = 0;
  unsigned long long last = 0;
  int readings = 0;
  char* body;
  size_t len;
  int fd;

  host_spawn(&h, UV_PPROF_HEAPHOST, env);
  host_do(&h, "stacks");
  fd = tcp_connect(h.port);
  ASSERT_EQ(tcp_send(fd, req, sizeof(req) - 1), 0);
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    const char* answer;
    ASSERT_GE(poll(&p, 1, 0), 0);
    if (p.revents != 0)
      break; /* the answer is coming */
    answer = host_cmd(&h, "ticks");
    ASSERT_STARTS_WITH(answer, "ticks=");
    last = strtoull(answer + 6, NULL, 10);
    if (readings++ == 0)
      first = last;
  }
  body = read_answer(fd, "heap", &len);
  close(fd);
  perftools__profiles__profile__free_unpacked(profile_decode(body, len), NULL);
  free(body);
  if (readings < 2 || last <= first) {
    fprintf(stderr,
            "%d readings of the tick count while the request ran (first "
            "%llu, last %llu)\n",
            readings, first, last);
    ASSERT(0);
  }
  free(host_end(&h));
  return 0;
}

/* jemalloc without opt.prof: the banner says how to turn it on, and the
 * answers are valid and say it too. */
TEST_IMPL(heap_jemalloc_off) {
  static const char* const env[] = {NULL};
  static const char off_text[] =
      "heap profile: 0: 0 [0: 0] @ heap/1048576\n# " HEAP_OFF_PROF
      "\n\n# runtime.MemStats\n# Alloc = ";
  heaphost_t h;
  char file[256];
  profile_t* p;
  char* text;
  char* err;
  run_result_t r;
  const char* args[] = {"-raw", file, NULL};

  host_spawn(&h, UV_PPROF_HEAPHOST, env);
  host_do(&h, "live");
  p = fetch_heap(&h, file, sizeof(file));
  expect_heap_types(p, "");
  ASSERT_EQ(p->period, 524288);
  ASSERT_EQ(p->n_sample, 0);
  ASSERT_EQ(p->n_comment, 1);
  ASSERT_STR_EQ(profile_str(p, p->comment[0]), HEAP_OFF_PROF);
  perftools__profiles__profile__free_unpacked(p, NULL);
  go_pprof(args, &r);
  run_free(&r);

  text = fetch_text(&h, "/debug/pprof/allocs?debug=1");
  if (strncmp(text, off_text, strlen(off_text)) != 0) {
    fprintf(stderr, "text:\n%s\nexpected to start with:\n%s\n", text, off_text);
    ASSERT(0);
  }
  ASSERT_CONTAINS(text, "\n# jemalloc.opt.prof = false\n");
  ASSERT_CONTAINS(text, "\n# jemalloc.stats.allocated = ");
  ASSERT_GE(strtoll(strstr(text, "# HeapAlloc = ") + 14, NULL, 10), 64 * MIB);
  free(text);
  err = host_end(&h);
  expect_banner(err, &h, HEAP_OFF_PROF);
  free(err);
  return 0;
}

/* prof:true without prof_accum: in-use values right, alloc values 0 and
 * said to be unknown. */
TEST_IMPL(heap_jemalloc_no_accum) {
  static const char* const env[] = {"MALLOC_CONF=prof:true", NULL};
  heaphost_t h;
  char file[256];
  run_result_t r;
  profile_t* p;
  char* text;
  size_t i;

  host_spawn(&h, UV_PPROF_HEAPHOST, env);
  host_do(&h, "live");
  host_do(&h, "churn");
  p = fetch_heap(&h, file, sizeof(file));
  expect_heap_types(p, "");
  ASSERT_EQ(p->n_comment, 1);
  ASSERT_CONTAINS(profile_str(p, p->comment[0]),
                  "alloc_objects and alloc_space are unknown (0 here)");
  ASSERT_GT(p->n_sample, 0);
  for (i = 0; i < p->n_sample; i++) {
    ASSERT_EQ(p->sample[i]->value[0], 0);
    ASSERT_EQ(p->sample[i]->value[1], 0);
  }
  perftools__profiles__profile__free_unpacked(p, NULL);
  pprof_top("inuse_space", NULL, file, &r);
  expect_within(r.out, "heaphost_keep_live", 64 * MIB, 10);
  run_free(&r);
  text = fetch_text(&h, "/debug/pprof/heap?debug=1");
  ASSERT_CONTAINS(text, "\n# alloc_objects and alloc_space are unknown");
  ASSERT_CONTAINS(text, "\n# jemalloc.opt.prof_accum = false\n");
  free(text);
  free(host_end(&h));
  return 0;
}

/* The recommended configuration: profiling compiled in and enabled but not
 * sampling (prof_active:false) costs nothing measurable until UV_PPROF is
 * set; then uv_pprof_start turns sampling on. */
TEST_IMPL(heap_jemalloc_activate) {
  static const char* const env[] = {
      "MALLOC_CONF=prof:true,prof_active:false,prof_accum:true", NULL};
  heaphost_t h;
  char file[256];
  run_result_t r;
  profile_t* p;

  host_spawn(&h, UV_PPROF_HEAPHOST, env);
  host_do(&h, "live");
  p = fetch_heap(&h, file, sizeof(file));
  ASSERT_EQ(p->n_comment, 0); /* not paused */
  perftools__profiles__profile__free_unpacked(p, NULL);
  pprof_top("inuse_space", NULL, file, &r);
  expect_within(r.out, "heaphost_keep_live", 64 * MIB, 10);
  run_free(&r);
  free(host_end(&h));
  return 0;
}
