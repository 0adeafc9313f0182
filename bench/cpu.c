/* bench_cpu: what CPU profiling at 100 Hz costs a CPU-bound libuv workload.
 * One loop per CPU runs a fixed unit of work (a hash, a small qsort) in an
 * idle callback. Phases of one run, in rotating order each round: no
 * profiler (the baseline), uv_pprof (a /debug/pprof/profile window fetched
 * over HTTP from uv_pprof's server on its own loop) and gperftools'
 * profiler (ProfilerStart, CPUPROFILE_FREQUENCY=100). Each phase is
 * compared with the baseline of its own round on work per wall second
 * (throughput) and work per CPU second of the whole process (the cost on a
 * saturated machine, unaffected by other processes taking CPUs); the table
 * shows the medians over rounds, and the cost of one sample. uv_pprof's
 * worker cost is then split into what each sample adds and what a window
 * costs whatever its length, from back-to-back windows of two lengths, and
 * what the first window after the worker idled out adds.
 *
 * Usage: bench_cpu [seconds per phase, default 5] [rounds, default 5]
 */
#include <arpa/inet.h>
#include <signal.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gperftools/profiler.h>
#include <uv.h>

#include "loop.h"
#include "probe.h"

#define MAX_LOOPS 64
#define MAX_ROUNDS 64

enum { NONE, UV_PPROF, GPERFTOOLS, NPHASES };
static const char* const phase_names[NPHASES] = {"no profiler", "uv_pprof",
                                                 "gperftools"};

typedef struct {
  uv_loop_t loop;
  uv_idle_t idle;
  uv_async_t stop;
  uv_thread_t thread;
  atomic_ullong units;
  uint32_t seed;
} worker_t;

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a;
  uint32_t y = *(const uint32_t*)b;
  return (x > y) - (x < y);
}

/* The unit of work: FNV-1a over 4 KiB, then qsort of 256 numbers. */
static void on_idle(uv_idle_t* idle) {
  worker_t* w = idle->data;
  unsigned char buf[4096];
  uint32_t a[256];
  uint32_t h = 2166136261u;
  size_t i;

  for (i = 0; i < sizeof(buf); i++) {
    w->seed ^= w->seed << 13;
    w->seed ^= w->seed >> 17;
    w->seed ^= w->seed << 5;
    buf[i] = (unsigned char)w->seed;
  }
  for (i = 0; i < sizeof(buf); i++)
    h = (h ^ buf[i]) * 16777619u;
  for (i = 0; i < 256; i++)
    a[i] = h ^ (uint32_t)(i * 2654435761u);
  qsort(a, 256, sizeof(a[0]), cmp_u32);
  w->seed ^= a[17];
  atomic_fetch_add(&w->units, 1);
}

static void on_stop(uv_async_t* a) {
  worker_t* w = a->data;

  uv_close((uv_handle_t*)&w->idle, NULL);
  uv_close((uv_handle_t*)&w->stop, NULL);
}

static void run_loop(void* arg) {
  uv_run(arg, UV_RUN_DEFAULT);
}

static void worker_start(worker_t* w, uint32_t seed) {
  uv_loop_init(&w->loop);
  uv_idle_init(&w->loop, &w->idle);
  uv_async_init(&w->loop, &w->stop, on_stop);
  w->idle.data = w->stop.data = w;
  w->seed = seed;
  uv_idle_start(&w->idle, on_idle);
  uv_thread_create(&w->thread, run_loop, &w->loop);
}

/* uv_pprof's server, on a loop of its own. */
typedef struct {
  uv_loop_t loop;
  uv_async_t wake;
  uv_thread_t thread;
  int port;
} server_t;

static void on_wake(uv_async_t* a) {
  uv_pprof_stop(a->loop);
  uv_close((uv_handle_t*)a, NULL);
}

static void server_start(server_t* s) {
  uv_pprof_options_t o;
  struct sockaddr_storage ss;

  uv_loop_init(&s->loop);
  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  if (uv_pprof_start_ex(&s->loop, &o) != 0)
    exit(1);
  uv_pprof_address(&s->loop, &ss);
  s->port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  uv_async_init(&s->loop, &s->wake, on_wake);
  uv_thread_create(&s->thread, run_loop, &s->loop);
}

