/* Tests of symbolization on real binaries: the test binary's own functions
 * (sym-funcs.c, built with -g -O2: names, files, lines, offsets, an inlined
 * frame), libc (stripped: dynamic symbols), a library dlopen'ed after the
 * first lookup and a stripped copy of it, dlclose and reset; the builder's
 * Functions, Lines and mapping flags; the debug=1 frame lines against Go's
 * own text/tabwriter; and /debug/pprof/symbol with curl and with
 * `go tool pprof` symbolizing a deliberately unsymbolized profile through
 * it. */
#include <dlfcn.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "pprof.h"
#include "profile.pb-c.h"
#include "sym-funcs.h"
#include "task.h"

typedef Perftools__Profiles__Profile profile_t;

#define FUNCS_C UV_PPROF_SOURCE_DIR "/test/sym-funcs.c"
#define PLUGIN_C UV_PPROF_SOURCE_DIR "/test/sym-plugin.c"

/* The line of sym-funcs.c that carries "LINE:<tag>". */
static int source_line(const char* tag) {
  char want[64];
  char line[512];
  FILE* f = fopen(FUNCS_C, "r");
  int n = 0;

  ASSERT(f != NULL);
  snprintf(want, sizeof(want), "LINE:%s ", tag);
  while (fgets(line, sizeof(line), f) != NULL) {
    n++;
    if (strstr(line, want) != NULL) {
      fclose(f);
      return n;
    }
  }
  fclose(f);
  ASSERT(0 && "no such LINE tag");
  return 0;
}

static const char* base_name(const char* path) {
  const char* slash = strrchr(path, '/');

  return slash != NULL ? slash + 1 : path;
}

static size_t lookup(uintptr_t addr, uv_pprof__symbol_t* f) {
  return uv_pprof__symbolize(addr, f, UV_PPROF__MAX_INLINE);
}

/* One frame, named `name`, starting at `start`, in sym-funcs.c between the
 * lines tagged <tag>-begin and <tag>-end. */
static void expect_function(uintptr_t addr, const char* name, uintptr_t start,
                            const char* tag) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  char begin[32];
  char end[32];
  char exe[PATH_MAX];

  read_exe(exe, sizeof(exe));
  snprintf(begin, sizeof(begin), "%s-begin", tag);
  snprintf(end, sizeof(end), "%s-end", tag);
  ASSERT_EQ(lookup(addr, f), 1);
  ASSERT_STR_EQ(f[0].name, name);
  ASSERT_EQ(f[0].start, start);
  ASSERT_STR_EQ(f[0].file, FUNCS_C);
  ASSERT_GE(f[0].line, source_line(begin));
  ASSERT_LE(f[0].line, source_line(end));
  ASSERT_STR_EQ(f[0].module, exe);
}

/* ---- profiles ----------------------------------------------------------- */

/* Line `i` of location `loc` is function `name` (name == system_name) of
 * file `file` ("" for none) at `line` (-1: any). */
static void expect_line(const profile_t* p,
                        const Perftools__Profiles__Location* loc, size_t i,
                        const char* name, const char* file, int line) {
  const Perftools__Profiles__Function* fn;

  ASSERT_LT(i, loc->n_line);
  fn = profile_function(p, loc->line[i]->function_id);
  ASSERT_STR_EQ(profile_str(p, fn->name), name);
  ASSERT_STR_EQ(profile_str(p, fn->system_name), name);
  if (file != NULL)
    ASSERT_STR_EQ(profile_str(p, fn->filename), file);
  if (line >= 0)
    ASSERT_EQ(loc->line[i]->line, line);
}

/* A builder holding one sample whose stack is `addrs` (call sites). */
static uv_pprof__builder_t* build(const uintptr_t* addrs, size_t n,
                                  uint64_t* ids) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  int64_t one = 1;
  size_t i;

  ASSERT(b != NULL);
  uv_pprof__builder_period(b, "samples", "count", 1);
  uv_pprof__builder_sample_type(b, "samples", "count");
  for (i = 0; i < n; i++)
    ids[i] = uv_pprof__builder_location(b, addrs[i]);
  uv_pprof__builder_sample(b, ids, n, &one, NULL, 0);
  return b;
}

static profile_t* encode_decode(uv_pprof__builder_t* b) {
  uv_pprof__buf_t gz;
  profile_t* p;

  uv_pprof__buf_init(&gz);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__builder_free(b);
  p = profile_decode(gz.base, gz.len);
  uv_pprof__buf_free(&gz);
  return p;
}

/* `go tool pprof -top` of a profile holding one sample whose stack is
 * `addrs`, saved as `file` in the test's directory: *r its output. */
static void pprof_top(const uintptr_t* addrs, size_t n, const char* file,
                      run_result_t* r) {
  uv_pprof__builder_t* b;
  const char* args[3];
  uv_pprof__buf_t gz;
  char path[256];
  uint64_t ids[8];
  FILE* out;

  ASSERT_LE(n, UV_PPROF__ARRAY_SIZE(ids));
  b = build(addrs, n, ids);
  uv_pprof__buf_init(&gz);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__builder_free(b);
  snprintf(path, sizeof(path), "%s/%s", test_tmpdir(), file);
  out = fopen(path, "wb");
  ASSERT(out != NULL);
  ASSERT_EQ(fwrite(gz.base, 1, gz.len, out), gz.len);
  ASSERT_EQ(fclose(out), 0);
  uv_pprof__buf_free(&gz);
  args[0] = "-top";
  args[1] = path;
  args[2] = NULL;
  go_pprof(args, r);
}

static void expect_no_pprof_warnings(const run_result_t* r) {
  if (strstr(r->err, "Local symbolization failed") != NULL ||
      strstr(r->err, "Some binary filenames not available") != NULL) {
    fprintf(stderr, "go tool pprof warned:\n%s\n", r->err);
    ASSERT(0);
  }
}

/* ---- the symbolizer ----------------------------------------------------- */

