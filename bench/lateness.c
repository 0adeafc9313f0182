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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "uv_pprof.h"

#define MAX_TICKS 200000

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick;
  uv_async_t wake;
  uv_thread_t thread;
  uint64_t last;
  int64_t* lateness_us; /* one entry per tick of the current phase */
  size_t nticks;
  uv_mutex_t mu;
  int stop;
  int port;
} host_t;

static void on_tick(uv_timer_t* t) {
  host_t* h = t->data;
  uint64_t now = uv_hrtime();

  uv_mutex_lock(&h->mu);
  if (h->last != 0 && h->nticks < MAX_TICKS)
    h->lateness_us[h->nticks++] =
        ((int64_t)(now - h->last) - 1000000) / 1000;
  h->last = now;
  uv_mutex_unlock(&h->mu);
}

static void on_wake(uv_async_t* a) {
  host_t* h = a->data;

  uv_pprof_stop(&h->loop);
  uv_close((uv_handle_t*)&h->tick, NULL);
  uv_close((uv_handle_t*)&h->wake, NULL);
}

static void run_host(void* arg) {
  host_t* h = arg;

  uv_run(&h->loop, UV_RUN_DEFAULT);
}

static void host_start(host_t* h) {
  uv_pprof_options_t o;
  struct sockaddr_storage ss;

  memset(h, 0, sizeof(*h));
  h->lateness_us = calloc(MAX_TICKS, sizeof(int64_t));
  uv_mutex_init(&h->mu);
  uv_loop_init(&h->loop);
  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  if (uv_pprof_start_ex(&h->loop, &o) != 0)
    exit(1);
  uv_pprof_address(&h->loop, &ss);
  h->port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  uv_timer_init(&h->loop, &h->tick);
  h->tick.data = h;
  uv_timer_start(&h->tick, on_tick, 1, 1);
  uv_async_init(&h->loop, &h->wake, on_wake);
  h->wake.data = h;
  uv_thread_create(&h->thread, run_host, h);
}

static void phase_begin(host_t* h) {
  uv_mutex_lock(&h->mu);
  h->nticks = 0;
  h->last = 0;
  uv_mutex_unlock(&h->mu);
}

static int cmp_i64(const void* a, const void* b) {
  int64_t x = *(const int64_t*)a;
  int64_t y = *(const int64_t*)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  size_t ticks;
  int64_t p50, p99, max;
} stats_t;

static stats_t phase_end(host_t* h) {
  stats_t s = {0, 0, 0, 0};

  uv_mutex_lock(&h->mu);
  if (h->nticks > 0) {
    qsort(h->lateness_us, h->nticks, sizeof(int64_t), cmp_i64);
    s.ticks = h->nticks;
    s.p50 = h->lateness_us[h->nticks / 2];
    s.p99 = h->lateness_us[h->nticks * 99 / 100];
    s.max = h->lateness_us[h->nticks - 1];
  }
  uv_mutex_unlock(&h->mu);
  return s;
}

/* One keep-alive connection; returns the number of answered requests. */
static long hammer(int port, const char* path, double seconds, int gap_us,
                   double* mean_ms) {
  struct sockaddr_in sin;
  char req[256];
  char* buf = malloc(1 << 20);
  uint64_t end = uv_hrtime() + (uint64_t)(seconds * 1e9);
  uint64_t spent = 0;
  long n = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&sin, sizeof(sin)) != 0)
    exit(1);
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  while (uv_hrtime() < end) {
    uint64_t t0 = uv_hrtime();
    size_t have = 0;
    long want = -1;
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
      break;
    for (;;) {
      ssize_t r = read(fd, buf + have, (1 << 20) - have - 1);
      char* body;
      if (r <= 0)
        goto out;
      have += (size_t)r;
      buf[have] = '\0';
      body = strstr(buf, "\r\n\r\n");
      if (body != NULL && want < 0) {
        char* cl = strstr(buf, "Content-Length: ");
        want = (long)(body + 4 - buf) + (cl ? atol(cl + 16) : 0);
      }
      if (want >= 0 && (long)have >= want)
        break;
    }
    spent += uv_hrtime() - t0;
    n++;
    if (gap_us > 0)
      usleep((useconds_t)gap_us);
  }
out:
  close(fd);
  free(buf);
  *mean_ms = n ? spent / 1e6 / n : 0;
  return n;
}

int main(int argc, char** argv) {
  static const char* const paths[] = {
      "/debug/pprof/",
      "/debug/pprof/cmdline",
      "/debug/pprof/threadcreate",
      "/debug/pprof/threadcreate?debug=1",
      "/debug/pprof/block",
      "/debug/pprof/mutex",
      "/debug/pprof/nosuch",
  };
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  host_t h;
  stats_t base;
  size_t i;

  host_start(&h);
  phase_begin(&h);
  usleep((useconds_t)(seconds * 1e6));
  base = phase_end(&h);

  printf("host timer: 1 ms repeating; lateness in microseconds; %.0f s per "
         "phase\n\n",
         seconds);
  printf("%-42s %8s %9s %7s %7s %7s %12s\n", "phase", "requests", "ms/req",
         "ticks", "p50", "p99", "p99 added");
  printf("%-42s %8s %9s %7zu %7lld %7lld %12s\n", "quiet (baseline)", "-", "-",
         base.ticks, (long long)base.p50, (long long)base.p99, "-");
  for (i = 0; i < 2 * sizeof(paths) / sizeof(paths[0]); i++) {
    const char* path = paths[i / 2];
    int flood = i % 2;
    char label[64];
    double mean;
    long n;
    stats_t s;

    phase_begin(&h);
    n = hammer(h.port, path, seconds, flood ? 0 : 10000, &mean);
    s = phase_end(&h);
    snprintf(label, sizeof(label), "%s %s", flood ? "flood" : "paced", path);
    printf("%-42s %8ld %9.3f %7zu %7lld %7lld %12lld\n", label, n, mean,
           s.ticks, (long long)s.p50, (long long)s.p99,
           (long long)(s.p99 - base.p99));
  }
  uv_async_send(&h.wake);
  uv_thread_join(&h.thread);
  printf("\nuv_loop_close: %d\n", uv_loop_close(&h.loop));
  free(h.lateness_us);
  return 0;
}
