/* bench_symbolize: symbolization of 10 000 addresses inside functions of
 * /usr/bin/node (a 98 MB binary with 64k functions), cold (the first pass
 * after a reset: the loader scan, libdw opening node, our symbol table
 * built) and warm (the same addresses again: the cache), against
 * `addr2line -f -e /usr/bin/node` on the same addresses in the same run.
 *
 * Node cannot be dlopen'ed, so the measurement runs inside a node process:
 * run as `bench_symbolize`, this file re-executes node with itself preloaded
 * (as libbench_symbolize_node.so), and there its constructor measures the
 * very code path profiles take (uv_pprof__symbolize on node's own mapped
 * code), then exits before node starts. The addresses are picked from
 * node's .symtab (read with libelf, not with the code under test): 10 000
 * distinct sized functions, a random offset inside each, fixed seed.
 *
 * Then JIT code: a perf map of 50 000 lines such as node --perf-basic-prof
 * writes, over anonymous executable memory; the first lookup (which reads
 * and merges the map), 10 000 lookups after it, and the first lookup after
 * 1 000 more lines were appended.
 *
 * Usage: bench_symbolize [--runs N (default 5)] [--node PATH]
 */
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <link.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"

#define NADDRS 10000
#define ENV_RUNS "UV_PPROF_BENCH_SYMBOLIZE_RUNS"
#define JIT_LINES 50000
#define JIT_APPENDED 1000
#define JIT_STRIDE 256 /* bytes of code per line */

extern char** environ;

typedef struct {
  uintptr_t addr;      /* in the process */
  uintptr_t file_addr; /* as addr2line takes it */
  const char* inner;   /* our innermost frame's name */
  const char* outer;   /* our function's name */
  uintptr_t start;     /* our function's entry, as a file address */
} probe_t;

/* A FUNC symbol of node's .symtab. */
typedef struct {
  uint64_t value;
  uint64_t size;
  const char* name; /* in libelf's mapping of the file */
} func_t;