TEST_IMPL(symbolize_functions) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uv_pprof__symbol_t again[UV_PPROF__MAX_INLINE];
  uintptr_t global = (uintptr_t)&sym_global;
  uintptr_t stat = sym_static_addr();

  /* Any address inside a function names it; offsets count from its entry. */
  expect_function(global, "sym_global", global, "global");
  expect_function(global + 5, "sym_global", global, "global");
  expect_function(stat, "sym_static", stat, "static");
  expect_function(stat + 3, "sym_static", stat, "static");

  /* Answers come from the cache the second time, the same strings. */
  ASSERT_EQ(lookup(global + 5, f), 1);
  ASSERT_EQ(lookup(global + 5, again), 1);
  ASSERT(f[0].name == again[0].name && f[0].file == again[0].file);

  /* Nothing is loaded at 0 or 0x10; max 0 asks for nothing. */
  ASSERT_EQ(lookup(0, f), 0);
  ASSERT_EQ(lookup(0x10, f), 0);
  ASSERT_EQ(uv_pprof__symbolize(global, f, 0), 0);
  uv_pprof__symbolizer_reset();
  return 0;
}

/* The runtime address of section `name` of the test binary and its size;
 * 0 when it has none. */
static uintptr_t own_section(const char* name, size_t* size) {
  char exe[PATH_MAX];
  uintptr_t addr = 0;
  Elf_Scn* scn = NULL;
  size_t shstrndx;
  Elf* elf;
  int fd;

  read_exe(exe, sizeof(exe));
  elf_version(EV_CURRENT);
  fd = open(exe, O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  elf = elf_begin(fd, ELF_C_READ, NULL);
  ASSERT(elf != NULL);
  ASSERT_EQ(elf_getshdrstrndx(elf, &shstrndx), 0);
  while ((scn = elf_nextscn(elf, scn)) != NULL) {
    GElf_Shdr shdr;
    const char* n;
    ASSERT(gelf_getshdr(scn, &shdr) != NULL);
    n = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (n != NULL && strcmp(n, name) == 0) {
      addr = (uintptr_t)shdr.sh_addr;
      *size = (size_t)shdr.sh_size;
    }
  }
  elf_end(elf);
  close(fd);
  return addr;
}

extern void _init(void);

/* f is the nameless frame of `module` at ELF address `at`. */
static void expect_nameless(const uv_pprof__symbol_t* f, const char* module,
                            uintptr_t at) {
  char want[256];

  snprintf(want, sizeof(want), "%s+0x%" PRIxPTR, module, at);
  ASSERT_STR_EQ(f->name, want);
  ASSERT(f->nameless && f->file == NULL && f->line == 0);
}

/* Symbol sizes are respected: the padding after a function has no name,
 * and crti's sizeless _init ends with its section (.init) rather than
 * covering the PLT after it (whose first entry, the resolver's, is no
 * stub). What has no name is called by its place in the file. */
TEST_IMPL(symbolize_sizes) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uintptr_t init = (uintptr_t)&_init;
  uintptr_t link_init;
  uintptr_t plt;
  uintptr_t bias;
  size_t size = 0;
  char exe[PATH_MAX];

  read_exe(exe, sizeof(exe));
  ASSERT_EQ(lookup(init, f), 1);
  ASSERT_STR_EQ(f[0].name, "_init");
  ASSERT(!f[0].nameless);
  link_init = own_section(".init", &size);
  ASSERT_NE(link_init, 0);
  plt = own_section(".plt", &size);
  ASSERT_NE(plt, 0);
  ASSERT_GT(size, 0);
  /* .init starts with _init: the same bias moves both sections. */
  bias = init - link_init;
  ASSERT_EQ(lookup(plt + bias + 2, f), 1);
  expect_nameless(&f[0], base_name(exe), plt + 2);
  /* sym_capture is a few bytes long, and what follows it up to sym_outer
   * (aligned to 64 bytes) is no function. */
  ASSERT_EQ(lookup((uintptr_t)&sym_capture, f), 1);
  ASSERT_STR_EQ(f[0].name, "sym_capture");
  ASSERT_EQ(lookup((uintptr_t)&sym_outer - 1, f), 1);
  expect_nameless(&f[0], base_name(exe), (uintptr_t)&sym_outer - 1 - bias);
  uv_pprof__symbolizer_reset();
  return 0;
}

/* A PLT stub, which no symbol names, is named after its target as objdump
 * and perf name it, over its whole length: a stub jumping through a
 * JUMP_SLOT (.plt or .plt.sec) and one through a GLOB_DAT slot
 * (.plt.got, the target's address being taken too). A profile with
 * samples in them then says its mapping has functions, and go tool pprof
 * shows them. */
TEST_IMPL(symbolize_plt) {
  static const char* const names[] = {"sym_plt_called@plt",
                                      "sym_plt_taken@plt"};
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  const Perftools__Profiles__Mapping* m;
  uv_pprof__builder_t* b;
  uintptr_t addrs[2];
  uint64_t ids[2];
  run_result_t r;
  profile_t* p;
  int i;

  ASSERT_NE(sym_plt_taken_addr(), 0);
  for (i = 0; i < 2; i++) {
    uintptr_t stub = sym_plt_stub(i);
    ASSERT_NE(stub, 0);
    ASSERT_EQ(lookup(stub, f), 1);
    ASSERT_STR_EQ(f[0].name, names[i]);
    ASSERT(!f[0].nameless && f[0].start == stub);
    ASSERT_EQ(lookup(stub + 7, f), 1);
    ASSERT_STR_EQ(f[0].name, names[i]);
    addrs[i] = stub + 3;
  }
  b = build(addrs, 2, ids);
  p = encode_decode(b);
  m = profile_mapping(p, profile_location(p, ids[0])->mapping_id);
  ASSERT(m != NULL && m == p->mapping[0]);
  ASSERT(m->has_functions && !m->has_line_numbers);
  perftools__profiles__profile__free_unpacked(p, NULL);
  pprof_top(addrs, 2, "plt.pb.gz", &r);
  ASSERT_CONTAINS(r.out, " sym_plt_called@plt\n");
  ASSERT_CONTAINS(r.out, " sym_plt_taken@plt\n");
  expect_no_pprof_warnings(&r);
  run_free(&r);
  uv_pprof__symbolizer_reset();
  return 0;
}

