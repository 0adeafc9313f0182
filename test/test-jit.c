/* Tests of names for JIT code: executable anonymous memory mapped by the
 * test stands for a JIT's code, and the test writes this process's perf
 * map (/tmp/perf-<pid>.map) as a runtime would, then as a hostile one
 * would: malformed, truncated, appended to between lookups, rewritten,
 * huge, lying about ranges that belong to loaded objects, a symlink, a
 * FIFO. Without a line, such code is "[jit]"; nothing else changes. */
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pprof.h"
#include "profile.pb-c.h"
#include "sym-funcs.h"
#include "task.h"

#define CODE_SIZE (4u << 20)

static char map_path[64];

static uint64_t next_random(uint64_t* s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* Lets the symbolizer look at the map again (it looks at most every
 * 50 ms). */
static void settle(void) {
  sleep_ms(60);
}

/* Executable memory that no file backs, as a JIT maps it. */
static uintptr_t map_code(void) {
  void* p = mmap(NULL, CODE_SIZE, PROT_READ | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  ASSERT(p != MAP_FAILED);
  return (uintptr_t)p;
}

static int on_first(struct dl_phdr_info* info, size_t size, void* arg) {
  uintptr_t* range = arg;
  size_t i;

  range[0] = UINTPTR_MAX;
  range[1] = 0;
  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type != PT_LOAD)
      continue;
    if (lo < range[0])
      range[0] = lo;
    if (lo + ph->p_memsz > range[1])
      range[1] = lo + ph->p_memsz;
  }
  return 1;
}

/* A page of executable anonymous memory right next to the test binary
 * (after its end, else before its start); its address. */
static uintptr_t map_beside_exe(void) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t range[2];
  uintptr_t at[2];
  int i;

  dl_iterate_phdr(on_first, range);
  at[0] = (range[1] + page - 1) & ~(page - 1);
  at[1] = (range[0] & ~(page - 1)) - page;
  for (i = 0; i < 2; i++) {
    void* p = mmap((void*)at[i], page, PROT_READ | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == (void*)at[i])
      return at[i];
    if (p != MAP_FAILED)
      munmap(p, page);
  }
  ASSERT(0 && "no free page beside the test binary");
  return 0;
}

static void write_map(const char* mode, const char* text) {
  FILE* f;

  snprintf(map_path, sizeof(map_path), "/tmp/perf-%d.map", (int)getpid());
  f = fopen(map_path, mode);
  ASSERT(f != NULL);
  ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
  ASSERT_EQ(fclose(f), 0);
}

static void remove_map(void) {
  snprintf(map_path, sizeof(map_path), "/tmp/perf-%d.map", (int)getpid());
  unlink(map_path);
}

/* The one frame of addr: `name`, from `start` (JIT code named by the map),
 * or "[jit]" when name is NULL. */
static void expect_jit(uintptr_t addr, const char* name, uintptr_t start) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];

  ASSERT_EQ(uv_pprof__symbolize(addr, f, UV_PPROF__MAX_INLINE), 1);
  if (name == NULL) {
    ASSERT_STR_EQ(f[0].name, "[jit]");
    ASSERT(f[0].nameless && f[0].start == addr);
  } else {
    ASSERT_STR_EQ(f[0].name, name);
    ASSERT(!f[0].nameless);
    ASSERT_EQ(f[0].start, start);
  }
  ASSERT(f[0].file == NULL && f[0].module == NULL);
}

/* No map: anonymous executable memory is "[jit]", anything else unknown;
 * a map line names its range; the addresses of loaded objects keep their
 * own names whatever the map says. */
