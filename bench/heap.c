/* bench_heap: GET /debug/pprof/heap against jemalloc's prof.dump alone at
 * 1k, 10k and 50k live stacks; the host loop's 1 ms timer lateness and busy
 * time meanwhile (paced, back to back) against a quiet phase, with and
 * without prof_accum; a history snapshot (what each timeline sample keeps)
 * against prof.dump alone, and its size; the cost of jemalloc's profiling
 * settings on a malloc-heavy loop. Children of its own run with the
 * MALLOC_CONF needed. It calls the history's snapshot directly, so it links
 * uv_pprof's objects. Usage: bench_heap [runs, default 7]. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>

#include <uv.h>

#include "profile.h"
#include "probe.h"
#include "uv_pprof.h"

#define MAX_RUNS 31
#define DEPTH 16      /* 2^16 paths: enough for 50k distinct stacks */
#define PHASE_MS 3000 /* each phase of the lateness measurement */

extern char** environ;

static int runs = 7;

/* ---- live stacks -------------------------------------------------------- */

static void** first_slot; /* slot i holds path i's block */

static unsigned path_of(void** slot) {
  return (unsigned)(slot - first_slot);
}

static size_t block_size(unsigned path) {
  return 32768 + (size_t)(path * 2654435761u % 65536);
}

__attribute__((noinline)) void bench_branch_a(int depth, unsigned path,
                                              void** slot);
__attribute__((noinline)) void bench_branch_b(int depth, unsigned path,
                                              void** slot);

/* Two functions calling each other by the bits of `path`: one distinct
 * stack per path. A block of 32 to 96 KiB (by path, so that the stacks'
 * counts differ as a real program's do) is sampled at 4 KiB with
 * probability at least 1 - exp(-8): every path is a live stack in the
 * dump. */
void bench_branch_a(int depth, unsigned path, void** slot) {
  if (depth == 0) {
    *slot = malloc(block_size(path_of(slot)));
    return;
  }
  if (path & 1)
    bench_branch_b(depth - 1, path >> 1, slot);
  else
    bench_branch_a(depth - 1, path >> 1, slot);
  __asm__ volatile("" ::: "memory");
}

void bench_branch_b(int depth, unsigned path, void** slot) {
  if (depth == 0) {
    *slot = malloc(block_size(path_of(slot)));
    return;
  }
  if (path & 1)
    bench_branch_b(depth - 1, path >> 1, slot);
  else
    bench_branch_a(depth - 1, path >> 1, slot);
  __asm__ volatile("" ::: "memory");
}

/* prof.dump into a memfd, as uv_pprof does it; returns the dump's size. */
static size_t dump_alone(void) {
  char path[64];
  const char* p = path;
  int fd = memfd_create("bench-heap", MFD_CLOEXEC);
  off_t size;

  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  if (fd < 0 || mallctl("prof.dump", NULL, NULL, &p, sizeof(p)) != 0)
    exit(1);
  size = lseek(fd, 0, SEEK_END);
  close(fd);
  return (size_t)size;
}

static double ms_since(uint64_t t0) {
  return (double)(uv_hrtime() - t0) / 1e6;
}

