/* Every endpoint answers. The sweep takes router.c's table itself (so a new
 * row is swept without a change here) and asks every route with every
 * parameter set below, many at once on raw sockets: each must answer 200 or
 * a 4xx — never nothing, never a 5xx — by the end of its window (seconds=N,
 * or the CPU profile's default) plus a bound that only catches a hang; the
 * largest overrun is printed. A 200 proto must decode. Then `go tool pprof`
 * reads the block and mutex deltas, which used to hang. */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "profile.pb-c.h"
#include "router.h"
#include "task.h"

/* Past its window, what an answer may take before it counts as a hang: a
 * loaded 2-core machine running the sanitized build is slow, a hang is
 * for ever. */
#define HANG_MS 60000

static const char* const params[] = {
    "",
    "debug=1",
    "debug=2",
    "seconds=1",
    "gc=1",
    "debug=1&seconds=1",
    "gc=1&seconds=1",
    "seconds=abc",
    "seconds=-1",
    "seconds=99999999999999999999",
    "debug=x",
    "debug=2&gc=1&seconds=1",
};

typedef struct {
  const uv_pprof__route_t* route;
  const char* query;
  char path[160];
  int64_t window_ms;
  int cpu; /* holds one of the CPU profile's window slots */
  int fd;  /* -1: not started or done */
  uint64_t start;
  uint64_t end;
  uv_pprof__buf_t answer;
  int done;
} probe_t;

/* The window a request asks for, as its handler reads it. */
static int64_t window_of(const uv_pprof__route_t* route, const char* query) {
  char v[64];
  long long n;

  if (strcmp(route->name, "profile") == 0) {
    n = uv_pprof__cpu_seconds(query);
    return n <= UV_PPROF__CPU_MAX_SECONDS ? n * 1000 : 0;
  }
  if ((route->flags & UV_PPROF__ROUTE_SECONDS) &&
      uv_pprof__query_get(query, "seconds", v, sizeof(v)) &&
      uv_pprof__parse_int(v, &n) == 0 && n > 0 && n <= 3600)
    return n * 1000;
  return 0;
}

static void probe_send(probe_t* p, int port) {
  char req[512];

  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           p->path);
  p->fd = tcp_connect(port);
  p->start = uv_hrtime();
  ASSERT_EQ(tcp_send(p->fd, req, strlen(req)), 0);
}

/* Reads what is there; 1 when the answer is complete (the server closed). */
static int probe_read(probe_t* p) {
  char chunk[65536];
  ssize_t n = recv(p->fd, chunk, sizeof(chunk), MSG_DONTWAIT);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (n > 0) {
    ASSERT_EQ(uv_pprof__buf_append(&p->answer, chunk, (size_t)n), 0);
    return 0;
  }
  p->end = uv_hrtime();
  close(p->fd);
  p->fd = -1;
  p->done = 1;
  return 1;
}

/* Longest window first. */
static int by_window(const void* a, const void* b) {
  const probe_t* pa = *(const probe_t* const*)a;
  const probe_t* pb = *(const probe_t* const*)b;

  return (pb->window_ms > pa->window_ms) - (pb->window_ms < pa->window_ms);
}

static void check(const probe_t* p) {
  const char* base = p->answer.base;
  const char* body;
  int status;

  if (base == NULL || strncmp(base, "HTTP/1.1 ", 9) != 0 ||
      (body = strstr(base, "\r\n\r\n")) == NULL) {
    fprintf(stderr, "%s: no answer\n", p->path);
    ASSERT(0);
  }
  body += 4;
  status = atoi(base + 9);
  if (status != 200 && (status < 400 || status > 499)) {
    fprintf(stderr, "%s: answered %d:\n%s\n", p->path, status, base);
    ASSERT(0);
  }
  if (status == 200 &&
      memmem(base, (size_t)(body - base),
             "\r\nContent-Type: application/octet-stream\r\n", 42) != NULL) {
    Perftools__Profiles__Profile* prof =
        profile_decode(body, p->answer.len - (size_t)(body - base));
    perftools__profiles__profile__free_unpacked(prof, NULL);
  }
}