TEST_IMPL(jit_perf_map) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uintptr_t code = map_code();
  uintptr_t global = (uintptr_t)&sym_global;
  uintptr_t beside;
  char text[1024];

  remove_map();
  expect_jit(code + 0x10, NULL, 0);
  ASSERT_EQ(uv_pprof__symbolize(0x10, f, UV_PPROF__MAX_INLINE), 0);

  /* Both spellings of hex; CRLF; trailing blanks. */
  snprintf(text, sizeof(text),
           "%" PRIxPTR
           " 100 JS:*busy /app/main.js:3:10\n"
           "0x%" PRIxPTR
           " 0x80 LazyCompile:~idle app.js:9\r\n"
           "%" PRIxPTR
           " 10 evil over sym_global\n"
           "%" PRIxPTR " 40 Stub:CEntry  \n",
           code, code + 0x100, global - 4, code + 0x400);
  write_map("w", text);
  settle();
  expect_jit(code, "JS:*busy /app/main.js:3:10", code);
  expect_jit(code + 0xff, "JS:*busy /app/main.js:3:10", code);
  expect_jit(code + 0x17f, "LazyCompile:~idle app.js:9", code + 0x100);
  expect_jit(code + 0x180, NULL, 0);
  expect_jit(code + 0x43f, "Stub:CEntry", code + 0x400);
  ASSERT_EQ(uv_pprof__symbolize(global + 1, f, UV_PPROF__MAX_INLINE), 1);
  ASSERT_STR_EQ(f[0].name, "sym_global");
  uv_pprof__symbolizer_reset();

  /* A line over a loaded object is dropped whole: the part of it that
   * lies in JIT memory next to the object names nothing either. */
  beside = map_beside_exe();
  expect_jit(beside + 0x40, NULL, 0);
  snprintf(text, sizeof(text), "%" PRIxPTR " 3000 evil over the binary\n",
           beside - 0x1000);
  write_map("w", text);
  settle();
  expect_jit(beside + 0x40, NULL, 0);
  uv_pprof__symbolizer_reset();
  remove_map();
  return 0;
}

/* The runtime appends while the process runs: new lines are read at the
 * next look, a line cut short waits for its end, and a later line for the
 * same addresses wins (code freed, its memory reused) where it covers
 * them. A rewritten (shorter) or replaced file is read from the start. */
TEST_IMPL(jit_perf_map_appended) {
  uintptr_t code = map_code();
  char text[1024];

  remove_map();
  snprintf(text, sizeof(text), "%" PRIxPTR " 200 first\n", code);
  write_map("w", text);
  settle();
  expect_jit(code + 0x10, "first", code);
  expect_jit(code + 0x310, NULL, 0);

  snprintf(text, sizeof(text), "%" PRIxPTR " 100 second\n%" PRIxPTR " 40 par",
           code + 0x300, code + 0x400);
  write_map("a", text);
  settle();
  expect_jit(code + 0x310, "second", code + 0x300);
  expect_jit(code + 0x410, NULL, 0);
  write_map("a", "tial\n");
  settle();
  expect_jit(code + 0x410, "partial", code + 0x400);

  /* Newer lines over parts of older ones. */
  snprintf(text, sizeof(text), "%" PRIxPTR " 80 newer\n%" PRIxPTR " 10 inner\n",
           code, code + 0x340);
  write_map("a", text);
  settle();
  expect_jit(code + 0x10, "newer", code);
  expect_jit(code + 0x90, "first", code);
  expect_jit(code + 0x345, "inner", code + 0x340);
  expect_jit(code + 0x33f, "second", code + 0x300);
  expect_jit(code + 0x350, "second", code + 0x300);

  /* Rewritten shorter: what the old file said is forgotten. */
  snprintf(text, sizeof(text), "%" PRIxPTR " 20 again\n", code + 0x800);
  write_map("w", text);
  settle();
  expect_jit(code + 0x810, "again", code + 0x800);
  expect_jit(code + 0x10, NULL, 0);
  /* Replaced by another file as long as the old one. */
  remove_map();
  snprintf(text, sizeof(text), "%" PRIxPTR " 20 other\n", code + 0x900);
  write_map("w", text);
  settle();
  expect_jit(code + 0x910, "other", code + 0x900);
  expect_jit(code + 0x810, NULL, 0);
  uv_pprof__symbolizer_reset();
  remove_map();
  return 0;
}

/* Lines that are not "START SIZE name" with a sane range are skipped, the
 * rest of the file still read; names lose control characters and are cut
 * at 200 bytes (never inside a UTF-8 sequence). */
