/* Tests of names for stripped code: separate debug files found beside the
 * module, in its .debug/, under a root + its directory and in a root's
 * .build-id/ tree, each believed only when its build ID (or CRC) matches;
 * MiniDebugInfo; a module replaced or truncated on disk; no debuginfod
 * connection whatever DEBUGINFOD_URLS says; and a stripped program served
 * over HTTP, named "<module>+0x<offset>" without its debug file, by its
 * functions with it, and by go tool pprof given the unstripped binary. The
 * copies are made by the test with objcopy, nm and xz. */
#include <dlfcn.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "pprof.h"
#include "profile.pb-c.h"
#include "task.h"

typedef Perftools__Profiles__Profile profile_t;

#define PLUGIN_C UV_PPROF_SOURCE_DIR "/test/sym-plugin.c"
#define SYMHOST_C UV_PPROF_SOURCE_DIR "/test/symhost.c"

/* Runs a shell script in dir; asserts it succeeds. */
static void sh(const char* dir, const char* fmt, ...) {
  char script[8192];
  char full[8448];
  run_result_t r;
  va_list ap;

  va_start(ap, fmt);
  ASSERT((size_t)vsnprintf(script, sizeof(script), fmt, ap) < sizeof(script));
  va_end(ap);
  snprintf(full, sizeof(full), "set -e; cd '%s'; %s", dir, script);
  run_sh(full, 60000, &r);
  if (r.status != 0)
    fprintf(stderr, "%s\n-> %d\n%s%s\n", full, r.status, r.out, r.err);
  ASSERT_EQ(r.status, 0);
  run_free(&r);
}

/* The value of symbol `name` in the ELF file at path (nm's answer). */
static uintptr_t elf_symbol(const char* path, const char* name) {
  char script[1024];
  run_result_t r;
  uintptr_t v;

  snprintf(script, sizeof(script), "nm '%s' | awk '$3 == \"%s\" { print $1 }'",
           path, name);
  run_sh(script, 60000, &r);
  ASSERT_EQ(r.status, 0);
  v = (uintptr_t)strtoull(r.out, NULL, 16);
  ASSERT(v != 0);
  run_free(&r);
  return v;
}

/* The GNU build ID of the ELF file at path, as lowercase hex. */
static void elf_build_id(const char* path, char* hex, size_t size) {
  const unsigned char* id;
  ssize_t n;
  ssize_t i;
  Elf* elf;
  int fd;

  elf_version(EV_CURRENT);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  ASSERT(fd >= 0);
  elf = elf_begin(fd, ELF_C_READ, NULL);
  ASSERT(elf != NULL);
  n = dwelf_elf_gnu_build_id(elf, (const void**)&id);
  ASSERT(n > 0 && (size_t)(2 * n) < size);
  for (i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", id[i]);
  elf_end(elf);
  close(fd);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* ---- a copy of sym-plugin.c's library, loaded ---------------------------- */

typedef struct {
  void* handle;
  uintptr_t global; /* sym_plugin_global: in .dynsym */
  uintptr_t stat;   /* plugin_static: in .symtab only */
  uintptr_t base;   /* its load address (ELF addresses start at 0) */
} loaded_t;

static void load(const char* path, loaded_t* l) {
  uintptr_t (*static_addr)(void);
  Dl_info info;

  l->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (l->handle == NULL)
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
  ASSERT(l->handle != NULL);
  l->global = (uintptr_t)dlsym(l->handle, "sym_plugin_global");
  *(void**)&static_addr = dlsym(l->handle, "sym_plugin_static_addr");
  ASSERT(l->global != 0 && static_addr != NULL);
  l->stat = static_addr();
  ASSERT(dladdr((void*)l->stat, &info) != 0);
  l->base = (uintptr_t)info.dli_fbase;
}

/* addr is named `name` with a file and line from sym-plugin.c. */
static void expect_named(uintptr_t addr, const char* name) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  size_t n = uv_pprof__symbolize(addr, f, UV_PPROF__MAX_INLINE);

  ASSERT_EQ(n, 1);
  ASSERT_STR_EQ(f[0].name, name);
  ASSERT(!f[0].nameless);
  ASSERT_STR_EQ(f[0].file, PLUGIN_C);
  ASSERT(f[0].line > 0);
}

/* addr, at ELF address `at` of the module whose base name is `module`,
 * has no name but its place. */
static void expect_nameless(uintptr_t addr, const char* module, uintptr_t at) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  char want[256];

  ASSERT_EQ(uv_pprof__symbolize(addr, f, UV_PPROF__MAX_INLINE), 1);
  snprintf(want, sizeof(want), "%s+0x%" PRIxPTR, module, at);
  ASSERT_STR_EQ(f[0].name, want);
  ASSERT(f[0].nameless && f[0].file == NULL);
}