static double now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t next_random(uint64_t* s) {
  /* xorshift64*: fixed seed, so every run probes the same addresses. */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

static int compare_doubles(const void* a, const void* b) {
  double x = *(const double*)a;
  double y = *(const double*)b;

  return (x > y) - (x < y);
}

static int on_first_object(struct dl_phdr_info* info, size_t size, void* arg) {
  *(uintptr_t*)arg = info->dlpi_addr;
  return 1;
}

static int compare_funcs(const void* a, const void* b) {
  const func_t* x = a;
  const func_t* y = b;

  return (x->value > y->value) - (x->value < y->value);
}

/* The defined FUNC symbols of the ELF file at path, by value. Returns their
 * count (0 on failure); *elf stays open for the names. */
static size_t read_functions(const char* path, Elf** elf, func_t** out) {
  func_t* funcs = NULL;
  size_t n = 0;
  Elf_Scn* scn = NULL;
  int fd;

  elf_version(EV_CURRENT);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  while (*elf != NULL && (scn = elf_nextscn(*elf, scn)) != NULL) {
    GElf_Shdr shdr;
    Elf_Data* data;
    size_t i;
    size_t count;
    if (gelf_getshdr(scn, &shdr) == NULL || shdr.sh_type != SHT_SYMTAB)
      continue;
    data = elf_getdata(scn, NULL);
    count = shdr.sh_entsize != 0 ? shdr.sh_size / shdr.sh_entsize : 0;
    funcs = malloc((count != 0 ? count : 1) * sizeof(*funcs));
    for (i = 0; funcs != NULL && data != NULL && i < count; i++) {
      GElf_Sym sym;
      if (gelf_getsym(data, (int)i, &sym) == NULL ||
          GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF)
        continue;
      funcs[n].value = sym.st_value;
      funcs[n].size = sym.st_size;
      funcs[n].name = elf_strptr(*elf, shdr.sh_link, sym.st_name);
      n += funcs[n].name != NULL;
    }
    break;
  }
  close(fd);
  if (funcs != NULL)
    qsort(funcs, n, sizeof(*funcs), compare_funcs);
  *out = funcs;
  return n;
}

/* 1 when `name` is a symbol at file address `value`: another name of the
 * same code (C1/C2 constructors, D1/D2 destructors, folded templates). */
static int is_alias(const func_t* funcs, size_t n, uint64_t value,
                    const char* name) {
  size_t lo = 0;
  size_t hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (funcs[mid].value < value)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (; lo < n && funcs[lo].value == value; lo++)
    if (strcmp(funcs[lo].name, name) == 0)
      return 1;
  return 0;
}

/* Runs `addr2line -f -e exe` on the probes' file addresses; returns its
 * wall time in ms (or -1) and leaves its output in out_path. */
static double run_addr2line(const char* exe, const probe_t* probes, size_t n,
                            const char* in_path, const char* out_path) {
  posix_spawn_file_actions_t fa;
  char* argv[] = {"addr2line", "-f", "-e", (char*)exe, NULL};
  FILE* f = fopen(in_path, "w");
  double t0;
  pid_t pid;
  int status;
  size_t i;

  if (f == NULL)
    return -1;
  for (i = 0; i < n; i++)
    fprintf(f, "0x%" PRIxPTR "\n", probes[i].file_addr);
  fclose(f);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  t0 = now_ms();
  if (posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -1;
  }
  posix_spawn_file_actions_destroy(&fa);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    return -1;
  return now_ms() - t0;
}

/* Of the probes, how many addr2line (its output's odd lines) names as one
 * of our frames does (*same), or by another name of our function's code
 * (*alias). */
static void count_agreeing(const probe_t* probes, size_t n,
                           const char* out_path, const func_t* funcs,
                           size_t nfuncs, size_t* same, size_t* alias) {
  char name[4096];
  char where[4096];
  FILE* f = fopen(out_path, "r");
  size_t i;

  *same = *alias = 0;
  if (f == NULL)
    return;
  for (i = 0; i < n; i++) {
    if (fgets(name, sizeof(name), f) == NULL ||
        fgets(where, sizeof(where), f) == NULL)
      break;
    name[strcspn(name, "\n")] = '\0';
    if ((probes[i].inner != NULL && strcmp(name, probes[i].inner) == 0) ||
        (probes[i].outer != NULL && strcmp(name, probes[i].outer) == 0))
      (*same)++;
    else if (probes[i].outer != NULL &&
             is_alias(funcs, nfuncs, probes[i].start, name))
      (*alias)++;
  }
  fclose(f);
}

static int measure(int runs) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  char exe[4096];
  char in_path[64];
  char out_path[64];
  probe_t* probes;
  func_t* funcs = NULL;
  size_t* sized;
  Elf* elf = NULL;
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  uintptr_t bias = 0;
  double* cold;
  double* warm;
  double* first;
  double tool;
  size_t nfuncs;
  size_t nsized = 0;
  size_t named = 0;
  size_t lines = 0;
  size_t inlined = 0;
  size_t same = 0;
  size_t alias = 0;
  size_t i;
  int r;
  ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

  if (len <= 0)
    return 1;
  exe[len] = '\0';
  dl_iterate_phdr(on_first_object, &bias);
  nfuncs = read_functions(exe, &elf, &funcs);
  sized = malloc((nfuncs != 0 ? nfuncs : 1) * sizeof(*sized));
  for (i = 0; sized != NULL && i < nfuncs; i++)
    if (funcs[i].size != 0)
      sized[nsized++] = i;
  if (nsized == 0) {
    fprintf(stderr, "bench_symbolize: no sized functions in %s\n", exe);
    return 1;
  }
  probes = calloc(NADDRS, sizeof(*probes));
  cold = calloc((size_t)runs, sizeof(*cold));
  warm = calloc((size_t)runs, sizeof(*warm));
  first = calloc((size_t)runs, sizeof(*first));
  if (probes == NULL || cold == NULL || warm == NULL || first == NULL)
    return 1;
  /* A partial Fisher-Yates shuffle: NADDRS distinct functions. */
  for (i = 0; i < NADDRS; i++) {
    size_t k = i % nsized;
    size_t j = k + (size_t)(next_random(&seed) % (nsized - k));
    const func_t* fn = &funcs[sized[j]];
    sized[j] = sized[k];
    sized[k] = (size_t)(fn - funcs);
    probes[i].file_addr =
        (uintptr_t)(fn->value + next_random(&seed) % fn->size);
    probes[i].addr = bias + probes[i].file_addr;
  }
  free(sized);

  for (r = 0; r < runs; r++) {
    double t0;
    uv_pprof__symbolizer_reset();
    t0 = now_ms();
    uv_pprof__symbolize(probes[0].addr, f, UV_PPROF__MAX_INLINE);
    first[r] = now_ms() - t0;
    for (i = 1; i < NADDRS; i++)
      uv_pprof__symbolize(probes[i].addr, f, UV_PPROF__MAX_INLINE);
    cold[r] = now_ms() - t0;
    t0 = now_ms();
    for (i = 0; i < NADDRS; i++)
      uv_pprof__symbolize(probes[i].addr, f, UV_PPROF__MAX_INLINE);
    warm[r] = now_ms() - t0;
  }
  for (i = 0; i < NADDRS; i++) {
    size_t n = uv_pprof__symbolize(probes[i].addr, f, UV_PPROF__MAX_INLINE);
    if (n == 0 || f[n - 1].name == NULL)
      continue;
    named++;
    lines += f[0].line > 0;
    inlined += n > 1;
    probes[i].inner = f[0].name;
    probes[i].outer = f[n - 1].name;
    probes[i].start = f[n - 1].start - bias;
  }

  snprintf(in_path, sizeof(in_path), "/tmp/bench_symbolize.%d.in",
           (int)getpid());
  snprintf(out_path, sizeof(out_path), "/tmp/bench_symbolize.%d.out",
           (int)getpid());
  tool = run_addr2line(exe, probes, NADDRS, in_path, out_path);
  if (tool >= 0)
    count_agreeing(probes, NADDRS, out_path, funcs, nfuncs, &same, &alias);
  unlink(in_path);
  unlink(out_path);

  qsort(first, (size_t)runs, sizeof(*first), compare_doubles);
  qsort(cold, (size_t)runs, sizeof(*cold), compare_doubles);
  qsort(warm, (size_t)runs, sizeof(*warm), compare_doubles);
  printf(
      "%d addresses inside %zu sized functions of %s; median of %d "
      "runs\n\n",
      NADDRS, nsized, exe, runs);
  printf("%-40s %10s %14s %12s %8s\n", "", "total ms", "us / address",
         "vs addr2line", "target");
  if (tool >= 0)
    printf("%-40s %10.1f %14.2f %12s %8s\n", "addr2line -f -e (one process)",
           tool, tool * 1e3 / NADDRS, "1", "");
  else
    printf("%-40s %10s\n", "addr2line -f -e (one process)", "failed");
  printf("%-40s %10.1f %14.2f %12.5f %8s\n",
         "uv_pprof cold (first pass after reset)", cold[runs / 2],
         cold[runs / 2] * 1e3 / NADDRS, tool > 0 ? cold[runs / 2] / tool : 0.0,
         "<= 100");
  printf("%-40s %10.1f %14s %12s %8s\n", "  of which the first address",
         first[runs / 2], "", "", "");
  printf("%-40s %10.2f %14.3f %12.6f %8s\n", "uv_pprof warm (cached)",
         warm[runs / 2], warm[runs / 2] * 1e3 / NADDRS,
         tool > 0 ? warm[runs / 2] / tool : 0.0, "<= 5");
  printf(
      "\nnamed: %zu of %d (%zu with a source line, %zu with inlined "
      "frames)\nsame function as addr2line: %zu (%zu of them under "
      "another name of the same code, e.g. C1/C2 constructors)\n",
      named, NADDRS, lines, inlined, same + alias, alias);
  printf("cold runs (ms):");
  for (r = 0; r < runs; r++)
    printf(" %.1f", cold[r]);
  printf("\nwarm runs (ms):");
  for (r = 0; r < runs; r++)
    printf(" %.2f", warm[r]);
  printf("\n");
  uv_pprof__symbolizer_reset();
  free(funcs);
  if (elf != NULL)
    elf_end(elf);
  free(probes);
  free(cold);
  free(warm);
  free(first);
  return 0;
}

