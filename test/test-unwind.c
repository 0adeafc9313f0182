/* Tests of the CPU sampler's unwinder (unwind.c): on real samples of a
 * thread burning CPU in the test's own functions, in libc (qsort) and in a
 * module, all without frame pointers, the rule table gives the same stacks
 * as libdw's unwinder on the same copies; and after the module is unloaded
 * and another build of it (same code, other frame sizes) is loaded at the
 * same address, the rules of the first are not used for the second. */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "task.h"

#define MAX_FRAMES UV_PPROF__CPU_MAX_FRAMES
#define KEEP 64 /* module samples kept for symbolizing */

enum { IDLE, BURN_ALL, BURN_MODULE, QUIT };

static atomic_int mode;
static atomic_int burner_tid;
static double (*_Atomic module_burn)(int);
static volatile double sink;

static __attribute__((noinline)) void burn_in_module(void) {
  sink += module_burn(20000);
}

static int compare_ints(const void* a, const void* b) {
  int x = *(const int*)a;
  int y = *(const int*)b;

  return (x > y) - (x < y);
}

static __attribute__((noinline)) void burn_in_libc(void) {
  int v[512];
  int i;

  for (i = 0; i < 512; i++)
    v[i] = (int)((unsigned)(i * 2654435761u) >> 8);
  qsort(v, 512, sizeof(v[0]), compare_ints);
  sink += v[7];
}

static __attribute__((noinline)) void burn_here(void) {
  double x = sink;
  int i;

  for (i = 0; i < 20000; i++)
    x = x * 0.9999998 + 0.25;
  sink = x;
}

static void* burner(void* arg) {
  struct timespec ms = {0, 1000000};
  int m;

  atomic_store(&burner_tid, (int)syscall(SYS_gettid));
  while ((m = atomic_load(&mode)) != QUIT) {
    if (m == IDLE) {
      nanosleep(&ms, NULL);
      continue;
    }
    burn_in_module();
    if (m == BURN_ALL) {
      burn_in_libc();
      burn_here();
    }
  }
  return NULL;
}

typedef struct {
  uintptr_t lo; /* the module's mapping */
  uintptr_t hi;
  int compared;
  int differ;
  int in_module; /* samples of the burner with the module's code as leaf */
  int kept;
  uintptr_t stacks[KEEP][MAX_FRAMES];
  size_t depth[KEEP];
} check_t;

static void on_sample(const uv_pprof__cpu_sample_t* s, void* arg) {
  check_t* c = arg;
  uintptr_t pcs[MAX_FRAMES];
  size_t n =
      uv_pprof__unwind(s->copy, UV_PPROF__UNWIND_LIBDW, pcs, MAX_FRAMES, NULL);
  size_t i;

  c->compared++;
  if (n != s->npcs || memcmp(pcs, s->pcs, n * sizeof(pcs[0])) != 0) {
    c->differ++;
    fprintf(stderr, "stacks differ (tid %d): rules", s->tid);
    for (i = 0; i < s->npcs; i++)
      fprintf(stderr, " %#lx", (unsigned long)s->pcs[i]);
    fprintf(stderr, "\n                      libdw");
    for (i = 0; i < n; i++)
      fprintf(stderr, " %#lx", (unsigned long)pcs[i]);
    fprintf(stderr, "\n");
  }
  if (s->tid != atomic_load(&burner_tid) || s->pcs[0] < c->lo ||
      s->pcs[0] >= c->hi)
    return;
  c->in_module++;
  if (c->kept < KEEP) {
    memcpy(c->stacks[c->kept], s->pcs, s->npcs * sizeof(s->pcs[0]));
    c->depth[c->kept++] = s->npcs;
  }
}

/* Burns in the given mode for about `ms` of wall time, draining every
 * 100 ms into c; then stops the burner and drains what is left. */
/* Burns `how` for at least `ms`, and on until `want` samples have been
 * compared (at most 30 s): on a loaded machine the burner gets less CPU,
 * and the sampler samples CPU time. */
static void sample(int how, int ms, int want, check_t* c) {
  struct timespec tick = {0, 100 * 1000000};
  int i;

  atomic_store(&mode, how);
  for (i = 0; i < 300 && (i < ms / 100 || c->compared < want); i++) {
    nanosleep(&tick, NULL);
    uv_pprof__sampler_drain(on_sample, c);
  }
  atomic_store(&mode, IDLE);
  nanosleep(&tick, NULL);
  uv_pprof__sampler_drain(on_sample, c);
}

static void load(const char* path, void** handle, uintptr_t* lo,
                 uintptr_t* hi) {
  Dl_info info;
  const ElfW(Phdr) * ph;
  const ElfW(Ehdr) * eh;
  void* fn;
  int i;

  *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  ASSERT(*handle != NULL);
  fn = dlsym(*handle, "unwindmod_burn");
  ASSERT(fn != NULL);
  ASSERT_NE(dladdr(fn, &info), 0);
  eh = info.dli_fbase;
  ph = (const ElfW(Phdr)*)((const char*)eh + eh->e_phoff);
  *lo = (uintptr_t)info.dli_fbase;
  *hi = *lo;
  for (i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && *lo + ph[i].p_vaddr + ph[i].p_memsz > *hi)
      *hi = *lo + ph[i].p_vaddr + ph[i].p_memsz;
  atomic_store(&module_burn, (double (*)(int))fn);
}