TEST_IMPL(jit_perf_map_garbage) {
  uv_pprof__buf_t text;
  uintptr_t code = map_code();
  char name[512];
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  size_t i;

  remove_map();
  uv_pprof__buf_init(&text);
  uv_pprof__buf_printf(&text,
                       "\n"
                       "zz 10 hex?\n"
                       "%" PRIxPTR
                       " 0 empty\n"
                       "%" PRIxPTR
                       " 10\n"
                       "%" PRIxPTR
                       " 10   \n"
                       "%" PRIxPTR
                       "\n"
                       "-%" PRIxPTR
                       " 10 minus\n"
                       "%" PRIxPTR
                       " ffffffffffffffff wraps\n"
                       "%" PRIxPTR
                       " 2000000 too big\n"
                       "0 10 at zero\n"
                       "123456789abcdef012 10 too many digits\n"
                       "%" PRIxPTR ",10 comma\n",
                       code, code, code, code, code, code, code, code);
  /* A 100 KB line: longer than one read. */
  uv_pprof__buf_printf(&text, "%" PRIxPTR " 10 ", code);
  for (i = 0; i < 100000; i++)
    uv_pprof__buf_append(&text, "x", 1);
  uv_pprof__buf_printf(&text, "\n");
  uv_pprof__buf_printf(&text, "%" PRIxPTR " 10 tab\there\x01\n", code + 0x100);
  memset(name, 0, sizeof(name));
  for (i = 0; i < 199; i++)
    name[i] = 'n';
  uv_pprof__buf_printf(&text, "%" PRIxPTR " 10 %s\xc3\xa9tail\n", code + 0x200,
                       name);
  uv_pprof__buf_printf(&text, "%" PRIxPTR " 10 last\n", code + 0x300);
  ASSERT(!text.oom);
  ASSERT_EQ(uv_pprof__buf_append(&text, "", 1), 0);
  write_map("w", text.base);
  uv_pprof__buf_free(&text);
  settle();

  expect_jit(code + 0x5, NULL, 0);
  expect_jit(code + 0x105, "tab?here?", code + 0x100);
  ASSERT_EQ(uv_pprof__symbolize(code + 0x205, f, UV_PPROF__MAX_INLINE), 1);
  ASSERT_EQ(strlen(f[0].name), 199);
  ASSERT(strncmp(f[0].name, name, 199) == 0);
  expect_jit(code + 0x305, "last", code + 0x300);
  uv_pprof__symbolizer_reset();
  remove_map();
  return 0;
}

/* A map bigger than one look reads (4 MiB): only its latest lines are
 * read, and of those the latest 65536 kept. The map is not followed as a
 * symlink, and a FIFO in its place blocks nothing. */
TEST_IMPL(jit_perf_map_bounds) {
  uintptr_t code = map_code();
  uv_pprof__buf_t text;
  char other[128];
  char line[128];
  size_t i;

  remove_map();
  uv_pprof__buf_init(&text);
  /* 120k lines for 120k places, ~5.8 MB. */
  for (i = 0; i < 120000; i++)
    uv_pprof__buf_printf(&text, "%" PRIxPTR " 8 f%zu_padding_padding_pad\n",
                         code + 16 * i, i);
  ASSERT(!text.oom);
  ASSERT_EQ(uv_pprof__buf_append(&text, "", 1), 0);
  ASSERT(text.len > (4u << 20) + (512u << 10));
  write_map("w", text.base);
  uv_pprof__buf_free(&text);
  settle();
  snprintf(line, sizeof(line), "f%d_padding_padding_pad", 119999);
  expect_jit(code + 16 * 119999 + 4, line, code + 16 * 119999);
  snprintf(line, sizeof(line), "f%d_padding_padding_pad", 120000 - 65536);
  expect_jit(code + 16 * (120000 - 65536) + 4, line,
             code + 16 * (120000 - 65536));
  expect_jit(code + 16 * (120000 - 65536 - 1) + 4, NULL, 0);
  expect_jit(code + 16 * 10 + 4, NULL, 0);
  uv_pprof__symbolizer_reset();

  /* A symlink to a good map: not followed. */
  remove_map();
  snprintf(other, sizeof(other), "%s/elsewhere.map", test_tmpdir());
  {
    FILE* f = fopen(other, "w");
    ASSERT(f != NULL);
    fprintf(f, "%" PRIxPTR " 10 linked\n", code);
    ASSERT_EQ(fclose(f), 0);
  }
  ASSERT_EQ(symlink(other, map_path), 0);
  settle();
  expect_jit(code + 4, NULL, 0);
  uv_pprof__symbolizer_reset();

  /* A FIFO: opened without waiting for a writer, and not read. */
  remove_map();
  ASSERT_EQ(mkfifo(map_path, 0600), 0);
  settle();
  expect_jit(code + 4, NULL, 0);
  uv_pprof__symbolizer_reset();
  remove_map();
  return 0;
}