/* The tree of a test: the library as built (P), its other build (O: the
 * same code, other names), debug files of both, and stripped copies of P
 * with a debug link to lib.debug. */
static const char* make_tree(void) {
  const char* dir = test_tmpdir();

  sh(dir,
     "cp '%s' P.so; cp '%s' O.so\n"
     "objcopy --only-keep-debug P.so lib.debug\n"
     "objcopy --only-keep-debug O.so other.debug\n"
     "objcopy --strip-all --add-gnu-debuglink=lib.debug P.so linked.so\n"
     "objcopy --strip-all P.so unlinked.so\n"
     "mkdir root",
     SYM_PLUGIN, SYM_PLUGIN_OTHER);
  ASSERT_EQ(uv_pprof__debuginfo_roots(NULL), 0);
  return dir;
}

/* ---- tests --------------------------------------------------------------- */

/* By .gnu_debuglink: beside the module, in its .debug/, under a root + its
 * directory; nowhere: its place; a debug file of another build at every
 * one of those places, or a truncated one: ignored. */
TEST_IMPL(debuginfo_debuglink) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  const char* dir = make_tree();
  uintptr_t at = elf_symbol(SYM_PLUGIN, "plugin_static") + 1;
  char path[PATH_MAX];
  char root[PATH_MAX];
  loaded_t l;

  snprintf(root, sizeof(root), "%s/root", dir);
  ASSERT_EQ(uv_pprof__debuginfo_roots(root), 0);
  sh(dir,
     "for d in none beside dotdebug rooted wrong truncated half; do\n"
     "  mkdir $d; cp linked.so $d/lib.so\n"
     "done\n"
     "cp lib.debug beside/\n"
     "mkdir dotdebug/.debug; cp lib.debug dotdebug/.debug/\n"
     "mkdir -p \"root$PWD/rooted\"; cp lib.debug \"root$PWD/rooted/\"\n"
     "cp other.debug wrong/lib.debug\n"
     "mkdir wrong/.debug; cp other.debug wrong/.debug/lib.debug\n"
     "mkdir -p \"root$PWD/wrong\"; cp other.debug "
     "\"root$PWD/wrong/lib.debug\"\n"
     "head -c 1000 lib.debug > truncated/lib.debug\n"
     "head -c $(( $(stat -c %%s lib.debug) / 2 )) lib.debug > half/lib.debug");

  snprintf(path, sizeof(path), "%s/none/lib.so", dir);
  load(path, &l);
  expect_nameless(l.stat + 1, "lib.so", at);
  /* .dynsym still names what it holds, without a file. */
  ASSERT_EQ(uv_pprof__symbolize(l.global + 1, f, UV_PPROF__MAX_INLINE), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_global");
  ASSERT(!f[0].nameless && f[0].file == NULL);

  snprintf(path, sizeof(path), "%s/beside/lib.so", dir);
  load(path, &l);
  expect_named(l.stat + 1, "plugin_static");
  expect_named(l.global + 1, "sym_plugin_global");

  snprintf(path, sizeof(path), "%s/dotdebug/lib.so", dir);
  load(path, &l);
  expect_named(l.stat + 1, "plugin_static");

  snprintf(path, sizeof(path), "%s/rooted/lib.so", dir);
  load(path, &l);
  expect_named(l.stat + 1, "plugin_static");

  /* other.debug would say other_static here. */
  snprintf(path, sizeof(path), "%s/wrong/lib.so", dir);
  load(path, &l);
  expect_nameless(l.stat + 1, "lib.so", at);

  snprintf(path, sizeof(path), "%s/truncated/lib.so", dir);
  load(path, &l);
  expect_nameless(l.stat + 1, "lib.so", at);
  snprintf(path, sizeof(path), "%s/half/lib.so", dir);
  load(path, &l);
  expect_nameless(l.stat + 1, "lib.so", at);

  uv_pprof__symbolizer_reset();
  ASSERT_EQ(uv_pprof__debuginfo_roots(NULL), 0);
  return 0;
}

