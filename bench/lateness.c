/* bench_lateness: how much uv_pprof delays the host's own timers while it
 * serves requests. The host loop runs on its own thread with a 1 ms repeating
 * timer and records how late each tick fires. The same run measures a quiet
 * phase (server started, no requests: the baseline) and then, for each
 * endpoint, two phases in which a client thread sends that endpoint's
 * requests on one keep-alive connection: "paced" with 10 ms between requests
 * (far more than any scraper), and "flood", back to back, where on a 2-core
 * machine the client, the loop and uv_pprof's worker compete for the CPUs.
 * The table gives the timer's lateness percentiles per phase and the p99
 * added over the baseline (the target, paced, is <= 1 ms).
 *
 * Usage: bench_lateness [seconds per phase, default 3]
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "probe.h"

/* Requests on one keep-alive connection for `seconds`, gap_us apart;
 * returns how many, and their mean time. */
static long hammer(int port, const char* path, int status, double seconds,
                   int gap_us, double* mean_ms) {
  uint64_t end = uv_hrtime() + (uint64_t)(seconds * 1e9);
  uint64_t spent = 0;
  long n = 0;
  int fd = probe_connect(port);

  while (uv_hrtime() < end) {
    uint64_t t0 = uv_hrtime();
    probe_get(fd, path, status);
    spent += uv_hrtime() - t0;
    n++;
    if (gap_us > 0)
      usleep((useconds_t)gap_us);
  }
  close(fd);
  *mean_ms = n ? spent / 1e6 / n : 0;
  return n;
}

int main(int argc, char** argv) {
  static const struct {
    const char* path;
    int status;
  } paths[] = {
      {"/debug/pprof/", 200},
      {"/debug/pprof/cmdline", 200},
      {"/debug/pprof/threadcreate", 200},
      {"/debug/pprof/threadcreate?debug=1", 200},
      {"/debug/pprof/block", 200},
      {"/debug/pprof/mutex", 200},
      {"/debug/pprof/nosuch", 404},
  };
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  probe_host_t h;
  probe_stats_t base;
  size_t i;

  probe_start(&h, 0);
  probe_phase_begin(&h);
  usleep((useconds_t)(seconds * 1e6));
  base = probe_phase_end(&h);

  printf(
      "host timer: 1 ms repeating; lateness in microseconds; %.0f s per "
      "phase\n\n",
      seconds);
  printf("%-42s %8s %9s %7s %7s %7s %12s\n", "phase", "requests", "ms/req",
         "ticks", "p50", "p99", "p99 added");
  printf("%-42s %8s %9s %7zu %7lld %7lld %12s\n", "quiet (baseline)", "-", "-",
         base.ticks, (long long)base.p50, (long long)base.p99, "-");
  for (i = 0; i < 2 * sizeof(paths) / sizeof(paths[0]); i++) {
    int flood = i % 2;
    char label[64];
    double mean;
    long n;
    probe_stats_t s;

    probe_phase_begin(&h);
    n = hammer(h.port, paths[i / 2].path, paths[i / 2].status, seconds,
               flood ? 0 : 10000, &mean);
    s = probe_phase_end(&h);
    snprintf(label, sizeof(label), "%s %s", flood ? "flood" : "paced",
             paths[i / 2].path);
    printf("%-42s %8ld %9.3f %7zu %7lld %7lld %12lld\n", label, n, mean,
           s.ticks, (long long)s.p50, (long long)s.p99,
           (long long)(s.p99 - base.p99));
  }
  printf("\nuv_loop_close: %d\n", probe_stop(&h));
  return 0;
}