/* Appends lines [from, to) of the perf map: V8's shape of names. */
static int append_map(const char* path, uintptr_t code, int from, int to) {
  FILE* f = fopen(path, "a");
  int i;

  if (f == NULL)
    return -1;
  for (i = from; i < to; i++)
    fprintf(f, "%" PRIxPTR " %x JS:*handler%d /srv/app/lib/module%d.js:%d:%d\n",
            code + (uintptr_t)i * JIT_STRIDE, JIT_STRIDE - 16, i, i % 97,
            i % 900 + 1, i % 60 + 1);
  return fclose(f);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* The perf map rows: see the file's comment. Returns 0 or 1. */
static int measure_jit(int runs) {
  size_t size = (size_t)(JIT_LINES + JIT_APPENDED) * JIT_STRIDE;
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  uint64_t seed = 0x2545f4914f6cdd1dull;
  uintptr_t* addrs = calloc(NADDRS, sizeof(*addrs));
  double* first = calloc((size_t)runs, sizeof(*first));
  double* warm = calloc((size_t)runs, sizeof(*warm));
  double* appended = calloc((size_t)runs, sizeof(*appended));
  void* code = mmap(NULL, size, PROT_READ | PROT_EXEC,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  char path[64];
  size_t named = 0;
  size_t i;
  int r;

  if (addrs == NULL || first == NULL || warm == NULL || appended == NULL ||
      code == MAP_FAILED)
    return 1;
  snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
  for (i = 0; i < NADDRS; i++)
    addrs[i] = (uintptr_t)code +
               (uintptr_t)(next_random(&seed) % JIT_LINES) * JIT_STRIDE +
               (uintptr_t)(next_random(&seed) % (JIT_STRIDE - 16));
  for (r = 0; r < runs; r++) {
    double t0;
    unlink(path);
    if (append_map(path, (uintptr_t)code, 0, JIT_LINES) != 0)
      return 1;
    uv_pprof__symbolizer_reset();
    t0 = now_ms();
    uv_pprof__symbolize(addrs[0], f, UV_PPROF__MAX_INLINE);
    first[r] = now_ms() - t0;
    t0 = now_ms();
    for (i = 0; i < NADDRS; i++)
      named += uv_pprof__symbolize(addrs[i], f, UV_PPROF__MAX_INLINE) == 1 &&
               !f[0].nameless;
    warm[r] = now_ms() - t0;
    if (append_map(path, (uintptr_t)code, JIT_LINES,
                   JIT_LINES + JIT_APPENDED) != 0)
      return 1;
    sleep_ms(60); /* past the symbolizer's 50 ms between looks */
    t0 = now_ms();
    uv_pprof__symbolize(addrs[0], f, UV_PPROF__MAX_INLINE);
    appended[r] = now_ms() - t0;
  }
  unlink(path);
  uv_pprof__symbolizer_reset();
  munmap(code, size);
  qsort(first, (size_t)runs, sizeof(*first), compare_doubles);
  qsort(warm, (size_t)runs, sizeof(*warm), compare_doubles);
  qsort(appended, (size_t)runs, sizeof(*appended), compare_doubles);
  printf("\nJIT code: a perf map of %d lines; median of %d runs\n\n", JIT_LINES,
         runs);
  printf("%-40s %10s %14s\n", "", "total ms", "us / item");
  printf("%-40s %10.2f %14.3f\n", "first lookup (reads, merges the map)",
         first[runs / 2], first[runs / 2] * 1e3 / JIT_LINES);
  printf("%-40s %10.2f %14.3f\n", "then 10 000 JIT addresses", warm[runs / 2],
         warm[runs / 2] * 1e3 / NADDRS);
  printf("%-40s %10.2f %14.3f\n", "1 000 lines appended: next lookup",
         appended[runs / 2], appended[runs / 2] * 1e3 / JIT_APPENDED);
  printf("\nnamed by the map: %zu of %zu\n", named, (size_t)runs * NADDRS);
  free(addrs);
  free(first);
  free(warm);
  free(appended);
  return 0;
}

/* Inside node (preloaded): measure, then leave before node starts. */
__attribute__((constructor)) static void in_node(void) {
  const char* runs = getenv(ENV_RUNS);
  int rc;

  if (runs == NULL)
    return;
  unsetenv("LD_PRELOAD"); /* not into addr2line */
  rc = measure(atoi(runs) > 0 ? atoi(runs) : 5);
  if (rc == 0)
    rc = measure_jit(atoi(runs) > 0 ? atoi(runs) : 5);
  fflush(stdout);
  _exit(rc);
}

/* As bench_symbolize: re-execute node with this file preloaded. */
int main(int argc, char** argv) {
  const char* node = "/usr/bin/node";
  const char* runs = "5";
  int i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = argv[++i];
    } else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc) {
      node = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--runs N] [--node PATH]\n", argv[0]);
      return 2;
    }
  }
  setenv(ENV_RUNS, runs, 1);
  setenv("LD_PRELOAD", BENCH_SYMBOLIZE_MODULE, 1);
  execl(node, node, "-e", "0", (char*)NULL);
  perror(node);
  return 1;
}