/* By build ID, under a root's .build-id/: found; another build's debug
 * file put there under this build's ID: ignored. */
TEST_IMPL(debuginfo_build_id) {
  const char* dir = make_tree();
  uintptr_t at = elf_symbol(SYM_PLUGIN, "plugin_static") + 1;
  char id[2 * UV_PPROF__MAX_BUILD_ID + 1];
  char path[PATH_MAX];
  char root[PATH_MAX];
  loaded_t l;

  snprintf(path, sizeof(path), "%s/P.so", dir);
  elf_build_id(path, id, sizeof(id));
  sh(dir,
     "mkdir good bad; cp unlinked.so good/lib.so\n"
     "mkdir -p good-root/.build-id/%.2s bad-root/.build-id/%.2s\n"
     "cp lib.debug good-root/.build-id/%.2s/%s.debug\n"
     "cp other.debug bad-root/.build-id/%.2s/%s.debug\n"
     /* Another copy, a file of its own to the loader. */
     "cp unlinked.so bad/lib.so",
     id, id, id, id + 2, id, id + 2);

  snprintf(root, sizeof(root), "%s/bad-root", dir);
  ASSERT_EQ(uv_pprof__debuginfo_roots(root), 0);
  snprintf(path, sizeof(path), "%s/bad/lib.so", dir);
  load(path, &l);
  expect_nameless(l.stat + 1, "lib.so", at);
  uv_pprof__symbolizer_reset();

  /* Several roots; the second has it. */
  snprintf(root, sizeof(root), "%s/root:%s/good-root", dir, dir);
  ASSERT_EQ(uv_pprof__debuginfo_roots(root), 0);
  snprintf(path, sizeof(path), "%s/good/lib.so", dir);
  load(path, &l);
  expect_named(l.stat + 1, "plugin_static");
  uv_pprof__symbolizer_reset();
  ASSERT_EQ(uv_pprof__debuginfo_roots(NULL), 0);
  return 0;
}

/* A module without a build ID: its debug link's CRC decides. One byte more
 * and the file, though it would name everything right, is not believed. */
TEST_IMPL(debuginfo_crc) {
  const char* dir = test_tmpdir();
  uintptr_t at = elf_symbol(SYM_PLUGIN_NOID, "plugin_static") + 1;
  char path[PATH_MAX];
  loaded_t l;

  ASSERT_EQ(uv_pprof__debuginfo_roots(NULL), 0);
  sh(dir,
     "cp '%s' N.so\n"
     "! readelf -n N.so | grep -q 'Build ID'\n"
     "objcopy --only-keep-debug N.so noid.debug\n"
     "objcopy --strip-all --add-gnu-debuglink=noid.debug N.so stripped.so\n"
     "mkdir good bad; cp stripped.so good/lib.so; cp stripped.so bad/lib.so\n"
     "cp noid.debug good/; cp noid.debug bad/; printf x >> bad/noid.debug",
     SYM_PLUGIN_NOID);

  snprintf(path, sizeof(path), "%s/good/lib.so", dir);
  load(path, &l);
  expect_named(l.stat + 1, "plugin_static");
  snprintf(path, sizeof(path), "%s/bad/lib.so", dir);
  load(path, &l);
  expect_nameless(l.stat + 1, "lib.so", at);
  uv_pprof__symbolizer_reset();
  return 0;
}