/* CPU time of the calling thread, ns. */
static int64_t thread_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The child run with lg_prof_sample:12: sampling on throughout, at one
 * sample per 4 KiB (128 times jemalloc's default rate), which makes
 * uv_pprof's own allocations and the host's per-tick one sampled far more
 * often than in production. */
static int run_stacks(void) {
  static const unsigned counts[] = {1000, 10000, 50000};
  probe_host_t h;
  probe_stats_t quiet;
  probe_stats_t busy[3];
  probe_stats_t paced[3];
  int nbusy[3];
  int npaced[3];
  double dump_ms[3];
  double heap_ms[3];
  double dump_cpu[3][MAX_RUNS];
  double heap_cpu[3][MAX_RUNS];
  double dump_cpu_ms[3];
  double heap_cpu_ms[3];
  double text_ms[3];
  double cold_ms[3];
  size_t dump_size[3];
  size_t proto_size[3];
  void** slots;
  unsigned made = 0;
  size_t c;
  int fd;

  probe_start(&h, 1);
  probe_phase_begin(&h);
  usleep(PHASE_MS * 1000);
  quiet = probe_phase_end(&h);
  fd = probe_connect(h.port);
  slots = calloc(counts[2], sizeof(*slots));
  if (slots == NULL)
    exit(1);
  first_slot = slots;
  for (c = 0; c < 3; c++) {
    unsigned n = counts[c];
    double t[MAX_RUNS];
    double th[MAX_RUNS];
    uint64_t t0;
    int i;

    /* Paths of one depth, added to those of the smaller sizes: with
     * prof_accum a freed stack would stay in the dump. */
    for (; made < n; made++)
      bench_branch_a(DEPTH, made, &slots[made]);
    t0 = uv_hrtime();
    proto_size[c] = probe_get(fd, "/debug/pprof/heap", 200);
    cold_ms[c] = ms_since(t0);
    /* Alternated, so that a busy moment of a shared machine hits both;
     * CPU time too (this thread's for the dump, the worker's for /heap,
     * whose dump runs there): it does not count the waits for a CPU. */
    for (i = 0; i < runs; i++) {
      int64_t c0 = thread_cpu_ns();
      t0 = uv_hrtime();
      dump_size[c] = dump_alone();
      t[i] = ms_since(t0);
      dump_cpu[c][i] = (double)(thread_cpu_ns() - c0) / 1e6;
      c0 = probe_thread_cpu_ns("uv_pprof");
      t0 = uv_hrtime();
      probe_get(fd, "/debug/pprof/heap", 200);
      th[i] = ms_since(t0);
      heap_cpu[c][i] = (double)(probe_thread_cpu_ns("uv_pprof") - c0) / 1e6;
    }
    dump_ms[c] = probe_median(t, runs);
    heap_ms[c] = probe_median(th, runs);
    dump_cpu_ms[c] = probe_median(dump_cpu[c], runs);
    heap_cpu_ms[c] = probe_median(heap_cpu[c], runs);
    /* Long enough for a p99 of the 1 ms timer to mean something: back to
     * back, then paced as bench_lateness paces (10 ms between requests). */
    probe_phase_begin(&h);
    t0 = uv_hrtime();
    for (nbusy[c] = 0; ms_since(t0) < PHASE_MS; nbusy[c]++)
      probe_get(fd, "/debug/pprof/heap", 200);
    busy[c] = probe_phase_end(&h);
    probe_phase_begin(&h);
    t0 = uv_hrtime();
    for (npaced[c] = 0; ms_since(t0) < PHASE_MS; npaced[c]++) {
      probe_get(fd, "/debug/pprof/heap", 200);
      usleep(10000);
    }
    paced[c] = probe_phase_end(&h);
    for (i = 0; i < runs; i++) {
      t0 = uv_hrtime();
      probe_get(fd, "/debug/pprof/heap?debug=1", 200);
      t[i] = ms_since(t0);
    }
    text_ms[c] = probe_median(t, runs);
  }
  for (c = 0; c < made; c++)
    free(slots[c]);
  free(slots);
  close(fd);

  printf(
      "heap endpoint against jemalloc's prof.dump alone (ms, median of "
      "%d alternated runs; wall\nclock end to end, and CPU time: the "
      "worker's for /heap; first = the first /heap at\nthat size)\n\n",
      runs);
  printf("%11s %9s %9s %9s %6s %9s %9s %6s %9s %9s %9s\n", "live stacks",
         "dump KiB", "prof.dump", "/heap", "ratio", "dump CPU", "/heap CPU",
         "ratio", "first", "?debug=1", "proto KiB");
  for (c = 0; c < 3; c++)
    printf("%11u %9zu %9.1f %9.1f %5.2fx %9.1f %9.1f %5.2fx %9.1f %9.1f %9zu\n",
           counts[c], dump_size[c] >> 10, dump_ms[c], heap_ms[c],
           heap_ms[c] / dump_ms[c], dump_cpu_ms[c], heap_cpu_ms[c],
           heap_cpu_ms[c] / dump_cpu_ms[c], cold_ms[c], text_ms[c],
           proto_size[c] >> 10);
  printf(
      "\nthe host loop: its 1 ms timer's lateness (us), and its busy time "
      "(outside epoll_wait)\nper request over the quiet phase's; quiet, "
      "then /heap paced (10 ms between requests)\nand back to back, %d s "
      "each\n\n",
      PHASE_MS / 1000);
  printf("%-28s %8s %6s %6s %6s %6s %10s %12s\n", "phase", "requests", "ticks",
         "p50", "p99", "max", "p99 added", "busy/req us");
  printf("%-28s %8s %6zu %6lld %6lld %6lld %10s %12s\n", "quiet (baseline)",
         "-", quiet.ticks, (long long)quiet.p50, (long long)quiet.p99,
         (long long)quiet.max, "-", "-");
  for (c = 0; c < 6; c++) {
    const probe_stats_t* l = c % 2 ? &busy[c / 2] : &paced[c / 2];
    int nreq = c % 2 ? nbusy[c / 2] : npaced[c / 2];
    char label[64];
    snprintf(label, sizeof(label), "%s, %u stacks",
             c % 2 ? "back to back" : "paced", counts[c / 2]);
    printf("%-28s %8d %6zu %6lld %6lld %6lld %10lld %12.0f\n", label, nreq,
           l->ticks, (long long)l->p50, (long long)l->p99, (long long)l->max,
           (long long)(l->p99 - quiet.p99),
           (l->busy_ms - quiet.busy_ms / quiet.ms * l->ms) * 1000 / nreq);
  }
  probe_stop(&h);
  return 0;
}

/* ---- history snapshots --------------------------------------------------- */

static void set_sampling(int on) {
  bool v = on != 0;

  if (mallctl("thread.prof.active", NULL, NULL, &v, sizeof(v)) != 0)
    exit(1);
}

/* No server here: this thread is the only user of the stack table, as the
 * worker is in a host. Snapshots alternate with prof.dump alone, so that a
 * noisy moment hits both; this thread's own allocations are not sampled
 * while it measures, as the worker's are not. */
static int run_history(void) {
  static const unsigned counts[] = {1000, 10000, 50000};
  uv_pprof__history_stats_t st;
  double dump_ms[3];
  double snap_ms[3];
  double dump_cpu_ms[3];
  double snap_cpu_ms[3];
  double cold_ms[3];
  size_t kept[3];
  size_t raw[3];
  size_t table[3];
  void** slots = calloc(counts[2], sizeof(*slots));
  int64_t when = uv_pprof__now_ns();
  unsigned made = 0;
  size_t c;

  if (slots == NULL || uv_pprof__history_configure((size_t)256 << 20) != 0)
    exit(1);
  first_slot = slots;
  for (c = 0; c < 3; c++) {
    double td[MAX_RUNS];
    double ts[MAX_RUNS];
    double cd[MAX_RUNS];
    double cs[MAX_RUNS];
    uint64_t t0;
    int i;

    set_sampling(1);
    for (; made < counts[c]; made++)
      bench_branch_a(DEPTH, made, &slots[made]);
    set_sampling(0);
    t0 = uv_hrtime();
    if (uv_pprof__history_take(when += 1000000000, NULL) != 0)
      exit(1);
    cold_ms[c] = ms_since(t0);
    for (i = 0; i < runs; i++) {
      int64_t c0 = thread_cpu_ns();
      t0 = uv_hrtime();
      dump_alone();
      td[i] = ms_since(t0);
      cd[i] = (double)(thread_cpu_ns() - c0) / 1e6;
      c0 = thread_cpu_ns();
      t0 = uv_hrtime();
      if (uv_pprof__history_take(when += 1000000000, NULL) != 0)
        exit(1);
      ts[i] = ms_since(t0);
      cs[i] = (double)(thread_cpu_ns() - c0) / 1e6;
    }
    dump_ms[c] = probe_median(td, runs);
    snap_ms[c] = probe_median(ts, runs);
    dump_cpu_ms[c] = probe_median(cd, runs);
    snap_cpu_ms[c] = probe_median(cs, runs);
    uv_pprof__history_stats(&st);
    kept[c] = st.largest;
    raw[c] = st.largest_raw;
    table[c] = st.stack_bytes;
  }
  for (c = 0; c < made; c++)
    free(slots[c]);
  free(slots);
  uv_pprof__history_reset();
  printf(
      "a history snapshot (prof.dump, parse, encode, keep) against "
      "prof.dump alone\n(ms, median of %d alternated runs, wall clock and "
      "this thread's CPU time; first = the\nfirst at that size, every "
      "stack new)\n\n",
      runs);
  printf("%11s %9s %9s %6s %9s %9s %6s %9s %9s %9s %11s\n", "live stacks",
         "prof.dump", "snapshot", "ratio", "dump CPU", "snap CPU", "ratio",
         "first", "kept KiB", "raw KiB", "stacks KiB");
  for (c = 0; c < 3; c++)
    printf(
        "%11u %9.1f %9.1f %5.2fx %9.1f %9.1f %5.2fx %9.1f %9.1f %9.1f "
        "%11zu\n",
        counts[c], dump_ms[c], snap_ms[c], snap_ms[c] / dump_ms[c],
        dump_cpu_ms[c], snap_cpu_ms[c], snap_cpu_ms[c] / dump_cpu_ms[c],
        cold_ms[c], kept[c] / 1024.0, raw[c] / 1024.0, table[c] >> 10);
  printf(
      "\nkept: the largest snapshot kept (deflated records); raw: before "
      "deflate; stacks: the\nstack table the snapshots share\n");
  return 0;
}

/* ---- the cost of profiling settings ------------------------------------- */

/* A malloc-heavy loop: 4096 slots, each step frees one and allocates 16 to
 * 527 bytes in it. Prints ns per step and the peak RSS in KiB. */
static int run_churn(void) {
  enum { SLOTS = 4096, STEPS = 20000000 };
  void** slots = calloc(SLOTS, sizeof(*slots));
  unsigned x = 12345;
  uint64_t t0 = uv_hrtime();
  long i;
  char line[256];
  long rss = 0;
  FILE* f;

  for (i = 0; i < STEPS; i++) {
    unsigned k;
    x = x * 1103515245 + 12345;
    k = (x >> 8) % SLOTS;
    free(slots[k]);
    slots[k] = malloc(16 + ((x >> 3) & 511));
    ((char*)slots[k])[0] = 1;
  }
  printf("%.2f", (double)(uv_hrtime() - t0) / STEPS);
  f = fopen("/proc/self/status", "r");
  while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "VmHWM:", 6) == 0)
      rss = atol(line + 6);
  if (f != NULL)
    fclose(f);
  printf(" %ld\n", rss);
  for (i = 0; i < SLOTS; i++)
    free(slots[i]);
  free(slots);
  return 0;
}