/* Many overlapping lines appended in rounds against a model of the rule
 * (the latest line covering an address names it): a random test of the
 * merging, with a fixed seed. */
TEST_IMPL(jit_perf_map_model) {
  uintptr_t code = map_code();
  uintptr_t starts[2000];
  uintptr_t ends[2000];
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  uv_pprof__buf_t text;
  size_t nlines = 0;
  int round;

  remove_map();
  write_map("w", "");
  for (round = 0; round < 25; round++) {
    size_t add = 1 + (size_t)(next_random(&seed) % 60);
    size_t i;
    int probe;
    uv_pprof__buf_init(&text);
    for (i = 0; i < add && nlines < 2000; i++, nlines++) {
      starts[nlines] = code + next_random(&seed) % 0x4000;
      ends[nlines] = starts[nlines] + 1 + next_random(&seed) % 0x400;
      uv_pprof__buf_printf(&text, "%" PRIxPTR " %" PRIxPTR " line%zu\n",
                           starts[nlines], ends[nlines] - starts[nlines],
                           nlines);
    }
    ASSERT_EQ(uv_pprof__buf_append(&text, "", 1), 0);
    write_map("a", text.base);
    uv_pprof__buf_free(&text);
    settle();
    for (probe = 0; probe < 400; probe++) {
      uintptr_t addr = code + next_random(&seed) % 0x4500;
      char name[32];
      size_t k = nlines;
      while (k > 0 && !(starts[k - 1] <= addr && addr < ends[k - 1]))
        k--;
      if (k == 0) {
        expect_jit(addr, NULL, 0);
        continue;
      }
      snprintf(name, sizeof(name), "line%zu", k - 1);
      expect_jit(addr, name, starts[k - 1]);
    }
  }
  uv_pprof__symbolizer_reset();
  remove_map();
  return 0;
}

/* JIT frames in a profile: a Line whose Function is the map's name (or
 * "[jit]"), no mapping; in the text views, the name without an offset for
 * "[jit]". */
TEST_IMPL(jit_profile) {
  uintptr_t code = map_code();
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  Perftools__Profiles__Profile* p;
  const Perftools__Profiles__Location* l;
  uv_pprof__buf_t out;
  uintptr_t pcs[2];
  uint64_t ids[2];
  int64_t one = 1;
  char text[256];
  char want[256];

  remove_map();
  snprintf(text, sizeof(text), "%" PRIxPTR " 100 JS:*hot /app.js:1\n", code);
  write_map("w", text);
  settle();
  ASSERT(b != NULL);
  uv_pprof__builder_sample_type(b, "samples", "count");
  ids[0] = uv_pprof__builder_location(b, code + 0x10);
  ids[1] = uv_pprof__builder_location(b, code + 0x2000);
  uv_pprof__builder_sample(b, ids, 2, &one, NULL, 0);
  uv_pprof__buf_init(&out);
  ASSERT_EQ(uv_pprof__builder_encode(b, &out), 0);
  uv_pprof__builder_free(b);
  p = profile_decode(out.base, out.len);
  uv_pprof__buf_free(&out);
  l = profile_location(p, ids[0]);
  ASSERT_EQ(l->mapping_id, 0);
  ASSERT_EQ(l->n_line, 1);
  ASSERT_STR_EQ(
      profile_str(p, profile_function(p, l->line[0]->function_id)->name),
      "JS:*hot /app.js:1");
  l = profile_location(p, ids[1]);
  ASSERT_EQ(l->n_line, 1);
  ASSERT_STR_EQ(
      profile_str(p, profile_function(p, l->line[0]->function_id)->name),
      "[jit]");
  perftools__profiles__profile__free_unpacked(p, NULL);

  pcs[0] = code + 0x11; /* return addresses */
  pcs[1] = code + 0x2001;
  uv_pprof__buf_init(&out);
  ASSERT_EQ(uv_pprof__text_frames(pcs, 2, &out), 0);
  ASSERT_EQ(uv_pprof__buf_append(&out, "", 1), 0);
  snprintf(want, sizeof(want),
           "#\t0x%" PRIxPTR "\tJS:*hot /app.js:1+0x10\n#\t0x%" PRIxPTR
           "\t[jit]\n",
           code + 0x10, code + 0x2000);
  ASSERT_STR_EQ(out.base, want);
  uv_pprof__buf_free(&out);
  uv_pprof__symbolizer_reset();
  remove_map();
  return 0;
}