TEST_IMPL(sweep_every_endpoint) {
  enum { MAX_IN_FLIGHT = 24 };
  uv_pprof_options_t o;
  test_host_t* h;
  size_t nroutes;
  const uv_pprof__route_t* const* routes = uv_pprof__route_table(&nroutes);
  size_t nparams = sizeof(params) / sizeof(params[0]);
  size_t n = nroutes * nparams;
  probe_t* probes = calloc(n, sizeof(*probes));
  probe_t** order = calloc(n, sizeof(*order));
  size_t done = 0;
  size_t in_flight = 0;
  size_t cpu = 0;
  size_t i;
  size_t worst = 0;
  double worst_ms = -1e9;

  ASSERT(probes != NULL && order != NULL);
  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.timeline_seconds = 1; /* so that its route answers 200 too */
  h = host_start(&o);
  for (i = 0; i < n; i++) {
    probe_t* p = &probes[i];
    p->route = routes[i / nparams];
    p->query = params[i % nparams];
    snprintf(p->path, sizeof(p->path), "%s%s%s", p->route->path,
             p->query[0] != '\0' ? "?" : "", p->query);
    p->window_ms = window_of(p->route, p->query);
    p->cpu = strcmp(p->route->name, "profile") == 0 && p->window_ms > 0;
    p->fd = -1;
    order[i] = p;
  }
  /* The longest windows first, all at once as far as the CPU profile's
   * slots go; the rest around them. */
  qsort(order, n, sizeof(*order), by_window);
  while (done < n) {
    struct pollfd fds[MAX_IN_FLIGHT];
    probe_t* which[MAX_IN_FLIGHT];
    nfds_t k = 0;
    uint64_t now;

    for (i = 0; i < n && in_flight < MAX_IN_FLIGHT; i++) {
      probe_t* p = order[i];
      if (p->start != 0)
        continue;
      if (p->cpu && cpu >= UV_PPROF__CPU_MAX_WINDOWS)
        continue;
      probe_send(p, host_port(h));
      in_flight++;
      cpu += p->cpu;
    }
    now = uv_hrtime();
    for (i = 0; i < n; i++) {
      probe_t* p = &probes[i];
      if (p->fd < 0)
        continue;
      if (now - p->start > (uint64_t)(p->window_ms + HANG_MS) * 1000000) {
        fprintf(stderr, "%s: no answer after %lld s\n", p->path,
                (long long)((now - p->start) / 1000000000));
        ASSERT(0);
      }
      fds[k].fd = p->fd;
      fds[k].events = POLLIN;
      which[k++] = p;
    }
    ASSERT_GE(poll(fds, k, 1000), 0);
    for (i = 0; i < k; i++) {
      probe_t* p = which[i];
      double over;
      if (fds[i].revents == 0 || !probe_read(p))
        continue;
      check(p);
      over = (double)(p->end - p->start) / 1e6 - (double)p->window_ms;
      if (over > worst_ms) {
        worst_ms = over;
        worst = (size_t)(p - probes);
      }
      in_flight--;
      cpu -= p->cpu;
      done++;
    }
  }
  fprintf(stderr,
          "%zu requests answered; the largest overrun of a window: "
          "%.0f ms (%s)\n",
          n, worst_ms, probes[worst].path);
  for (i = 0; i < n; i++)
    uv_pprof__buf_free(&probes[i].answer);
  free(order);
  free(probes);
  host_stop(h);
  return 0;
}

/* `go tool pprof URL?seconds=N` on block and mutex, as on Go's. */
TEST_IMPL(sweep_block_mutex_delta) {
  static const char* const names[] = {"block", "mutex", NULL};
  test_host_t* h = host_start(NULL);
  size_t i;

  for (i = 0; names[i] != NULL; i++) {
    char url[256];
    char want[64];
    const char* args[] = {"-raw", url, NULL};
    run_result_t r;

    snprintf(url, sizeof(url), "%s/debug/pprof/%s?seconds=1", host_base(h),
             names[i]);
    go_pprof(args, &r);
    ASSERT_CONTAINS(r.out, "PeriodType: contentions count\n");
    ASSERT_CONTAINS(r.out, "\nDuration: ");
    snprintf(want, sizeof(want),
             "Samples:\ncontentions/count delay/nanoseconds\n");
    ASSERT_CONTAINS(r.out, want);
    run_free(&r);
  }
  host_stop(h);
  return 0;
}