/* Runs this program with `arg` and MALLOC_CONF=conf; returns its stdout. */
static void run_child(const char* self, const char* arg, const char* conf,
                      char* out, size_t size) {
  posix_spawn_file_actions_t fa;
  char setting[256];
  char** envp;
  const char* argv[] = {self, arg, NULL};
  size_t n = 0;
  size_t i;
  size_t have = 0;
  int status;
  pid_t pid;
  int p[2];

  while (environ[n] != NULL)
    n++;
  envp = calloc(n + 2, sizeof(*envp));
  for (i = 0, n = 0; environ[i] != NULL; i++)
    if (strncmp(environ[i], "MALLOC_CONF=", 12) != 0)
      envp[n++] = environ[i];
  snprintf(setting, sizeof(setting), "MALLOC_CONF=%s", conf);
  envp[n++] = setting;
  if (pipe(p) != 0)
    exit(1);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  if (posix_spawn(&pid, self, &fa, NULL, (char* const*)argv, envp) != 0)
    exit(1);
  posix_spawn_file_actions_destroy(&fa);
  free(envp);
  close(p[1]);
  for (;;) {
    ssize_t r = read(p[0], out + have, size - have - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    have += (size_t)r;
  }
  out[have] = '\0';
  close(p[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    exit(1);
}

/* The machine's load average: the lateness figures are only as quiet as
 * the machine was. */
static void print_load(const char* when) {
  char line[128] = "?";
  FILE* f = fopen("/proc/loadavg", "r");

  if (f != NULL && fgets(line, sizeof(line), f) != NULL)
    line[strcspn(line, "\n")] = '\0';
  if (f != NULL)
    fclose(f);
  printf("load average %s: %s\n", when, line);
}

static void compare_settings(const char* self) {
  static const struct {
    const char* conf;
    const char* what;
  } settings[] = {
      {"", "jemalloc, no profiling (baseline)"},
      {"prof:true,prof_active:false", "profiling compiled in, inactive"},
      {"prof:true,prof_active:false,prof_accum:true",
       "inactive + prof_accum (the default idea)"},
      {"prof:true", "sampling at the default rate"},
      {"prof:true,prof_accum:true", "sampling + prof_accum"},
  };
  enum { N = sizeof(settings) / sizeof(settings[0]) };
  double ns[N][MAX_RUNS];
  long rss[N] = {0};
  double base;
  int r;
  int s;

  /* Interleaved, so that a noisy moment hits every setting alike. */
  for (r = 0; r < runs; r++)
    for (s = 0; s < N; s++) {
      char out[256];
      long kib = 0;
      run_child(self, "--churn", settings[s].conf, out, sizeof(out));
      if (sscanf(out, "%lf %ld", &ns[s][r], &kib) != 2)
        exit(1);
      if (kib > rss[s])
        rss[s] = kib;
    }
  printf(
      "\nmalloc-heavy loop (20M free+malloc of 16..527 B) by MALLOC_CONF "
      "(ns per step, median of %d interleaved runs; peak RSS)\n\n",
      runs);
  printf("%-46s %-42s %8s %8s %9s\n", "MALLOC_CONF", "", "ns/step", "cost",
         "RSS KiB");
  base = probe_median(ns[0], runs);
  for (s = 0; s < N; s++) {
    double m = probe_median(ns[s], runs);
    printf("%-46s %-42s %8.2f %+7.1f%% %9ld\n",
           settings[s].conf[0] ? settings[s].conf : "(unset)", settings[s].what,
           m, (m / base - 1) * 100, rss[s]);
  }
}

int main(int argc, char** argv) {
  /* With and without prof_accum: without it, a thread that frees the last
   * sampled object of a stack waits for the dump's summing (see README). */
  static const char* const stacks_conf[] = {
      "prof:true,prof_accum:true,lg_prof_sample:12",
      "prof:true,lg_prof_sample:12"};
  char self[4096];
  char out[8192];
  size_t i;
  ssize_t n;

  if (argc > 1 && strcmp(argv[1], "--churn") == 0)
    return run_churn();
  if (argc > 1 && strcmp(argv[1], "--stacks") == 0) {
    runs = atoi(getenv("BENCH_HEAP_RUNS"));
    return run_stacks();
  }
  if (argc > 1 && strcmp(argv[1], "--history") == 0) {
    runs = atoi(getenv("BENCH_HEAP_RUNS"));
    return run_history();
  }
  if (argc > 1)
    runs = atoi(argv[1]);
  if (runs < 1 || runs > MAX_RUNS) {
    fprintf(stderr, "usage: bench_heap [runs, 1 to %d]\n", MAX_RUNS);
    return 2;
  }
  n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0)
    return 1;
  self[n] = '\0';
  snprintf(out, sizeof(out), "%d", runs);
  setenv("BENCH_HEAP_RUNS", out, 1);
  print_load("at the start");
  for (i = 0; i < sizeof(stacks_conf) / sizeof(stacks_conf[0]); i++) {
    printf("=== MALLOC_CONF=%s\n\n", stacks_conf[i]);
    fflush(stdout);
    run_child(self, "--stacks", stacks_conf[i], out, sizeof(out));
    fputs(out, stdout);
    printf("\n");
    fflush(stdout);
  }
  printf("=== MALLOC_CONF=%s\n\n", stacks_conf[0]);
  fflush(stdout);
  run_child(self, "--history", stacks_conf[0], out, sizeof(out));
  fputs(out, stdout);
  fflush(stdout);
  compare_settings(self);
  print_load("at the end");
  return 0;
}