/* GET of a CPU profile; returns once the answer is in. */
static void fetch_profile(int port, int seconds) {
  struct sockaddr_in sin;
  char buf[65536];
  char status[13] = "";
  char req[128];
  size_t have = 0;
  ssize_t n;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&sin, sizeof(sin)) != 0)
    exit(1);
  snprintf(req, sizeof(req),
           "GET /debug/pprof/profile?seconds=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Connection: close\r\n\r\n",
           seconds);
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
    exit(1);
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    size_t take = (size_t)n < 12 - have ? (size_t)n : 12 - have;
    memcpy(status + have, buf, take);
    have += take;
  }
  close(fd);
  if (strcmp(status, "HTTP/1.1 200") != 0) {
    fprintf(stderr, "the profile request failed: %s\n", status);
    exit(1);
  }
}

static int64_t now_ns(clockid_t clock);

static void on_nothing(int sig) {
}

/* What the kernel alone takes to deliver a signal to a handler and return
 * from it, in us: the part of a sample's cost no handler can measure. */
static double delivery_us(void) {
  struct sigaction sa;
  struct sigaction old;
  int64_t start;
  int sig = SIGRTMIN + 1;
  int i;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_nothing;
  sigaction(sig, &sa, &old);
  start = now_ns(CLOCK_THREAD_CPUTIME_ID);
  for (i = 0; i < 100000; i++)
    raise(sig);
  sa.sa_handler = SIG_DFL;
  sigaction(sig, &old, NULL);
  return (double)(now_ns(CLOCK_THREAD_CPUTIME_ID) - start) / 100000 / 1e3;
}

/* gperftools' cost per sample, kernel included: SIGPROF raised by hand
 * while its profiler runs (its handler takes a sample, unwinding with
 * libunwind, on every one), in us. */
static double gperftools_sample_us(const char* file) {
  int64_t start;
  int i;

  ProfilerStart(file);
  start = now_ns(CLOCK_THREAD_CPUTIME_ID);
  for (i = 0; i < 20000; i++)
    raise(SIGPROF);
  start = now_ns(CLOCK_THREAD_CPUTIME_ID) - start;
  ProfilerStop();
  return (double)start / 20000 / 1e3;
}

/* CPU time of uv_pprof's worker thread(s) so far, in ns (schedstat). */
static int64_t worker_cpu_ns(void) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  int64_t total = 0;

  while (d != NULL && (e = readdir(d)) != NULL) {
    char path[300];
    char comm[32] = "";
    long long ns = 0;
    FILE* f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
    if ((f = fopen(path, "r")) != NULL) {
      if (fgets(comm, sizeof(comm), f) == NULL)
        comm[0] = '\0';
      fclose(f);
    }
    if (strcmp(comm, "uv_pprof\n") != 0)
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
    if ((f = fopen(path, "r")) != NULL) {
      if (fscanf(f, "%lld", &ns) == 1)
        total += ns;
      fclose(f);
    }
  }
  if (d != NULL)
    closedir(d);
  return total;
}