/* MiniDebugInfo as Fedora's find-debuginfo makes it: the symbols .dynsym
 * lacks, xz-compressed into .gnu_debugdata. Names, no files. */
TEST_IMPL(debuginfo_minidebuginfo) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  const char* dir = make_tree();
  char path[PATH_MAX];
  char root[PATH_MAX];
  loaded_t l;

  snprintf(root, sizeof(root), "%s/root", dir);
  ASSERT_EQ(uv_pprof__debuginfo_roots(root), 0);
  sh(dir,
     "nm -D P.so --format=posix --defined-only | awk '{ print $1 }' | sort "
     "> dynsyms\n"
     "nm P.so --format=posix --defined-only | "
     "awk '{ if ($2 == \"T\" || $2 == \"t\" || $2 == \"D\") print $1 }' | "
     "sort > funcsyms\n"
     "comm -13 dynsyms funcsyms > keep_symbols\n"
     "grep -qx plugin_static keep_symbols\n"
     "objcopy -S --remove-section .gdb_index --remove-section .comment "
     "--keep-symbols=keep_symbols lib.debug mini_debuginfo\n"
     "xz -f mini_debuginfo\n"
     "mkdir mini; cp unlinked.so mini/lib.so\n"
     "objcopy --add-section .gnu_debugdata=mini_debuginfo.xz mini/lib.so\n"
     "! readelf -S mini/lib.so | grep -q '\\.symtab'");

  snprintf(path, sizeof(path), "%s/mini/lib.so", dir);
  load(path, &l);
  ASSERT_EQ(uv_pprof__symbolize(l.stat + 1, f, UV_PPROF__MAX_INLINE), 1);
  ASSERT_STR_EQ(f[0].name, "plugin_static");
  ASSERT(!f[0].nameless && f[0].file == NULL);
  ASSERT_EQ(uv_pprof__symbolize(l.global + 1, f, UV_PPROF__MAX_INLINE), 1);
  ASSERT_STR_EQ(f[0].name, "sym_plugin_global");
  uv_pprof__symbolizer_reset();
  ASSERT_EQ(uv_pprof__debuginfo_roots(NULL), 0);
  return 0;
}

/* The file of a loaded module replaced on disk (by another build, or by a
 * truncated copy) before the symbolizer first reads it: its symbols would
 * name other code, so none are used. */
TEST_IMPL(debuginfo_module_replaced) {
  const char* dir = make_tree();
  uintptr_t at = elf_symbol(SYM_PLUGIN, "plugin_static") + 1;
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  char path[PATH_MAX];
  loaded_t other;
  loaded_t cut;
  loaded_t kept;

  sh(dir,
     "mkdir other cut kept; cp P.so other/lib.so; cp P.so cut/lib.so\n"
     "cp P.so kept/lib.so");
  snprintf(path, sizeof(path), "%s/other/lib.so", dir);
  load(path, &other);
  snprintf(path, sizeof(path), "%s/cut/lib.so", dir);
  load(path, &cut);
  snprintf(path, sizeof(path), "%s/kept/lib.so", dir);
  load(path, &kept);
  /* Replaced the way installers do it: a new file renamed over the path. */
  sh(dir,
     "cp O.so other/new; mv other/new other/lib.so\n"
     "head -c 3000 P.so > cut/new; mv cut/new cut/lib.so");

  expect_nameless(other.stat + 1, "lib.so", at);
  ASSERT_EQ(uv_pprof__symbolize(other.global + 1, f, UV_PPROF__MAX_INLINE), 1);
  ASSERT(f[0].nameless);
  expect_nameless(cut.stat + 1, "lib.so", at);
  /* The untouched copy, unstripped, names everything. */
  expect_named(kept.stat + 1, "plugin_static");
  uv_pprof__symbolizer_reset();
  return 0;
}

/* ---- no network ---------------------------------------------------------- */

/* A listener on 127.0.0.1 that counts the connections it is offered. */
typedef struct {
  int fd;
  int port;
  atomic_int connections;
  atomic_int stop;
  uv_thread_t thread;
} counter_t;