TEST_IMPL(symbolize_inlined) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uintptr_t outer = (uintptr_t)&sym_outer;
  uintptr_t pc = sym_outer();

  /* The call site inside the inlined sym_inlined: innermost frame first,
   * each at its own line, both offsets from the real function's entry. */
  ASSERT_EQ(lookup(pc - 1, f), 2);
  ASSERT_STR_EQ(f[0].name, "sym_inlined");
  ASSERT_STR_EQ(f[0].file, FUNCS_C);
  ASSERT_EQ(f[0].line, source_line("inlined"));
  ASSERT_EQ(f[0].start, outer);
  ASSERT_STR_EQ(f[1].name, "sym_outer");
  ASSERT_STR_EQ(f[1].file, FUNCS_C);
  ASSERT_EQ(f[1].line, source_line("outer"));
  ASSERT_EQ(f[1].start, outer);
  ASSERT_GT(pc - 1, outer);

  /* Room for one frame: the outermost, the real function. */
  ASSERT_EQ(uv_pprof__symbolize(pc - 1, f, 1), 1);
  ASSERT_STR_EQ(f[0].name, "sym_outer");
  ASSERT_EQ(f[0].line, source_line("outer"));
  uv_pprof__symbolizer_reset();
  return 0;
}

/* libc: stripped on Debian (named from .dynsym, or from libc6-dbg's symbol
 * table when that is installed); getpid is a weak alias of the global
 * __getpid, and the name without underscores wins. */
TEST_IMPL(symbolize_libc) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  void* fn = dlsym(RTLD_DEFAULT, "getpid");
  Dl_info info;
  size_t n;

  ASSERT(fn != NULL);
  ASSERT_NE(dladdr(fn, &info), 0);
  ASSERT_CONTAINS(info.dli_fname, "libc.so");
  n = lookup((uintptr_t)fn + 1, f);
  ASSERT_GE(n, 1);
  ASSERT_STR_EQ(f[n - 1].name, "getpid");
  ASSERT_EQ(f[n - 1].start, (uintptr_t)fn);
  ASSERT_STR_EQ(base_name(f[n - 1].module), base_name(info.dli_fname));
  uv_pprof__symbolizer_reset();
  return 0;
}

/* The module path of f as the kernel shows it, against `path`. */
static int same_file(const char* module, const char* path) {
  char a[PATH_MAX];
  char b[PATH_MAX];

  return realpath(module, a) != NULL && realpath(path, b) != NULL &&
         strcmp(a, b) == 0;
}