static int64_t now_ns(clockid_t clock) {
  struct timespec ts;

  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* uv_pprof's worker CPU (s) for one window of `seconds` fetched now, and
 * the samples taken meanwhile. */
static void window_cost(int port, int seconds, double* cpu_s, double* samples) {
  uv_pprof__sampler_stats_t a;
  uv_pprof__sampler_stats_t b;
  int64_t w0 = worker_cpu_ns();

  uv_pprof__sampler_stats(&a);
  fetch_profile(port, seconds);
  uv_pprof__sampler_stats(&b);
  *cpu_s = (double)(worker_cpu_ns() - w0) / 1e9;
  *samples = (double)(b.samples - a.samples);
}

typedef struct {
  double units;
  double wall_s;
  double cpu_s;
  double samples;
  double worker_s; /* uv_pprof's worker thread */
} run_t;

static unsigned long long total_units(worker_t* w, int n) {
  unsigned long long u = 0;
  int i;

  for (i = 0; i < n; i++)
    u += atomic_load(&w[i].units);
  return u;
}

static run_t run_phase(int phase, worker_t* w, int nloops, server_t* s,
                       int seconds, const char* gperf_file) {
  uv_pprof__sampler_stats_t st0;
  uv_pprof__sampler_stats_t st1;
  struct ProfilerState ps;
  unsigned long long u0 = total_units(w, nloops);
  int64_t t0 = now_ns(CLOCK_MONOTONIC);
  int64_t c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
  int64_t w0 = worker_cpu_ns();
  run_t r = {0, 0, 0, 0, 0};

  uv_pprof__sampler_stats(&st0);
  if (phase == UV_PPROF) {
    fetch_profile(s->port, seconds);
    uv_pprof__sampler_stats(&st1);
    r.samples = (double)(st1.samples - st0.samples);
  } else if (phase == GPERFTOOLS) {
    ProfilerStart(gperf_file);
    sleep((unsigned)seconds);
    ProfilerGetCurrentState(&ps);
    ProfilerStop();
    r.samples = ps.samples_gathered;
  } else {
    sleep((unsigned)seconds);
  }
  r.units = (double)(total_units(w, nloops) - u0);
  r.wall_s = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
  r.cpu_s = (double)(now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9;
  r.worker_s = (double)(worker_cpu_ns() - w0) / 1e9;
  return r;
}

int main(int argc, char** argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 5;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int nloops = cpus < 1 ? 1 : cpus > MAX_LOOPS ? MAX_LOOPS : (int)cpus;
  static worker_t loops[MAX_LOOPS];
  static run_t runs[MAX_ROUNDS][NPHASES];
  double thr[MAX_ROUNDS];
  double eff[MAX_ROUNDS];
  double per[MAX_ROUNDS];
  char gperf_file[] = "/tmp/bench_cpu.XXXXXX";
  uv_pprof__sampler_stats_t st0;
  uv_pprof__sampler_stats_t st1;
  server_t server;
  double slope[MAX_ROUNDS];
  double fixed[MAX_ROUNDS];
  double worker_sample;
  double worker_window;
  double cold;
  double cold_samples;
  double worker_s = 0;
  double n;
  int r;
  int p;
  int i;
  int fd;

  /* gperftools reads its frequency when the library loads. */
  if (getenv("CPUPROFILE_FREQUENCY") == NULL) {
    setenv("CPUPROFILE_FREQUENCY", "100", 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 1;
  }
  if (seconds < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf(stderr, "usage: bench_cpu [seconds >= 1] [rounds 1..%d]\n",
            MAX_ROUNDS);
    return 2;
  }
  fd = mkstemp(gperf_file);
  if (fd < 0)
    return 1;
  close(fd);
  server_start(&server);
  for (i = 0; i < nloops; i++)
    worker_start(&loops[i], 2463534242u + (uint32_t)i);
  /* Warm-up, not measured: uv_pprof's first profile builds its symbol
   * tables (a one-time ~0.1 s, bench/README.md); gperftools' first start
   * sets up its own state. */
  fetch_profile(server.port, 1);
  ProfilerStart(gperf_file);
  sleep(1);
  ProfilerStop();

  uv_pprof__sampler_stats(&st0);
  for (r = 0; r < rounds; r++)
    for (p = 0; p < NPHASES; p++) {
      int phase = (p + r) % NPHASES;
      runs[r][phase] =
          run_phase(phase, loops, nloops, &server, seconds, gperf_file);
    }
  uv_pprof__sampler_stats(&st1);

  /* The worker's cost per sample and per window: windows of 1 s and of
   * 1 + seconds s, back to back (the worker stays up, its tables warm); the
   * slope is what a sample costs (the drain ticks included: they scale with
   * the window), the intercept what a window costs whatever its length.
   * Then one window after the worker has exited for idleness. */
  fetch_profile(server.port, 1);
  for (r = 0; r < rounds; r++) {
    double cs, ss, cl, sl;
    window_cost(server.port, 1, &cs, &ss);
    window_cost(server.port, 1 + seconds, &cl, &sl);
    slope[r] = sl > ss ? (cl - cs) / (sl - ss) : 0;
    fixed[r] = cs - slope[r] * ss;
  }
  worker_sample = probe_median(slope, rounds);
  worker_window = probe_median(fixed, rounds);
  sleep(UV_PPROF__WORKER_IDLE_MS / 1000 + 2);
  window_cost(server.port, 1, &cold, &cold_samples);
  cold -= worker_window + worker_sample * cold_samples;

  printf(
      "%d libuv loops (one per CPU), each running a hash + qsort unit "
      "in an idle callback;\n%d rounds of %d s per phase, phases in "
      "rotating order; medians over rounds.\n\n",
      nloops, rounds, seconds);
  printf("%-12s %12s %10s %14s %10s %10s %12s\n", "phase", "units/s", "cost",
         "units/CPU-s", "cost", "samples/s", "us/sample");
  for (p = 0; p < NPHASES; p++) {
    double ups[MAX_ROUNDS];
    double upc[MAX_ROUNDS];
    double sps[MAX_ROUNDS];
    for (r = 0; r < rounds; r++) {
      const run_t* x = &runs[r][p];
      const run_t* b = &runs[r][NONE];
      ups[r] = x->units / x->wall_s;
      upc[r] = x->units / x->cpu_s;
      sps[r] = x->samples / x->wall_s;
      thr[r] = 1 - ups[r] / (b->units / b->wall_s);
      eff[r] = 1 - upc[r] / (b->units / b->cpu_s);
      /* The extra CPU this phase spent per unit, per sample taken. */
      per[r] = x->samples > 0 ? (x->cpu_s / x->units - b->cpu_s / b->units) *
                                    x->units / x->samples * 1e6
                              : 0;
    }
    if (p == NONE)
      printf("%-12s %12.0f %10s %14.0f %10s %10s %12s\n", phase_names[p],
             probe_median(ups, rounds), "-", probe_median(upc, rounds), "-",
             "-", "-");
    else
      printf("%-12s %12.0f %9.2f%% %14.0f %9.2f%% %10.1f %12.1f\n",
             phase_names[p], probe_median(ups, rounds),
             100 * probe_median(thr, rounds), probe_median(upc, rounds),
             100 * probe_median(eff, rounds), probe_median(sps, rounds),
             probe_median(per, rounds));
  }
  for (r = 0; r < rounds; r++)
    worker_s += runs[r][UV_PPROF].worker_s;
  n = (double)(st1.samples - st0.samples);
  if (n > 0) {
    double handler = (double)(st1.handler_ns - st0.handler_ns) / n / 1e3;
    double worker = worker_s / n * 1e6;
    double delivery = delivery_us();
    double gperf = gperftools_sample_us(gperf_file);
    printf(
        "\nper sample, us of CPU   in the sampled thread   on a thread of "
        "its own   total\n");
    printf(
        "uv_pprof               %6.1f (handler %4.1f)     %6.1f             "
        "%6.1f\n",
        handler + delivery, handler, worker_sample * 1e6,
        handler + delivery + worker_sample * 1e6);
    printf(
        "gperftools             %6.1f                   %6.1f             "
        "%6.1f\n",
        gperf, 0.0, gperf);
    printf(
        "(the kernel's delivery and return of a signal: %.1f us, in both; "
        "uv_pprof's worker:\n%.1f us unwinding %.1f frames, the rest "
        "draining and adding to the profile; %.0f samples,\n%llu lost, "
        "%.1f KiB of stack copied per sample. gperftools: SIGPROF raised "
        "by hand\nfrom a shallow stack.)\n",
        delivery, (double)(st1.unwind_ns - st0.unwind_ns) / n / 1e3,
        (double)(st1.frames - st0.frames) / n, n,
        (unsigned long long)(st1.lost - st0.lost),
        (double)(st1.stack_bytes - st0.stack_bytes) / n / 1024);
    printf(
        "\nuv_pprof's worker per window, whatever its length: %.2f ms "
        "(arming, encoding,\nsymbolizing with warm tables); the first "
        "window after the worker idled out: +%.1f ms.\nIn the rounds "
        "above (%d s windows, warm or cold as they came): %.1f us per "
        "sample in all.\n",
        worker_window * 1e3, cold * 1e3, seconds, worker);
  }
  printf(
      "\ncost: 1 - the phase's rate / the baseline's rate in the same "
      "round. us/sample: the phase's\nextra process CPU per unit of "
      "work, times units, per sample (all of it, for either profiler).\n");

  for (i = 0; i < nloops; i++) {
    uv_async_send(&loops[i].stop);
    uv_thread_join(&loops[i].thread);
    uv_loop_close(&loops[i].loop);
  }
  uv_async_send(&server.wake);
  uv_thread_join(&server.thread);
  uv_loop_close(&server.loop);
  unlink(gperf_file);
  return 0;
}