static void count_main(void* arg) {
  counter_t* c = arg;

  while (!atomic_load(&c->stop)) {
    struct pollfd pfd = {c->fd, POLLIN, 0};
    int fd;
    if (poll(&pfd, 1, 20) <= 0)
      continue;
    fd = accept(c->fd, NULL, NULL);
    if (fd >= 0) {
      atomic_fetch_add(&c->connections, 1);
      close(fd);
    }
  }
}

static void counter_start(counter_t* c) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);

  memset(c, 0, sizeof(*c));
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(c->fd >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(c->fd, (struct sockaddr*)&sa, sizeof(sa)), 0);
  ASSERT_EQ(listen(c->fd, 64), 0);
  ASSERT_EQ(getsockname(c->fd, (struct sockaddr*)&sa, &len), 0);
  c->port = ntohs(sa.sin_port);
  ASSERT_EQ(uv_thread_create(&c->thread, count_main, c), 0);
}

static void counter_stop(counter_t* c) {
  atomic_store(&c->stop, 1);
  ASSERT_EQ(uv_thread_join(&c->thread), 0);
  close(c->fd);
}

/* Points debuginfod (through this process's environment) at a counter. */
static void debuginfod_at(const counter_t* c, const char* dir) {
  char url[64];
  char cache[PATH_MAX];

  snprintf(url, sizeof(url), "http://127.0.0.1:%d", c->port);
  snprintf(cache, sizeof(cache), "%s/debuginfod-cache", dir);
  ASSERT_EQ(setenv("DEBUGINFOD_URLS", url, 1), 0);
  ASSERT_EQ(setenv("DEBUGINFOD_CACHE_PATH", cache, 1), 0);
  ASSERT_EQ(setenv("DEBUGINFOD_TIMEOUT", "5", 1), 0);
}

/* With DEBUGINFOD_URLS set, symbolizing stripped code (whose debug file
 * exists nowhere) makes no connection. libdw's standard search, given the
 * same module, does connect: the trap is real. */
TEST_IMPL(debuginfo_no_network) {
  static const Dwfl_Callbacks standard = {
      .find_elf = dwfl_linux_proc_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
  };
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  const char* dir = make_tree();
  uintptr_t at = elf_symbol(SYM_PLUGIN, "plugin_static") + 1;
  uintptr_t addrs[3];
  uint64_t ids[3];
  uv_pprof__builder_t* b;
  uv_pprof__buf_t gz;
  int64_t one = 1;
  char path[PATH_MAX];
  Dwarf_Addr bias;
  Dwfl_Module* mod;
  counter_t c;
  loaded_t l;
  Dwfl* dwfl;
  int i;

  counter_start(&c);
  debuginfod_at(&c, dir);
  sh(dir, "mkdir none; cp unlinked.so none/lib.so");
  snprintf(path, sizeof(path), "%s/none/lib.so", dir);
  load(path, &l);

  expect_nameless(l.stat + 1, "lib.so", at);
  addrs[0] = l.stat + 1;
  addrs[1] = (uintptr_t)dlsym(RTLD_DEFAULT, "getpid") + 1;
  addrs[2] = (uintptr_t)&elf_symbol;
  for (i = 0; i < 3; i++)
    ASSERT(uv_pprof__symbolize(addrs[i], f, UV_PPROF__MAX_INLINE) >= 1);
  b = uv_pprof__builder_new();
  ASSERT(b != NULL);
  uv_pprof__builder_sample_type(b, "samples", "count");
  for (i = 0; i < 3; i++)
    ids[i] = uv_pprof__builder_location(b, addrs[i]);
  uv_pprof__builder_sample(b, ids, 3, &one, NULL, 0);
  uv_pprof__buf_init(&gz);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__buf_free(&gz);
  uv_pprof__builder_free(b);
  sleep_ms(200);
  ASSERT_EQ(atomic_load(&c.connections), 0);
  uv_pprof__symbolizer_reset();

  dwfl = dwfl_begin(&standard);
  ASSERT(dwfl != NULL);
  ASSERT_EQ(dwfl_linux_proc_report(dwfl, getpid()), 0);
  ASSERT_EQ(dwfl_report_end(dwfl, NULL, NULL), 0);
  mod = dwfl_addrmodule(dwfl, l.stat);
  ASSERT(mod != NULL);
  dwfl_module_getdwarf(mod, &bias);
  for (i = 0; i < 250 && atomic_load(&c.connections) == 0; i++)
    sleep_ms(20);
  ASSERT(atomic_load(&c.connections) > 0);
  dwfl_end(dwfl);
  counter_stop(&c);
  return 0;
}