static const char* name_at(uintptr_t pc) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  size_t n = uv_pprof__symbolize(pc, f, UV_PPROF__ARRAY_SIZE(f));

  return n > 0 && f[n - 1].name != NULL ? f[n - 1].name : "?";
}

/* Every kept module sample's stack, symbolized, goes module → burn_in_module
 * → burner: the unwinding went through the module's frame correctly. */
static void expect_callers(const check_t* c) {
  int i;

  ASSERT_GT(c->kept, 0);
  for (i = 0; i < c->kept; i++) {
    ASSERT_GE(c->depth[i], 3);
    ASSERT_STR_EQ(name_at(c->stacks[i][0]), "unwindmod_burn");
    ASSERT_STR_EQ(name_at(c->stacks[i][1]), "burn_in_module");
    ASSERT_STR_EQ(name_at(c->stacks[i][2]), "burner");
  }
}

static check_t checks[2];

TEST_IMPL(unwind_rules_match_libdw) {
  uv_pprof__unwind_stats_t st0;
  uv_pprof__unwind_stats_t st1;
  check_t* c = &checks[0];
  pthread_t thread;
  void* mod;

#if !defined(__x86_64__)
  fprintf(stderr, "the rule table is x86-64's only\n");
  return 1;
#endif
  memset(c, 0, sizeof(*c));
  load(UV_PPROF_UNWINDMOD_A, &mod, &c->lo, &c->hi);
  atomic_store(&mode, IDLE);
  ASSERT_EQ(pthread_create(&thread, NULL, burner, NULL), 0);
  while (atomic_load(&burner_tid) == 0)
    sched_yield();
  uv_pprof__sampler_prepare();
  ASSERT_EQ(uv_pprof__sampler_acquire(), 0);
  uv_pprof__sampler_drain(on_sample, c);
  uv_pprof__unwind_stats(&st0);
  sample(BURN_ALL, 3000, 60, c);
  uv_pprof__unwind_stats(&st1);
  uv_pprof__sampler_release();
  atomic_store(&mode, QUIT);
  pthread_join(thread, NULL);

  fprintf(stderr,
          "%d samples compared, %d in the module; by rules %llu, "
          "by libdw %llu\n",
          c->compared, c->in_module,
          (unsigned long long)(st1.by_rules - st0.by_rules),
          (unsigned long long)(st1.by_libdw - st0.by_libdw));
  ASSERT_GE(c->compared, 50);
  ASSERT_EQ(c->differ, 0);
  ASSERT_GE(c->in_module, 10);
  /* The rule table did the work (libdw's own unwinder only for stacks it
   * cannot express), so the comparison compared two unwinders. */
  ASSERT_GE(st1.by_rules - st0.by_rules, (uint64_t)c->compared * 3 / 4);
  expect_callers(c);
  dlclose(mod);
  return 0;
}

TEST_IMPL(unwind_rules_after_reload) {
  uv_pprof__unwind_stats_t st0;
  uv_pprof__unwind_stats_t st1;
  pthread_t thread;
  uintptr_t lo;
  uintptr_t hi;
  void* mod;
  int i;

#if !defined(__x86_64__)
  fprintf(stderr, "the rule table is x86-64's only\n");
  return 1;
#endif
  memset(checks, 0, sizeof(checks));
  load(UV_PPROF_UNWINDMOD_A, &mod, &checks[0].lo, &checks[0].hi);
  atomic_store(&mode, IDLE);
  ASSERT_EQ(pthread_create(&thread, NULL, burner, NULL), 0);
  while (atomic_load(&burner_tid) == 0)
    sched_yield();
  uv_pprof__sampler_prepare();
  ASSERT_EQ(uv_pprof__sampler_acquire(), 0);
  uv_pprof__sampler_drain(on_sample, &checks[0]);
  sample(BURN_MODULE, 1500, 20, &checks[0]);
  uv_pprof__unwind_stats(&st0);
  ASSERT_GT(st0.cached, 0);

  /* The burner is idle, out of the module, and every sample of the first
   * build has been drained: swap the builds. */
  ASSERT_EQ(dlclose(mod), 0);
  load(UV_PPROF_UNWINDMOD_B, &mod, &lo, &hi);
  ASSERT_EQ(lo, checks[0].lo); /* the same address, or this tests nothing */
  checks[1].lo = lo;
  checks[1].hi = hi;
  sample(BURN_MODULE, 1500, 20, &checks[1]);
  uv_pprof__unwind_stats(&st1);
  uv_pprof__sampler_release();
  atomic_store(&mode, QUIT);
  pthread_join(thread, NULL);

  for (i = 0; i < 2; i++) {
    fprintf(stderr, "build %c: %d samples compared, %d in the module\n",
            'a' + i, checks[i].compared, checks[i].in_module);
    ASSERT_EQ(checks[i].differ, 0);
    ASSERT_GE(checks[i].in_module, 10);
    expect_callers(&checks[i]);
  }
  ASSERT_GT(st1.flushes, st0.flushes);
  ASSERT_GT(st1.by_rules, st0.by_rules);
  dlclose(mod);
  return 0;
}