TEST_IMPL(symbolize_dlopen) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uintptr_t global = (uintptr_t)&sym_global;
  uintptr_t (*static_addr)(void);
  uintptr_t pg;
  uintptr_t ps;
  uintptr_t pa;
  const char* old_name;
  Dl_info info;
  void* h;
  void* hs;
  size_t n;

  /* The objects are scanned before the library exists. */
  expect_function(global, "sym_global", global, "global");
  ASSERT(dlopen(SYM_PLUGIN, RTLD_NOW | RTLD_NOLOAD) == NULL);

  h = dlopen(SYM_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT(h != NULL);
  pg = (uintptr_t)dlsym(h, "sym_plugin_global");
  pa = (uintptr_t)dlsym(h, "sym_plugin_weak");
  *(void**)&static_addr = dlsym(h, "sym_plugin_static_addr");
  ASSERT_NE(pg, 0);
  ASSERT_NE(pa, 0);
  ASSERT(static_addr != NULL);
  ps = static_addr();
  ASSERT_EQ(lookup(pg + 1, f), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_global");
  ASSERT_EQ(f[0].start, pg);
  ASSERT_STR_EQ(f[0].file, PLUGIN_C);
  ASSERT_GT(f[0].line, 0);
  ASSERT(same_file(f[0].module, SYM_PLUGIN));
  old_name = f[0].name;
  ASSERT_EQ(lookup(ps + 1, f), 1);
  ASSERT_STR_EQ(f[0].name, "plugin_static");
  /* Aliases: global or weak over local, then fewer underscores, then by
   * name. */
  ASSERT_EQ(lookup(pa + 1, f), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_alias");

  /* The stripped copy: exported functions from .dynsym, no file; nothing
   * names the static one, yet the object that holds it is known and names
   * it by its place in the file. */
  hs = dlopen(SYM_PLUGIN_STRIPPED, RTLD_NOW | RTLD_LOCAL);
  ASSERT(hs != NULL && hs != h);
  pg = (uintptr_t)dlsym(hs, "sym_plugin_global");
  pa = (uintptr_t)dlsym(hs, "sym_plugin_weak");
  *(void**)&static_addr = dlsym(hs, "sym_plugin_static_addr");
  ASSERT_NE(pg, 0);
  ASSERT_NE(pa, 0);
  ASSERT(static_addr != NULL);
  ps = static_addr();
  ASSERT_EQ(lookup(pg + 1, f), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_global");
  ASSERT(f[0].file == NULL);
  ASSERT(same_file(f[0].module, SYM_PLUGIN_STRIPPED));
  ASSERT_EQ(lookup(pa + 1, f), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_alias");
  ASSERT_EQ(lookup(ps + 1, f), 1);
  ASSERT(dladdr((void*)ps, &info) != 0);
  expect_nameless(&f[0], "libsym_plugin_stripped.so",
                  ps + 1 - (uintptr_t)info.dli_fbase);
  ASSERT(same_file(f[0].module, SYM_PLUGIN_STRIPPED));

  /* dlclose: the next lookup re-scans and forgets both; strings handed out
   * stay valid; the rest still resolves. */
  ASSERT_EQ(dlclose(hs), 0);
  ASSERT_EQ(dlclose(h), 0);
  ASSERT(dlopen(SYM_PLUGIN, RTLD_NOW | RTLD_NOLOAD) == NULL);
  n = lookup(pg + 1, f);
  ASSERT(n == 0 || !same_file(f[n - 1].module, SYM_PLUGIN_STRIPPED));
  ASSERT_STR_EQ(old_name, "sym_plugin_global");
  expect_function(global + 5, "sym_global", global, "global");

  /* Loaded again (perhaps elsewhere): found again. */
  h = dlopen(SYM_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT(h != NULL);
  pg = (uintptr_t)dlsym(h, "sym_plugin_global");
  ASSERT_EQ(lookup(pg + 1, f), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_global");
  ASSERT_EQ(dlclose(h), 0);
  uv_pprof__symbolizer_reset();
  return 0;
}

TEST_IMPL(symbolize_reset) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uintptr_t global = (uintptr_t)&sym_global;
  uintptr_t pc = sym_outer();
  char name[64];
  char file[PATH_MAX];
  int line;

  uv_pprof__symbolizer_reset(); /* before any use: nothing to free */
  ASSERT_EQ(lookup(global + 5, f), 1);
  snprintf(name, sizeof(name), "%s", f[0].name);
  snprintf(file, sizeof(file), "%s", f[0].file);
  line = f[0].line;
  uv_pprof__symbolizer_reset();
  ASSERT_EQ(lookup(global + 5, f), 1);
  ASSERT_STR_EQ(f[0].name, name);
  ASSERT_STR_EQ(f[0].file, file);
  ASSERT_EQ(f[0].line, line);
  ASSERT_EQ(lookup(pc - 1, f), 2);
  uv_pprof__symbolizer_reset();
  uv_pprof__symbolizer_reset();
  ASSERT_EQ(lookup(pc - 1, f), 2);
  ASSERT_STR_EQ(f[1].name, "sym_outer");
  uv_pprof__symbolizer_reset();
  return 0;
}

/* The builder at encode: one Function per (name, file), Lines innermost
 * first, unresolved addresses left bare, named frames as they were, and
 * each mapping's flags; `go tool pprof` then reads it with no warning. */
/* Locations: frames named with file and line (two for the inlined call),
 * nothing for an address outside every mapping, a named frame as written;
 * one Function per (name, file). */
static void check_symbolized_locations(const profile_t* p,
                                       const uintptr_t* addrs,
                                       const uint64_t* ids) {
  const Perftools__Profiles__Location* l;
  int outer_functions = 0;
  size_t i;

  l = profile_location(p, ids[0]);
  ASSERT_EQ(l->address, addrs[0]);
  ASSERT_EQ(l->n_line, 2);
  expect_line(p, l, 0, "sym_inlined", FUNCS_C, source_line("inlined"));
  expect_line(p, l, 1, "sym_outer", FUNCS_C, source_line("outer"));
  l = profile_location(p, ids[1]);
  ASSERT_EQ(l->n_line, 1);
  expect_line(p, l, 0, "sym_static", FUNCS_C, -1);
  ASSERT_GE(l->line[0]->line, source_line("static-begin"));
  ASSERT_LE(l->line[0]->line, source_line("static-end"));
  l = profile_location(p, ids[2]);
  expect_line(p, l, 0, "sym_global", FUNCS_C, -1);
  l = profile_location(p, ids[3]);
  ASSERT_GE(l->n_line, 1);
  expect_line(p, l, l->n_line - 1, "getpid", NULL, -1);
  l = profile_location(p, ids[4]);
  ASSERT_EQ(l->address, 0x10);
  ASSERT_EQ(l->mapping_id, 0);
  ASSERT_EQ(l->n_line, 0);
  l = profile_location(p, ids[5]);
  ASSERT_EQ(l->address, 0);
  ASSERT_EQ(l->mapping_id, 0);
  ASSERT_EQ(l->n_line, 1);
  expect_line(p, l, 0, "thread main", "", 0);

  for (i = 0; i < p->n_function; i++)
    outer_functions +=
        strcmp(profile_str(p, p->function[i]->name), "sym_outer") == 0;
  ASSERT_EQ(outer_functions, 1);
}

/* Mappings: the test binary's says everything is known, with inlining;
 * libc's, names; the others nothing. */
static void check_symbolized_mappings(const profile_t* p, const uint64_t* ids) {
  const Perftools__Profiles__Mapping* m;
  char exe[PATH_MAX];
  size_t i;

  read_exe(exe, sizeof(exe));
  m = profile_mapping(p, profile_location(p, ids[0])->mapping_id);
  ASSERT(m != NULL && m == p->mapping[0]);
  ASSERT_STR_EQ(profile_str(p, m->filename), exe);
  ASSERT(m->has_functions && m->has_filenames && m->has_line_numbers &&
         m->has_inline_frames);
  m = profile_mapping(p, profile_location(p, ids[3])->mapping_id);
  ASSERT(m != NULL && m != p->mapping[0]);
  ASSERT(m->has_functions);
  for (i = 0; i < p->n_mapping; i++) {
    m = p->mapping[i];
    if (m->id != profile_location(p, ids[0])->mapping_id &&
        m->id != profile_location(p, ids[3])->mapping_id)
      ASSERT(!m->has_functions && !m->has_filenames && !m->has_line_numbers &&
             !m->has_inline_frames);
  }
}

/* pprof shows the names, trusting them: it opens no binary. */
static void check_symbolized_pprof(const uintptr_t* addrs) {
  run_result_t r;

  pprof_top(addrs, 5, "symbolized.pb.gz", &r);
  ASSERT_CONTAINS(r.out, " sym_inlined (inline)\n");
  ASSERT_CONTAINS(r.out, " sym_static\n");
  ASSERT_CONTAINS(r.out, " getpid\n");
  expect_no_pprof_warnings(&r);
  run_free(&r);
}

TEST_IMPL(symbolize_builder) {
  void* getpid_fn = dlsym(RTLD_DEFAULT, "getpid");
  uintptr_t pc = sym_outer();
  uintptr_t addrs[5];
  uint64_t ids[6];
  uv_pprof__builder_t* b;
  profile_t* p;

  addrs[0] = pc - 1; /* two frames, inlined */
  addrs[1] = sym_static_addr() + 2;
  addrs[2] = (uintptr_t)&sym_global + 4;
  addrs[3] = (uintptr_t)getpid_fn + 1; /* libc: no file */
  addrs[4] = 0x10;                     /* nothing there */
  b = build(addrs, 5, ids);
  ids[5] = uv_pprof__builder_frame(b, "thread main", NULL);
  ASSERT_NE(ids[5], 0);
  p = encode_decode(b);
  check_symbolized_locations(p, addrs, ids);
  check_symbolized_mappings(p, ids);
  perftools__profiles__profile__free_unpacked(p, NULL);
  check_symbolized_pprof(addrs);
  uv_pprof__symbolizer_reset();
  return 0;
}

/* ---- debug=1 frame lines ------------------------------------------------ */

/* text with every run of tabs collapsed into one: the cells as a producer
 * hands them to Go's tabwriter. */
static void collapse_tabs(const char* text, uv_pprof__buf_t* out) {
  const char* p;

  for (p = text; *p != '\0'; p++)
    if (*p != '\t' || p[1] != '\t')
      uv_pprof__buf_append(out, p, 1);
}

/* The frame lines as runtime/pprof prints them: our cells through Go's own
 * text/tabwriter (test/fixtures/tabwriter.go). */
static void go_tabwriter(const char* text, run_result_t* r) {
  const char* dir = test_tmpdir();
  uv_pprof__buf_t cells;
  char in[256];
  char script[1024];
  FILE* f;

  uv_pprof__buf_init(&cells);
  collapse_tabs(text, &cells);
  snprintf(in, sizeof(in), "%s/cells.txt", dir);
  f = fopen(in, "wb");
  ASSERT(f != NULL);
  ASSERT_EQ(fwrite(cells.base, 1, cells.len, f), cells.len);
  ASSERT_EQ(fclose(f), 0);
  uv_pprof__buf_free(&cells);
  snprintf(script, sizeof(script), "HOME=%s GOCACHE=%s/gocache go run %s < %s",
           dir, dir, fixture_path("tabwriter.go"), in);
  run_sh(script, 120000, r);
  if (r->status != 0)
    fprintf(stderr, "go run tabwriter.go: %d\n%s\n", r->status, r->err);
  ASSERT_EQ(r->status, 0);
}

TEST_IMPL(symbolize_text_frames) {
  void* getpid_fn = dlsym(RTLD_DEFAULT, "getpid");
  /* A long name in the same run gives the short ones several tabs. */
  void* long_fn = dlsym(RTLD_DEFAULT, "pthread_attr_setinheritsched");
  uintptr_t outer = (uintptr_t)&sym_outer;
  uintptr_t stat = sym_static_addr();
  uintptr_t pc = sym_outer();
  uintptr_t pcs[6];
  uv_pprof__buf_t text;
  uv_pprof__count_record_t rec;
  run_result_t r;
  char want[512];

  /* Return addresses; a function entry is passed as entry + 1. */
  pcs[0] = pc;
  pcs[1] = stat + 1;
  pcs[2] = (uintptr_t)getpid_fn + 1;
  pcs[3] = 0x11;
  pcs[4] = (uintptr_t)&sym_global + 1;
  pcs[5] = (uintptr_t)long_fn + 1;
  ASSERT(getpid_fn != NULL && long_fn != NULL);
  uv_pprof__buf_init(&text);
  ASSERT_EQ(uv_pprof__text_frames(pcs, 6, &text), 0);
  ASSERT_EQ(uv_pprof__buf_append(&text, "", 1), 0);

  /* One line per frame, inlined ones first, call sites (pc - 1). */
  snprintf(want, sizeof(want), "#\t0x%" PRIxPTR "\tsym_inlined+0x%" PRIxPTR,
           pc - 1, pc - 1 - outer);
  ASSERT_STARTS_WITH(text.base, want);
  snprintf(want, sizeof(want), "\t%s:%d\n#\t0x%" PRIxPTR, FUNCS_C,
           source_line("inlined"), pc - 1);
  ASSERT_CONTAINS(text.base, want);
  snprintf(want, sizeof(want), "sym_outer+0x%" PRIxPTR "\t", pc - 1 - outer);
  ASSERT_CONTAINS(text.base, want);
  snprintf(want, sizeof(want), "%s:%d\n", FUNCS_C, source_line("outer"));
  ASSERT_CONTAINS(text.base, want);
  snprintf(want, sizeof(want), "#\t0x%" PRIxPTR "\tsym_static+0x0\t", stat);
  ASSERT_CONTAINS(text.base, want);
  snprintf(want, sizeof(want), "\tgetpid+0x0");
  ASSERT_CONTAINS(text.base, want);
  /* Nothing names 0x10: the address alone, which ends the tab run. */
  ASSERT_CONTAINS(text.base, "\n#\t0x10\n#\t0x");
  snprintf(want, sizeof(want), "\tsym_global+0x0\t\t\t");
  ASSERT_CONTAINS(text.base, want);
  ASSERT_CONTAINS(text.base, "\tpthread_attr_setinheritsched+0x0");

  /* Byte for byte what Go's tabwriter makes of the same cells. */
  go_tabwriter(text.base, &r);
  ASSERT_STR_EQ(r.out, text.base);
  run_free(&r);
  uv_pprof__buf_free(&text);

  /* The count profiles' text uses them under each record. */
  memset(&rec, 0, sizeof(rec));
  rec.count = 3;
  rec.pcs = pcs;
  rec.npcs = 2;
  uv_pprof__buf_init(&text);
  ASSERT_EQ(uv_pprof__text_count_profile("goroutine", &rec, 1, &text), 0);
  ASSERT_EQ(uv_pprof__buf_append(&text, "", 1), 0);
  snprintf(want, sizeof(want),
           "goroutine profile: total 3\n3 @ 0x%" PRIxPTR " 0x%" PRIxPTR
           "\n#\t0x%" PRIxPTR "\tsym_inlined+0x",
           pcs[0], pcs[1], pc - 1);
  ASSERT_STARTS_WITH(text.base, want);
  ASSERT_CONTAINS(text.base, "\tsym_static+0x0\t");
  ASSERT_STR_EQ(text.base + text.len - 3, "\n\n");
  uv_pprof__buf_free(&text);
  uv_pprof__symbolizer_reset();
  return 0;
}

/* C++ names for the text views, shortened as go tool pprof shows them by
 * default. The demangler is the process's C++ runtime: this C test loads
 * libstdc++ as a C++ host (node) has it. Expected forms: c++filt's, minus
 * parameters, template arguments, return types and clone suffixes. */
TEST_IMPL(symbolize_demangle) {
  static const char* const cases[][2] = {
      {"_ZN4node11Environment9RunTimersEP10uv_timer_s",
       "node::Environment::RunTimers"},
      {"_ZN4node9inspector12_GLOBAL__N_126StartIoThreadAsyncCallbackEP10uv_"
       "async_s",
       "node::inspector::(anonymous namespace)::StartIoThreadAsyncCallback"},
      {"_ZZN4node15LibuvStreamWrap9ReadStartEvENUlP11uv_handle_smP8uv_buf_tE_"
       "4_FUNES2_mS4_",
       "node::LibuvStreamWrap::ReadStart::{lambda#1}::_FUN"},
      {"_ZNKSt6vectorIiSaIiEE4sizeEv", "std::vector::size"},
      {"_ZNKSt8functionIFvvEEclEv", "std::function::operator()"},
      {"_ZltRK1AS1_", "operator<"},
      {"_ZlsRSoRK1A", "operator<<"},
      {"_Z3fooi.cold", "foo"},
      {"_Z3barIiEvT_", "bar"},
      {"_ZNKR1A1fEv", "A::f"},
      {"_ZN1AcviEv", "A::operator int"},
  };
  size_t i;

  /* Names that are not mangled, or not validly, stay as they are. */
  ASSERT(uv_pprof__demangle("main") == NULL);
  ASSERT(uv_pprof__demangle(NULL) == NULL);
  ASSERT(dlopen("libstdc++.so.6", RTLD_NOW | RTLD_GLOBAL) != NULL);
  ASSERT(uv_pprof__demangle("_Zx") == NULL);
  ASSERT(uv_pprof__demangle("uv_run") == NULL);
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(cases); i++) {
    char* got = uv_pprof__demangle(cases[i][0]);
    if (got == NULL || strcmp(got, cases[i][1]) != 0)
      fprintf(stderr, "%s: got %s, expected %s\n", cases[i][0],
              got != NULL ? got : "NULL", cases[i][1]);
    ASSERT(got != NULL);
    ASSERT_STR_EQ(got, cases[i][1]);
    free(got);
  }
  /* What the text views call: cached, C names passed through. */
  {
    const char* c_name = "uv_run";
    const char* shown = uv_pprof__symbol_readable(cases[0][0]);
    ASSERT_STR_EQ(shown, cases[0][1]);
    ASSERT(uv_pprof__symbol_readable(cases[0][0]) == shown);
    ASSERT(uv_pprof__symbol_readable(c_name) == c_name);
    ASSERT(uv_pprof__symbol_readable("_Zx") != NULL);
    ASSERT_STR_EQ(uv_pprof__symbol_readable("_Zx"), "_Zx");
  }
  uv_pprof__symbolizer_reset();
  return 0;
}

/* ---- /debug/pprof/symbol ------------------------------------------------ */

#define TEXT "text/plain; charset=utf-8"

static void expect_symbol_answer(const run_result_t* r, const char* text) {
  size_t len;
  const char* body = http_body(r, &len);

  ASSERT_EQ(http_status(r), 200);
  ASSERT_STR_EQ(http_header(r, "Content-Type"), TEXT);
  ASSERT_STR_EQ(http_header(r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(r, "X-Go-Pprof") == NULL);
  if (len != strlen(text) || memcmp(body, text, len) != 0) {
    fprintf(stderr, "body:\n%.*s\nexpected:\n%s\n", (int)len, body, text);
    ASSERT(0);
  }
}

TEST_IMPL(symbol_get) {
  uintptr_t global = (uintptr_t)&sym_global;
  uintptr_t stat = sym_static_addr();
  test_host_t* h = host_start(NULL);
  run_result_t r;
  char path[512];
  char want[512];

  curl_get(h, "/debug/pprof/symbol", NULL, &r);
  expect_symbol_answer(&r, "num_symbols: 1\n");
  run_free(&r);

  /* Garbage, zero and an address nothing names give no line; a decimal or
   * octal address is echoed in hex. */
  snprintf(path, sizeof(path),
           "/debug/pprof/symbol?0x%" PRIxPTR "+garbage+0+0x10+%" PRIuPTR
           "+0%" PRIoPTR "+-1+0x%" PRIxPTR "zz+",
           global + 1, stat + 2, global, global);
  curl_get(h, path, NULL, &r);
  snprintf(want, sizeof(want),
           "num_symbols: 1\n0x%" PRIxPTR " sym_global\n0x%" PRIxPTR
           " sym_static\n0x%" PRIxPTR " sym_global\n",
           global + 1, stat + 2, global);
  expect_symbol_answer(&r, want);
  run_free(&r);

  /* Go serves exactly that path; "symbol/" is an unknown profile. */
  curl_get(h, "/debug/pprof/symbol/", NULL, &r);
  ASSERT_EQ(http_status(&r), 404);
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(symbol_post) {
  uintptr_t global = (uintptr_t)&sym_global;
  uintptr_t outer = (uintptr_t)&sym_outer;
  test_host_t* h = host_start(NULL);
  const char* post[5] = {"--data-binary", NULL, "-H",
                         "Content-Type: application/octet-stream", NULL};
  const char* empty[3] = {"-X", "POST", NULL};
  run_result_t r;
  char body[256];
  char want[512];

  /* What go tool pprof sends: one mapping's addresses joined by '+'. The
   * query is ignored on a POST. */
  snprintf(body, sizeof(body), "0x%" PRIxPTR "+0x%" PRIxPTR "+0x10", outer + 1,
           global + 3);
  post[1] = body;
  curl_get(h, "/debug/pprof/symbol?0x1234", post, &r);
  snprintf(want, sizeof(want),
           "num_symbols: 1\n0x%" PRIxPTR " sym_outer\n0x%" PRIxPTR
           " sym_global\n",
           outer + 1, global + 3);
  expect_symbol_answer(&r, want);
  run_free(&r);

  snprintf(want, sizeof(want), "/debug/pprof/symbol?0x%" PRIxPTR, outer);
  curl_get(h, want, empty, &r);
  expect_symbol_answer(&r, "num_symbols: 1\n");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* A tiny HTTP server standing in for a program whose profiles are not
 * symbolized: it serves one such profile at /debug/pprof/unsymbolized and
 * hands /debug/pprof/symbol requests to uv_pprof's server unchanged (pprof
 * asks the host that served the profile), keeping what was posted. */
typedef struct {
  int fd;
  int port;
  int target_port;
  const uv_pprof__buf_t* profile;
  uv_pprof__buf_t posted; /* the bodies, one per line */
  atomic_int posts;
  atomic_int stop;
  uv_thread_t thread;
} relay_t;

/* Reads one request: its head (NUL-terminated) and its body. */
static void read_request(int fd, uv_pprof__buf_t* req, size_t* head_len) {
  char chunk[4096];
  const char* cl;
  size_t body_len = 0;

  for (;;) {
    char* end;
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    ASSERT_GT(n, 0);
    ASSERT_EQ(uv_pprof__buf_append(req, chunk, (size_t)n), 0);
    end = memmem(req->base, req->len, "\r\n\r\n", 4);
    if (end == NULL)
      continue;
    *head_len = (size_t)(end - req->base) + 4;
    break;
  }
  ASSERT_EQ(uv_pprof__buf_append(req, "", 1), 0);
  req->len--;
  cl = strcasestr(req->base, "\r\nContent-Length:");
  if (cl != NULL && cl < req->base + *head_len)
    body_len = strtoul(cl + 17, NULL, 10);
  while (req->len < *head_len + body_len) {
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    ASSERT_GT(n, 0);
    ASSERT_EQ(uv_pprof__buf_append(req, chunk, (size_t)n), 0);
  }
}

static void relay_one(relay_t* rl, int fd) {
  static const char symbol[] = "POST /debug/pprof/symbol ";
  static const char unsym[] = "GET /debug/pprof/unsymbolized ";
  uv_pprof__buf_t req;
  uv_pprof__buf_t res;
  size_t head_len = 0;

  uv_pprof__buf_init(&req);
  uv_pprof__buf_init(&res);
  read_request(fd, &req, &head_len);
  if (strncmp(req.base, symbol, strlen(symbol)) == 0) {
    size_t len = req.len - head_len;
    size_t answer_len;
    char* answer;
    int up = tcp_connect(rl->target_port);
    uv_pprof__buf_printf(&res,
                         "POST /debug/pprof/symbol HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n",
                         len);
    uv_pprof__buf_append(&res, req.base + head_len, len);
    ASSERT_EQ(tcp_send(up, res.base, res.len), 0);
    answer = tcp_read_all(up, 10000, &answer_len);
    close(up);
    ASSERT_EQ(tcp_send(fd, answer, answer_len), 0);
    free(answer);
    uv_pprof__buf_append(&rl->posted, req.base + head_len, len);
    uv_pprof__buf_append(&rl->posted, "\n", 1);
    atomic_fetch_add(&rl->posts, 1);
  } else if (strncmp(req.base, unsym, strlen(unsym)) == 0) {
    uv_pprof__buf_printf(&res,
                         "HTTP/1.1 200 OK\r\n"
                         "Content-Type: application/octet-stream\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         rl->profile->len);
    uv_pprof__buf_append(&res, rl->profile->base, rl->profile->len);
    ASSERT_EQ(tcp_send(fd, res.base, res.len), 0);
  } else {
    static const char nf[] =
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n";
    ASSERT_EQ(tcp_send(fd, nf, sizeof(nf) - 1), 0);
  }
  uv_pprof__buf_free(&req);
  uv_pprof__buf_free(&res);
}

static void relay_main(void* arg) {
  relay_t* rl = arg;

  while (!atomic_load(&rl->stop)) {
    struct pollfd pfd;
    int fd;
    pfd.fd = rl->fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, 50) <= 0)
      continue;
    fd = accept(rl->fd, NULL, NULL);
    if (fd < 0)
      continue;
    relay_one(rl, fd);
    close(fd);
  }
}

static void relay_start(relay_t* rl, int target_port,
                        const uv_pprof__buf_t* profile) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int one = 1;

  memset(rl, 0, sizeof(*rl));
  uv_pprof__buf_init(&rl->posted);
  rl->target_port = target_port;
  rl->profile = profile;
  rl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(rl->fd, 0);
  setsockopt(rl->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(rl->fd, (struct sockaddr*)&sa, sizeof(sa)), 0);
  ASSERT_EQ(listen(rl->fd, 16), 0);
  ASSERT_EQ(getsockname(rl->fd, (struct sockaddr*)&sa, &len), 0);
  rl->port = ntohs(sa.sin_port);
  ASSERT_EQ(uv_thread_create(&rl->thread, relay_main, rl), 0);
}

/* After this, what the relay kept is the caller's to read. */
static void relay_stop_thread(relay_t* rl) {
  atomic_store(&rl->stop, 1);
  ASSERT_EQ(uv_thread_join(&rl->thread), 0);
  close(rl->fd);
}

static void relay_free(relay_t* rl) {
  uv_pprof__buf_free(&rl->posted);
}

/* The builder's profile of `addrs` with every Function and Line taken out
 * and no mapping claiming symbolization: what a producer that leaves
 * symbolization to pprof emits. */
static void unsymbolized_profile(const uintptr_t* addrs, size_t n,
                                 uv_pprof__buf_t* gz) {
  uint64_t ids[8];
  profile_t* p;
  profile_t copy;
  Perftools__Profiles__Location* locs;
  Perftools__Profiles__Location** loc_ptrs;
  Perftools__Profiles__Mapping* maps;
  Perftools__Profiles__Mapping** map_ptrs;
  uint8_t* packed;
  size_t size;
  size_t i;

  ASSERT_LE(n, 8);
  p = encode_decode(build(addrs, n, ids));
  copy = *p;
  locs = calloc(p->n_location, sizeof(*locs));
  loc_ptrs = calloc(p->n_location, sizeof(*loc_ptrs));
  maps = calloc(p->n_mapping, sizeof(*maps));
  map_ptrs = calloc(p->n_mapping, sizeof(*map_ptrs));
  ASSERT(locs != NULL && loc_ptrs != NULL && maps != NULL && map_ptrs != NULL);
  for (i = 0; i < p->n_location; i++) {
    locs[i] = *p->location[i];
    locs[i].n_line = 0;
    locs[i].line = NULL;
    loc_ptrs[i] = &locs[i];
  }
  for (i = 0; i < p->n_mapping; i++) {
    maps[i] = *p->mapping[i];
    maps[i].has_functions = 0;
    maps[i].has_filenames = 0;
    maps[i].has_line_numbers = 0;
    maps[i].has_inline_frames = 0;
    map_ptrs[i] = &maps[i];
  }
  copy.location = loc_ptrs;
  copy.mapping = map_ptrs;
  copy.n_function = 0;
  copy.function = NULL;
  size = perftools__profiles__profile__get_packed_size(&copy);
  packed = malloc(size);
  ASSERT(packed != NULL);
  perftools__profiles__profile__pack(&copy, packed);
  ASSERT_EQ(uv_pprof__gzip(packed, size, gz), 0);
  free(packed);
  free(locs);
  free(loc_ptrs);
  free(maps);
  free(map_ptrs);
  perftools__profiles__profile__free_unpacked(p, NULL);
}

/* `go tool pprof` fetches an unsymbolized profile from a host whose
 * /debug/pprof/symbol is ours, POSTs the addresses of the test binary's
 * mapping there (one POST) and prints the names we answer. The profile is
 * made before the host starts: the symbolizer is the worker's alone then. */
TEST_IMPL(symbol_pprof_remote) {
  uintptr_t addrs[3];
  uv_pprof__buf_t gz;
  relay_t relay;
  test_host_t* h;
  run_result_t r;
  char url[128];
  char want[64];
  const char* args[4];
  size_t i;

  addrs[0] = (uintptr_t)&sym_global + 4;
  addrs[1] = sym_static_addr() + 2;
  addrs[2] = sym_outer() - 1;
  uv_pprof__buf_init(&gz);
  unsymbolized_profile(addrs, 3, &gz);
  h = host_start(NULL);
  relay_start(&relay, host_port(h), &gz);

  snprintf(url, sizeof(url), "http://127.0.0.1:%d/debug/pprof/unsymbolized",
           relay.port);
  args[0] = "-symbolize=remote";
  args[1] = "-top";
  args[2] = url;
  args[3] = NULL;
  go_pprof(args, &r);
  ASSERT_CONTAINS(r.out, " sym_global\n");
  ASSERT_CONTAINS(r.out, " sym_static\n");
  ASSERT_CONTAINS(r.out, " sym_outer\n");
  run_free(&r);
  /* One POST, for the test binary's mapping, with every address. */
  relay_stop_thread(&relay);
  ASSERT_EQ(atomic_load(&relay.posts), 1);
  ASSERT_EQ(uv_pprof__buf_append(&relay.posted, "", 1), 0);
  for (i = 0; i < 3; i++) {
    snprintf(want, sizeof(want), "0x%" PRIxPTR, addrs[i]);
    ASSERT_CONTAINS(relay.posted.base, want);
  }
  relay_free(&relay);
  host_stop(h);
  uv_pprof__buf_free(&gz);
  return 0;
}

/* Every proto the server lists: its main executable's mapping claims
 * has_functions whenever it holds address locations, and `go tool pprof
 * -top` prints no local-symbolization warning. */
TEST_IMPL(symbol_served_protos) {
  test_host_t* h = host_start(NULL);
  run_result_t r;
  const char* body;
  const char* p;
  size_t len;
  size_t nread = 0;
  char names[32][32];
  size_t nnames = 0;
  size_t i;

  curl_get(h, "/debug/pprof/", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  body = http_body(&r, &len);
  for (p = body; (p = strstr(p, "<a href='")) != NULL && nnames < 32;) {
    const char* q = strstr(p, "?debug=1'");
    p += 9;
    ASSERT(q != NULL);
    ASSERT_LT(q - p, 32);
    snprintf(names[nnames++], sizeof(names[0]), "%.*s", (int)(q - p), p);
  }
  run_free(&r);
  for (i = 0; i < nnames; i++) {
    char path[96];
    char url[192];
    const char* args[3];
    profile_t* prof;
    size_t j;
    int addressed = 0;

    if (strcmp(names[i], "cmdline") == 0 || strcmp(names[i], "trace") == 0)
      continue;
    snprintf(path, sizeof(path), "/debug/pprof/%.31s%s", names[i],
             strcmp(names[i], "profile") == 0 ? "?seconds=1" : "");
    curl_get(h, path, NULL, &r);
    ASSERT_EQ(http_status(&r), 200);
    body = http_body(&r, &len);
    prof = profile_decode(body, len);
    for (j = 0; j < prof->n_location; j++)
      addressed +=
          prof->location[j]->address != 0 && prof->location[j]->mapping_id == 1;
    if (addressed != 0) {
      ASSERT_GT(prof->n_mapping, 0);
      ASSERT(prof->mapping[0]->has_functions);
    }
    perftools__profiles__profile__free_unpacked(prof, NULL);
    run_free(&r);

    snprintf(url, sizeof(url), "%s%s", host_base(h), path);
    args[0] = "-top";
    args[1] = url;
    args[2] = NULL;
    go_pprof(args, &r);
    expect_no_pprof_warnings(&r);
    run_free(&r);
    nread++;
  }
  ASSERT_GE(nread, 3);
  host_stop(h);
  return 0;
}