/* ---- a stripped program, served ------------------------------------------ */

/* The program running, and where it serves. */
typedef struct {
  child_t child;
  char url[128];
} served_t;

/* Starts `path` with `env` added; waits for its "url=" line. */
static void serve(served_t* s, const char* path, const char* const env[]) {
  const char* argv[2] = {path, NULL};
  char line[256];

  child_start(&s->child, "symhost", argv, env);
  child_line(&s->child, line, sizeof(line), 20000);
  ASSERT(strncmp(line, "url=", 4) == 0 && strlen(line) < sizeof(s->url) + 4);
  memcpy(s->url, line + 4, strlen(line + 4) + 1);
}

/* Closes its stdin and asserts a clean exit. */
static void unserve(served_t* s) {
  if (child_end(&s->child, 20000, NULL) != 0) {
    child_dump_log(&s->child);
    ASSERT(0);
  }
}

/* curl of url + path (extra args before the URL); asserts it exits 0. */
static void fetch(const served_t* c, const char* path, const char* data,
                  run_result_t* r) {
  char url[512];
  const char* argv[8] = {"curl", "-sS", "--max-time", "60"};
  size_t n = 4;

  snprintf(url, sizeof(url), "%s%s", c->url, path);
  if (data != NULL) {
    argv[n++] = "--data-binary";
    argv[n++] = data;
  }
  argv[n++] = url;
  argv[n] = NULL;
  run_cmd(argv, NULL, 60000, r);
  ASSERT_EQ(r->status, 0);
}

/* The location of p whose only line's function is `name`, or NULL. */
static const Perftools__Profiles__Location* location_named(const profile_t* p,
                                                           const char* name) {
  size_t i;

  for (i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location* l = p->location[i];
    if (l->n_line == 1 &&
        strcmp(
            profile_str(p, profile_function(p, l->line[0]->function_id)->name),
            name) == 0)
      return l;
  }
  return NULL;
}

/* What the program served (its timer's callback is symhost_tick, at ELF
 * address `tick`) when named by `name` ("symhost+0x..." or
 * "symhost_tick"): the goroutine texts, the proto (its main mapping's
 * build ID and has_functions), /debug/pprof/symbol. Saves the proto to
 * `saved`. */
static void expect_served(const served_t* c, const char* name, int named,
                          const char* build_id, const char* saved) {
  const Perftools__Profiles__Location* l;
  const Perftools__Profiles__Mapping* m;
  run_result_t r;
  char body[64];
  char want[256];
  profile_t* p;
  FILE* out;

  fetch(c, "goroutine?debug=1", NULL, &r);
  if (named) {
    snprintf(want, sizeof(want), "\t%s+0x0\t", name);
    ASSERT_CONTAINS(r.out, want);
    ASSERT_CONTAINS(r.out, SYMHOST_C ":");
  } else {
    snprintf(want, sizeof(want), "\t%s\n", name);
    ASSERT_CONTAINS(r.out, want);
  }
  run_free(&r);
  fetch(c, "goroutine?debug=2", NULL, &r);
  snprintf(want, sizeof(want), "\n%s(...)\n", name);
  ASSERT_CONTAINS(r.out, want);
  run_free(&r);

  fetch(c, "goroutine", NULL, &r);
  p = profile_decode(r.out, r.out_len);
  out = fopen(saved, "wb");
  ASSERT(out != NULL);
  ASSERT_EQ(fwrite(r.out, 1, r.out_len, out), r.out_len);
  ASSERT_EQ(fclose(out), 0);
  run_free(&r);
  l = location_named(p, name);
  ASSERT(l != NULL);
  m = profile_mapping(p, l->mapping_id);
  ASSERT(m != NULL && m == p->mapping[0]);
  ASSERT_STR_EQ(profile_str(p, m->build_id), build_id);
  ASSERT_EQ(m->has_functions, named);

  snprintf(body, sizeof(body), "0x%" PRIx64, l->address);
  fetch(c, "symbol", body, &r);
  snprintf(want, sizeof(want), "0x%" PRIx64 " %s\n", l->address, name);
  ASSERT_CONTAINS(r.out, want);
  run_free(&r);
  perftools__profiles__profile__free_unpacked(p, NULL);
}

