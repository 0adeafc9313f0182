/* The measuring host shared by the benchmarks that ask how late a host's
 * timers run while uv_pprof serves: a loop with uv_pprof on port 0 and a
 * 1 ms repeating timer, on its own thread, whose lateness is collected per
 * phase; a keep-alive HTTP client for the requests; and the median every
 * benchmark's table reports. */
#ifndef UV_PPROF_BENCH_PROBE_H
#define UV_PPROF_BENCH_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct probe_host_s {
  uv_loop_t loop;
  uv_timer_t tick;
  uv_async_t wake;
  uv_thread_t thread;
  uv_mutex_t mu;
  uint64_t last;
  int64_t* lateness_us;
  size_t nticks;
  int allocates; /* each tick mallocs and frees 4 KiB, as real hosts do */
  int port;
  uint64_t phase_start;
  uint64_t phase_idle;
} probe_host_t;

typedef struct {
  size_t ticks;
  int64_t p50, p99, max; /* lateness, microseconds */
  double ms;             /* the phase's length */
  double busy_ms;        /* the loop's time outside epoll_wait meanwhile */
} probe_stats_t;

/* Starts the host thread (uv_pprof quiet on port 0); exits on failure. */
void probe_start(probe_host_t* h, int allocates);
void probe_phase_begin(probe_host_t* h);
probe_stats_t probe_phase_end(probe_host_t* h);
/* Stops uv_pprof, joins the thread; returns uv_loop_close()'s result. */
int probe_stop(probe_host_t* h);

/* A connection to 127.0.0.1:port; exits on failure. */
int probe_connect(int port);
/* One GET on a keep-alive connection; returns the body's length. Exits
 * unless the answer has that status and a Content-Length. */
size_t probe_get(int fd, const char* path, int status);

/* CPU time so far (schedstat, ns) of this process's threads named `name`
 * ("uv_pprof": its worker). */
int64_t probe_thread_cpu_ns(const char* name);

/* The median of v[0..n), n >= 1; sorts v. */
double probe_median(double* v, int n);

#endif /* UV_PPROF_BENCH_PROBE_H */