/* The program stripped: without its debug file, every text and the proto
 * name its callback "symhost+0x<ELF address>", the mapping keeps its build
 * ID and says it has no functions, so go tool pprof given the unstripped
 * binary names it; with the debug file beside it, its name, file and line.
 * DEBUGINFOD_URLS points at a local counter all along: no connection. */
TEST_IMPL(debuginfo_stripped_host) {
  const char* dir = test_tmpdir();
  uintptr_t tick = elf_symbol(UV_PPROF_SYMHOST, "symhost_tick");
  char build_id[2 * UV_PPROF__MAX_BUILD_ID + 1];
  char name[64];
  char saved[PATH_MAX];
  char unstripped[PATH_MAX];
  char exe[PATH_MAX];
  char env_url[96];
  char env_cache[PATH_MAX + 32];
  const char* env[3] = {env_url, env_cache, NULL};
  const char* args[5];
  run_result_t r;
  counter_t c;
  served_t host;

  counter_start(&c);
  snprintf(env_url, sizeof(env_url), "DEBUGINFOD_URLS=http://127.0.0.1:%d",
           c.port);
  snprintf(env_cache, sizeof(env_cache), "DEBUGINFOD_CACHE_PATH=%s/cache", dir);
  elf_build_id(UV_PPROF_SYMHOST, build_id, sizeof(build_id));
  sh(dir,
     "cp '%s' unstripped\n"
     "objcopy --only-keep-debug unstripped symhost.debug\n"
     "mkdir plain with-debug\n"
     "objcopy --strip-all --add-gnu-debuglink=symhost.debug unstripped "
     "plain/symhost\n"
     "cp plain/symhost with-debug/; cp symhost.debug with-debug/",
     UV_PPROF_SYMHOST);
  snprintf(unstripped, sizeof(unstripped), "%s/unstripped", dir);

  snprintf(exe, sizeof(exe), "%s/plain/symhost", dir);
  serve(&host, exe, env);
  snprintf(name, sizeof(name), "symhost+0x%" PRIxPTR, tick);
  snprintf(saved, sizeof(saved), "%s/stripped.pb.gz", dir);
  expect_served(&host, name, 0, build_id, saved);
  unserve(&host);

  /* pprof shows the made-up names; given the binary, it names them. */
  args[0] = "-top";
  args[1] = saved;
  args[2] = NULL;
  go_pprof(args, &r);
  snprintf(name, sizeof(name), " symhost+0x%" PRIxPTR "\n", tick);
  ASSERT_CONTAINS(r.out, name);
  run_free(&r);
  args[0] = "-top";
  args[1] = unstripped;
  args[2] = saved;
  args[3] = NULL;
  go_pprof(args, &r);
  ASSERT_CONTAINS(r.out, " symhost_tick\n");
  run_free(&r);

  snprintf(exe, sizeof(exe), "%s/with-debug/symhost", dir);
  serve(&host, exe, env);
  snprintf(saved, sizeof(saved), "%s/named.pb.gz", dir);
  expect_served(&host, "symhost_tick", 1, build_id, saved);
  unserve(&host);

  ASSERT_EQ(atomic_load(&c.connections), 0);
  counter_stop(&c);
  return 0;
}
