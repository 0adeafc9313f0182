/* /metrics and the memory timeline through their real clients: a real
 * Prometheus (started here on loopback with its own configuration and data
 * directory) scraping uv_pprof_metricshost, asked through its HTTP API;
 * promtool's linter; curl; headless Chromium, whose screenshots (decoded by
 * png.c) must not be blank. The host's facts (handles per type and loop,
 * requests in flight, 64 MiB live, a busy and an idle loop) are known
 * exactly. Every process started here is stopped by its pid, and dies with
 * the test if an assertion aborts it (PR_SET_PDEATHSIG). */
#include <dirent.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "png.h"
#include "task.h"

#define MIB (1024.0 * 1024.0)
#define LIVE_MIB 64.0 /* metricshost keeps this much live */

/* ---- the host ------------------------------------------------------------ */

typedef struct {
  child_t child;
  int port;
  char main_loop[32];
  char second_loop[32];
  char base[64];
} host_t;

static void host_run(host_t* h, const char* const env[]) {
  const char* argv[] = {UV_PPROF_METRICSHOST, NULL};
  char line[256];

  child_start(&h->child, "metricshost", argv, env);
  child_line(&h->child, line, sizeof(line), 30000);
  if (sscanf(line, "port=%d main=%31s second=%31s", &h->port, h->main_loop,
             h->second_loop) != 3) {
    child_dump_log(&h->child);
    ASSERT(0);
  }
  snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", h->port);
}

/* curl -s -i of the host's path. */
static void host_get(const host_t* h, const char* path, run_result_t* r) {
  char url[256];
  const char* argv[] = {"curl", "-s", "-i", "--max-time", "30", url, NULL};

  snprintf(url, sizeof(url), "%s%s", h->base, path);
  run_cmd(argv, NULL, 40000, r);
  ASSERT_EQ(r->status, 0);
}

/* Resident bytes of the host now, from /proc. */
static double host_rss(const host_t* h) {
  char path[64];
  unsigned long size;
  unsigned long resident;
  FILE* f;

  snprintf(path, sizeof(path), "/proc/%d/statm", (int)h->child.pid);
  f = fopen(path, "r");
  ASSERT(f != NULL);
  ASSERT_EQ(fscanf(f, "%lu %lu", &size, &resident), 2);
  fclose(f);
  return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static const char* const jemalloc_env[] = {
    "UV_PPROF=127.0.0.1:0", "LD_PRELOAD=" UV_PPROF_JEMALLOC_SO, NULL};

/* ---- Prometheus ---------------------------------------------------------- */

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int port;

  ASSERT_GE(fd, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, (struct sockaddr*)&a, sizeof(a)), 0);
  ASSERT_EQ(getsockname(fd, (struct sockaddr*)&a, &len), 0);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* Prometheus answers /-/ready with 200 (it may not even listen yet). */
static int prom_ready(int port) {
  char url[128];
  const char* argv[] = {"curl", "-s",           "-o", "/dev/null",
                        "-w",   "%{http_code}", url,  NULL};
  run_result_t r;
  int ready;

  snprintf(url, sizeof(url), "http://127.0.0.1:%d/-/ready", port);
  run_cmd(argv, NULL, 10000, &r);
  ready = strcmp(r.out, "200") == 0;
  run_free(&r);
  return ready;
}

/* An instant query; returns the number of series in the answer and the
 * first one's value in *v. */
static int prom_query(int port, const char* query, double* v) {
  char url[128];
  char arg[1024];
  const char* argv[] = {"curl",       "-s", "-G",
                        "--max-time", "10", "--data-urlencode",
                        arg,          url,  NULL};
  run_result_t r;
  const char* p;
  int n = 0;

  snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query", port);
  snprintf(arg, sizeof(arg), "query=%s", query);
  run_cmd(argv, NULL, 20000, &r);
  ASSERT_EQ(r.status, 0);
  if (strstr(r.out, "\"status\":\"success\"") == NULL) {
    fprintf(stderr, "query %s: %s\n", query, r.out);
    ASSERT(0);
  }
  for (p = r.out; (p = strstr(p, "\"value\":[")) != NULL; p++)
    n++;
  p = strstr(r.out, "\"value\":[");
  if (p != NULL && v != NULL) {
    p = strstr(p, ",\"");
    ASSERT(p != NULL);
    *v = strtod(p + 2, NULL);
  }
  run_free(&r);
  return n;
}

/* The value of a query that must answer exactly one series. */
static double prom_value(int port, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double prom_value(int port, const char* fmt, ...) {
  char q[1024];
  va_list ap;
  double v = 0;
  int n;

  va_start(ap, fmt);
  vsnprintf(q, sizeof(q), fmt, ap);
  va_end(ap);
  n = prom_query(port, q, &v);
  if (n != 1) {
    fprintf(stderr, "query %s: %d series\n", q, n);
    ASSERT(0);
  }
  return v;
}

static void promtool_lint(const char* body, size_t len);

/* uv_pprof_handles of one loop and handle type, as Prometheus has it. */
static double prom_handles(int port, const char* loop, const char* type) {
  return prom_value(port, "uv_pprof_handles{loop=\"%s\",type=\"uv_%s_t\"}",
                    loop, type);
}

/* Answers Prometheus will find counted: three of cmdline, one 404. */
static void make_answers(const host_t* h) {
  run_result_t r;
  int i;

  for (i = 0; i < 3; i++) {
    host_get(h, "/debug/pprof/cmdline", &r);
    ASSERT_EQ(http_status(&r), 200);
    run_free(&r);
  }
  host_get(h, "/debug/pprof/nosuchprofile", &r);
  ASSERT_EQ(http_status(&r), 404);
  run_free(&r);
}

/* Starts Prometheus (its own configuration and data directory, on a free
 * port) scraping h every second; returns its port once three scrapes of the
 * main loop's idle time are in (bounded: 120 s). */
static int prom_start(child_t* prom, const host_t* h) {
  char config[512];
  char data[512];
  char config_arg[600];
  char data_arg[600];
  char listen_arg[64];
  const char* argv[] = {"/usr/bin/prometheus", config_arg, data_arg, listen_arg,
                        "--log.level=warn",    NULL};
  const char* m = h->main_loop;
  FILE* f;
  int pport;
  int i;

  snprintf(config, sizeof(config), "%s/prometheus.yml", test_tmpdir());
  snprintf(data, sizeof(data), "%s/prometheus-data", test_tmpdir());
  f = fopen(config, "w");
  ASSERT(f != NULL);
  fprintf(f,
          "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
          "scrape_configs:\n  - job_name: uv_pprof\n    static_configs:\n"
          "      - targets: ['127.0.0.1:%d']\n",
          h->port);
  fclose(f);
  pport = free_port();
  snprintf(config_arg, sizeof(config_arg), "--config.file=%s", config);
  snprintf(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s", data);
  snprintf(listen_arg, sizeof(listen_arg), "--web.listen-address=127.0.0.1:%d",
           pport);
  child_start(prom, "prometheus", argv, NULL);
  for (i = 0; i < 240; i++) {
    char q[256];
    double n = 0;
    snprintf(q, sizeof(q),
             "count_over_time(uv_pprof_loop_idle_seconds_total{loop=\"%s\"}"
             "[1m])",
             m);
    if (prom_ready(pport) && prom_query(pport, q, &n) == 1 && n >= 3)
      break;
    usleep(500000);
  }
  if (i == 240) {
    child_dump_log(prom);
    ASSERT(0);
  }
  return pport;
}

/* Handles by loop and type, and requests in flight: exactly what the host
 * made. */
static void check_prom_handles(int pport, const host_t* h) {
  const char* m = h->main_loop;
  const char* s = h->second_loop;

  ASSERT_EQ(prom_query(pport, "uv_pprof_handles", NULL), 5);
  ASSERT_EQ(prom_handles(pport, m, "timer"), 5);
  ASSERT_EQ(prom_handles(pport, m, "idle"), 3);
  ASSERT_EQ(prom_handles(pport, m, "prepare"), 2);
  ASSERT_EQ(prom_handles(pport, s, "timer"), 4);
  ASSERT_EQ(prom_handles(pport, s, "idle"), 1);
  ASSERT_EQ(prom_value(pport, "uv_pprof_handles_missing_loops"), 0);
  /* Requests in flight: the threadpool work that never ends. */
  ASSERT_EQ(prom_value(pport, "uv_pprof_loop_active_requests{loop=\"%s\"}", m),
            2);
  ASSERT_EQ(prom_value(pport, "uv_pprof_loop_active_requests{loop=\"%s\"}", s),
            1);
}

/* The second loop never waits (its idle callback sleeps); the main loop
 * mostly does. */
static void check_prom_loops(int pport, const host_t* h) {
  const char* m = h->main_loop;
  const char* s = h->second_loop;
  double v;

  v = prom_value(pport, "uv_pprof_loop_utilization_ratio{loop=\"%s\"}", s);
  ASSERT_GT(v, 0.9);
  ASSERT_LE(v, 1.0);
  v = prom_value(pport, "uv_pprof_loop_utilization_ratio{loop=\"%s\"}", m);
  ASSERT_GE(v, 0.0);
  ASSERT_LT(v, 0.5);
  ASSERT_GT(
      prom_value(pport,
                 "max_over_time(uv_pprof_loop_idle_seconds_total{loop="
                 "\"%s\"}[1m]) - min_over_time(uv_pprof_loop_idle_seconds_"
                 "total{loop=\"%s\"}[1m])",
                 m, m),
      0);
  ASSERT_LT(
      prom_value(pport,
                 "max_over_time(uv_pprof_loop_idle_seconds_total{loop="
                 "\"%s\"}[1m]) - min_over_time(uv_pprof_loop_idle_seconds_"
                 "total{loop=\"%s\"}[1m])",
                 s, s),
      0.1);
}

/* jemalloc, preloaded: its figures, the 64 MiB block among them; RSS. */
static void check_prom_memory(int pport, const host_t* h) {
  double v;

  ASSERT_EQ(prom_value(pport,
                       "uv_pprof_allocator_info{allocator=\"jemalloc\","
                       "object=\"libjemalloc.so.2\"}"),
            1);
  v = prom_value(pport, "uv_pprof_jemalloc_allocated_bytes");
  ASSERT_GE(v, LIVE_MIB * MIB);
  ASSERT_LT(v, (LIVE_MIB + 32) * MIB);
  ASSERT_GE(prom_value(pport,
                       "uv_pprof_jemalloc_active_bytes - "
                       "uv_pprof_jemalloc_allocated_bytes"),
            0);
  ASSERT_GE(prom_value(pport,
                       "uv_pprof_jemalloc_mapped_bytes - "
                       "uv_pprof_jemalloc_active_bytes"),
            0);
  ASSERT_EQ(prom_value(pport,
                       "uv_pprof_heap_alloc_bytes - "
                       "uv_pprof_jemalloc_allocated_bytes"),
            0);
  ASSERT_GE(prom_value(pport, "uv_pprof_jemalloc_allocated_bytes_total"),
            LIVE_MIB * MIB);
  ASSERT_EQ(prom_query(pport, "uv_pprof_glibc_mallinfo2_arena_bytes", NULL), 0);
  /* RSS: the live block is resident; /proc agrees. */
  v = prom_value(pport, "uv_pprof_process_resident_memory_bytes");
  ASSERT_GE(v, LIVE_MIB * MIB);
  ASSERT_GT(v, host_rss(h) / 2);
  ASSERT_LT(v, host_rss(h) * 2);
}

/* uv_pprof's own answers, by endpoint. */
static void check_prom_requests(int pport) {
  ASSERT_EQ(prom_value(pport,
                       "uv_pprof_requests_total{endpoint=\"cmdline\","
                       "code=\"2xx\"}"),
            3);
  ASSERT_EQ(prom_value(pport,
                       "uv_pprof_requests_total{endpoint=\"other\","
                       "code=\"4xx\"}"),
            1);
  ASSERT_GE(prom_value(pport,
                       "uv_pprof_requests_total{endpoint=\"metrics\","
                       "code=\"2xx\"}"),
            2);
  ASSERT_EQ(prom_value(pport,
                       "uv_pprof_request_duration_seconds_count{"
                       "endpoint=\"cmdline\"}"),
            3);
  ASSERT_EQ(prom_value(pport,
                       "uv_pprof_request_duration_seconds_bucket{"
                       "endpoint=\"cmdline\",le=\"+Inf\"}"),
            3);
  ASSERT_GT(prom_value(pport,
                       "histogram_quantile(0.5, "
                       "uv_pprof_request_duration_seconds_bucket{endpoint="
                       "\"cmdline\"})"),
            0);
  ASSERT_EQ(prom_query(pport, "uv_pprof_requests_total{code=\"5xx\"}", NULL),
            0);
}

/* The jemalloc figures' names pass promtool's linter too. */
static void lint_jemalloc_metrics(const host_t* h) {
  const char* body;
  size_t len;
  run_result_t r;

  host_get(h, "/metrics", &r);
  ASSERT_EQ(http_status(&r), 200);
  body = http_body(&r, &len);
  ASSERT_CONTAINS(body, "\nuv_pprof_jemalloc_retained_bytes ");
  promtool_lint(body, len);
  run_free(&r);
}

/* Stall detection's series: every iteration of the second loop spends
 * about 5 ms in its idle callback, so Prometheus' median of its busy-time
 * histogram lies in that bucket; the counters exist for both loops. */
static void check_prom_stalls(int pport, const host_t* h) {
  const char* m = h->main_loop;
  const char* s = h->second_loop;
  double v;

  v = prom_value(pport,
                 "histogram_quantile(0.5, rate(uv_pprof_loop_iteration_busy_"
                 "seconds_bucket{loop=\"%s\"}[1m]))",
                 s);
  ASSERT_GT(v, 0.002);
  ASSERT_LE(v, 0.01);
  ASSERT_GT(prom_value(pport,
                       "uv_pprof_loop_iteration_busy_seconds_count{loop="
                       "\"%s\"}",
                       m),
            0);
  ASSERT_GE(prom_value(pport, "uv_pprof_loop_stalls_total{loop=\"%s\"}", m), 0);
  ASSERT_GE(
      prom_value(pport, "uv_pprof_loop_stall_seconds_total{loop=\"%s\"}", s),
      0);
}

TEST_IMPL(metrics_prometheus) {
  host_t h;
  child_t prom;
  int pport;

  host_run(&h, jemalloc_env);
  make_answers(&h);
  pport = prom_start(&prom, &h);
  ASSERT_EQ(prom_value(pport, "up{job=\"uv_pprof\"}"), 1);
  check_prom_handles(pport, &h);
  check_prom_loops(pport, &h);
  check_prom_stalls(pport, &h);
  check_prom_memory(pport, &h);
  check_prom_requests(pport);
  lint_jemalloc_metrics(&h);
  child_stop(&prom);
  child_stop(&h.child);
  return 0;
}

/* ---- the exposition text ------------------------------------------------- */

/* The value of the sample line that starts with `prefix` (name and labels). */
static double sample(const char* text, const char* prefix) {
  const char* p = text;
  size_t n = strlen(prefix);

  while ((p = strstr(p, prefix)) != NULL) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ')
      return strtod(p + n + 1, NULL);
    p += n;
  }
  fprintf(stderr, "no sample %s in:\n%s\n", prefix, text);
  ASSERT(0);
  return 0;
}

/* promtool's linter finds nothing to say about the exposition text. */
static void promtool_lint(const char* body, size_t len) {
  char file[512];
  char cmd[600];
  run_result_t lint;
  FILE* f;

  snprintf(file, sizeof(file), "%s/metrics.txt", test_tmpdir());
  f = fopen(file, "w");
  ASSERT(f != NULL);
  ASSERT_EQ(fwrite(body, 1, len, f), len);
  fclose(f);
  snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", file);
  run_sh(cmd, 30000, &lint);
  if (lint.status != 0 || lint.out[0] != '\0') {
    fprintf(stderr, "promtool (%d): %s\n", lint.status, lint.out);
    ASSERT(0);
  }
  run_free(&lint);
}

TEST_IMPL(metrics_format) {
  const char* const env[] = {"UV_PPROF=127.0.0.1:0", NULL};
  host_t h;
  run_result_t r;
  char line[128];
  const char* body;
  size_t len;

  host_run(&h, env);
  host_get(&h, "/metrics", &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"),
                "text/plain; version=0.0.4; charset=utf-8");
  body = http_body(&r, &len);

  promtool_lint(body, len);

  /* Every family has HELP and TYPE before its samples. */
  ASSERT_CONTAINS(body, "# HELP uv_pprof_handles ");
  ASSERT_CONTAINS(body, "# TYPE uv_pprof_handles gauge\n");
  ASSERT_CONTAINS(body, "# TYPE uv_pprof_loop_idle_seconds_total counter\n");
  ASSERT_CONTAINS(body, "# TYPE uv_pprof_request_duration_seconds histogram\n");

  /* Without jemalloc: glibc's figures under their own names. */
  ASSERT_CONTAINS(body,
                  "\nuv_pprof_allocator_info{allocator=\"glibc\","
                  "object=\"libc.so.6\",version=\"\"} 1\n");
  ASSERT_NOT_CONTAINS(body, "jemalloc_");
  ASSERT_GE(sample(body, "uv_pprof_glibc_mallinfo2_hblkhd_bytes"),
            LIVE_MIB * MIB);
  ASSERT_EQ(sample(body, "uv_pprof_heap_alloc_bytes"),
            sample(body, "uv_pprof_glibc_mallinfo2_uordblks_bytes") +
                sample(body, "uv_pprof_glibc_mallinfo2_hblkhd_bytes"));
  ASSERT_GE(sample(body, "uv_pprof_process_resident_memory_bytes"),
            LIVE_MIB * MIB);
  snprintf(line, sizeof(line),
           "uv_pprof_handles{loop=\"%s\",type=\"uv_timer_t\"}", h.main_loop);
  ASSERT_EQ(sample(body, line), 5);
  snprintf(line, sizeof(line),
           "uv_pprof_handles{loop=\"%s\",type=\"uv_idle_t\"}", h.second_loop);
  ASSERT_EQ(sample(body, line), 1);
  snprintf(line, sizeof(line), "uv_pprof_loop_active_requests{loop=\"%s\"}",
           h.main_loop);
  ASSERT_EQ(sample(body, line), 2);
  run_free(&r);

  /* The index page links it. */
  host_get(&h, "/debug/pprof/", &r);
  ASSERT_CONTAINS(http_body(&r, &len), "<a href=\"/metrics\">/metrics</a>");
  run_free(&r);
  child_stop(&h.child);
  return 0;
}

/* ---- the timeline -------------------------------------------------------- */

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS+HH:MM". */
static long long parse_time(const char* s) {
  struct tm tm;
  int oh;
  int om;
  char sign;
  const char* rest;

  memset(&tm, 0, sizeof(tm));
  rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  ASSERT(rest != NULL);
  ASSERT_EQ(sscanf(rest, "%c%2d:%2d", &sign, &oh, &om), 3);
  ASSERT(sign == '+' || sign == '-');
  ASSERT_EQ(strlen(rest), 6);
  return (long long)timegm(&tm) -
         (sign == '+' ? 1 : -1) * (oh * 3600 + om * 60);
}

typedef struct {
  long long time;
  double alloc;
  double inuse;
  long long goroutines;
  double rss_mb;
} csv_row_t;

/* Parses the CSV body; returns the number of rows (at most max). */
static size_t parse_csv(const char* body, csv_row_t* rows, size_t max) {
  static const char header[] =
      "time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb\n";
  const char* p = body;
  size_t n = 0;

  ASSERT_STARTS_WITH(p, header);
  p += strlen(header);
  while (*p != '\0' && n < max) {
    char when[40];
    const char* eol = strchr(p, '\n');
    ASSERT(eol != NULL);
    ASSERT_EQ(sscanf(p, "%39[^,],%lf,%lf,%lld,%lf", when, &rows[n].alloc,
                     &rows[n].inuse, &rows[n].goroutines, &rows[n].rss_mb),
              5);
    rows[n].time = parse_time(when);
    n++;
    p = eol + 1;
  }
  return n;
}

static int cmp_ll(const void* a, const void* b) {
  long long x = *(const long long*)a;
  long long y = *(const long long*)b;
  return (x > y) - (x < y);
}

TEST_IMPL(timeline_csv) {
  /* Every allocation sampled: the ring must not be among them. */
  const char* const env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=2",
                             "LD_PRELOAD=" UV_PPROF_JEMALLOC_SO,
                             "MALLOC_CONF=prof:true,lg_prof_sample:0", NULL};
  host_t h;
  run_result_t r;
  csv_row_t rows[64];
  long long diffs[64];
  size_t n = 0;
  size_t i;
  size_t len;
  int tries;

  host_run(&h, env);
  /* Six rows: ten seconds at one every 2 s (bounded: 120 s). */
  for (tries = 0; tries < 240; tries++) {
    host_get(&h, "/debug/pprof/timeline", &r);
    ASSERT_EQ(http_status(&r), 200);
    ASSERT_STR_EQ(http_header(&r, "Content-Type"), "text/plain; charset=utf-8");
    n = parse_csv(http_body(&r, &len), rows, 64);
    run_free(&r);
    if (n >= 6)
      break;
    usleep(500000);
  }
  ASSERT_GE(n, 6);
  for (i = 0; i < n; i++) {
    /* The goroutine profile's count: every handle of both loops. */
    ASSERT_EQ(rows[i].goroutines, 15);
    ASSERT_GE(rows[i].alloc, LIVE_MIB * MIB);
    ASSERT_LT(rows[i].alloc, (LIVE_MIB + 32) * MIB);
    ASSERT_GE(rows[i].inuse, rows[i].alloc);
    ASSERT_GE(rows[i].rss_mb, LIVE_MIB);
    ASSERT_GT(rows[i].rss_mb * MIB, host_rss(&h) / 2);
    ASSERT_LT(rows[i].rss_mb * MIB, host_rss(&h) * 2);
    if (i > 0) {
      diffs[i - 1] = rows[i].time - rows[i - 1].time;
      /* never faster than the interval (whole seconds: -1) */
      ASSERT_GE(diffs[i - 1], 1);
    }
  }
  qsort(diffs, n - 1, sizeof(diffs[0]), cmp_ll);
  ASSERT_EQ(diffs[(n - 1) / 2], 2);

  host_get(&h, "/debug/pprof/goroutine?debug=1", &r);
  ASSERT_STARTS_WITH(http_body(&r, &len), "goroutine profile: total 15\n");
  run_free(&r);

  /* The ring (473 KiB) is uv_pprof's memory, mapped, not in the host's
   * heap: no record under the timeline's start is more than its small
   * state. */
  host_get(&h, "/debug/pprof/heap?debug=1", &r);
  {
    const char* line = http_body(&r, &len);
    long long bytes = 0;
    ASSERT_CONTAINS(line, "\tmain+0x"); /* the host's 64 MiB */
    while (*line != '\0') {
      const char* eol = strchr(line, '\n');
      size_t span = eol != NULL ? (size_t)(eol - line) : strlen(line);
      char one[512];
      long long count;
      snprintf(one, sizeof(one), "%.*s", (int)span, line);
      if (sscanf(one, "%lld: %lld [", &count, &bytes) != 2 &&
          strstr(one, "\tuv_pprof__timeline_start+") != NULL)
        ASSERT_LT(bytes, 4096);
      line += span + (eol != NULL);
    }
  }
  run_free(&r);
  child_stop(&h.child);
  return 0;
}

TEST_IMPL(timeline_errors) {
  const char* const off[] = {"UV_PPROF=127.0.0.1:0", NULL};
  const char* const on[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=1",
                            NULL};
  static const char* const bad[] = {"abc", "-1", "1.5", "86401", "1e3"};
  host_t h;
  run_result_t r;
  size_t len;
  size_t i;
  const char* body;

  /* Off: 404 saying how to turn it on; the index says it is off. */
  host_run(&h, off);
  host_get(&h, "/debug/pprof/timeline", &r);
  ASSERT_EQ(http_status(&r), 404);
  ASSERT_STR_EQ(http_body(&r, &len),
                "the timeline is off: start the process with "
                "UV_PPROF_TIMELINE=<seconds> (or set "
                "options.timeline_seconds)\n");
  run_free(&r);
  host_get(&h, "/debug/pprof/", &r);
  ASSERT_CONTAINS(
      http_body(&r, &len),
      "the memory timeline: off (UV_PPROF_TIMELINE=&lt;seconds&gt;)");
  run_free(&r);
  child_stop(&h.child);

  host_run(&h, on);
  host_get(&h, "/debug/pprof/timeline?format=png", &r);
  ASSERT_EQ(http_status(&r), 400);
  ASSERT_STR_EQ(http_body(&r, &len),
                "invalid value for \"format\" - must be csv or svg\n");
  run_free(&r);
  host_get(&h, "/debug/pprof/timeline?format=svg", &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), "image/svg+xml");
  body = http_body(&r, &len);
  ASSERT_STARTS_WITH(body, "<?xml");
  ASSERT_CONTAINS(body, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
  ASSERT_CONTAINS(body, "</svg>\n");
  run_free(&r);
  host_get(&h, "/debug/pprof/timeline?format=csv", &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_get(&h, "/debug/pprof/", &r);
  ASSERT_CONTAINS(http_body(&r, &len),
                  "the memory timeline (every 1 s): <a href=\"timeline\">CSV"
                  "</a>, <a href=\"timeline?format=svg\">chart</a>");
  run_free(&r);
  child_stop(&h.child);

  /* A bad UV_PPROF_TIMELINE: one line, UV_EINVAL, nothing started. */
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char var[64];
    const char* env[] = {"UV_PPROF=127.0.0.1:0", var, NULL};
    const char* argv[] = {UV_PPROF_ENVHOST, NULL};
    snprintf(var, sizeof(var), "UV_PPROF_TIMELINE=%s", bad[i]);
    run_cmd(argv, env, 30000, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT_CONTAINS(r.out, "rc=-22\n");
    ASSERT_CONTAINS(r.out, "port=-1\n");
    ASSERT_CONTAINS(r.err, "UV_PPROF_TIMELINE=");
    ASSERT_CONTAINS(r.err,
                    "is not valid: expected whole seconds from 1 to "
                    "86400 (unset or 0: no timeline)\n");
    run_free(&r);
  }
  return 0;
}

/* Off costs nothing: no handle. On: one unref'd timer, which neither keeps
 * the loop running nor outlives uv_pprof_stop. */
TEST_IMPL(timeline_handles) {
  const char* argv[] = {UV_PPROF_ENVHOST, "--run", NULL};
  const char* off[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE", NULL};
  const char* zero[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=0", NULL};
  const char* on[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=1", NULL};
  run_result_t r;
  int handles_off;
  int handles_on;
  const char* p;

  /* uv_pprof's handles are hidden from the host's uv_walk ("handles", 0
   * each time) and listed by uv_print_all_handles ("hidden"). */
  run_cmd(argv, off, 30000, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_CONTAINS(r.out, "\nhandles=0\n");
  p = strstr(r.out, "hidden=");
  ASSERT(p != NULL);
  handles_off = atoi(p + 7);
  run_free(&r);
  run_cmd(argv, zero, 30000, &r);
  ASSERT_EQ(r.status, 0);
  p = strstr(r.out, "hidden=");
  ASSERT(p != NULL);
  ASSERT_EQ(atoi(p + 7), handles_off);
  run_free(&r);
  run_cmd(argv, on, 30000, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_CONTAINS(r.out, "\nhandles=0\n");
  p = strstr(r.out, "hidden=");
  ASSERT(p != NULL);
  handles_on = atoi(p + 7);
  ASSERT_EQ(handles_on, handles_off + 1);
  ASSERT_CONTAINS(r.out, "run=0\n");
  ASSERT_CONTAINS(r.out, "loop_close=0\n");
  run_free(&r);
  return 0;
}

/* ---- Chromium ------------------------------------------------------------ */

/* Pixels within 40 of `rgb` on every channel in the rows [y0, y1). */
static size_t count_color(const png_image_t* img, unsigned rgb, uint32_t y0,
                          uint32_t y1) {
  size_t n = 0;
  size_t i;

  for (i = (size_t)y0 * img->w; i < (size_t)y1 * img->w; i++) {
    const unsigned char* p = img->rgb + i * 3;
    if (abs(p[0] - (int)(rgb >> 16 & 255)) <= 40 &&
        abs(p[1] - (int)(rgb >> 8 & 255)) <= 40 &&
        abs(p[2] - (int)(rgb & 255)) <= 40)
      n++;
  }
  return n;
}

/* Pixels unlike the top-left one (the background). */
static size_t count_foreground(const png_image_t* img) {
  size_t n = 0;
  size_t i;

  for (i = 0; i < (size_t)img->w * img->h; i++)
    if (memcmp(img->rgb + i * 3, img->rgb, 3) != 0)
      n++;
  return n;
}

/* Headless Chromium's screenshot of url (a private profile; 120 s at most,
 * its process group killed on timeout). */
static void screenshot(const char* url, const char* png, png_image_t* img) {
  char shot[600];
  char profile[600];
  const char* argv[] = {"chromium",
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--hide-scrollbars",
                        "--window-size=1000,700",
                        profile,
                        shot,
                        url,
                        NULL};
  run_result_t r;

  snprintf(shot, sizeof(shot), "--screenshot=%s", png);
  snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium-%s",
           test_tmpdir(), strrchr(png, '/') + 1);
  run_cmd(argv, NULL, 120000, &r);
  if (r.status != 0) {
    fprintf(stderr, "chromium (%d): %s\n", r.status, r.err);
    ASSERT(0);
  }
  run_free(&r);
  png_decode(png, img);
  ASSERT_EQ(img->w, 1000);
  ASSERT_EQ(img->h, 700);
}

TEST_IMPL(timeline_chromium) {
  const char* const env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=1",
                             NULL};
  /* the chart's series: heap alloc, heap in use, RSS, goroutines */
  static const unsigned colors[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728};
  host_t h;
  run_result_t r;
  char url[256];
  char png[512];
  png_image_t img;
  size_t len;
  size_t i;
  int tries;

  host_run(&h, env);
  /* Three samples, so the chart has lines (bounded: 60 s). */
  for (tries = 0; tries < 120; tries++) {
    const char* p;
    int lines = 0;
    host_get(&h, "/debug/pprof/timeline", &r);
    for (p = http_body(&r, &len); (p = strchr(p, '\n')) != NULL; p++)
      lines++;
    run_free(&r);
    if (lines >= 4)
      break;
    usleep(500000);
  }
  ASSERT_LT(tries, 120);

  /* The index page: text on a white page, whatever the fonts. */
  snprintf(url, sizeof(url), "%s/debug/pprof/", h.base);
  snprintf(png, sizeof(png), "%s/index.png", test_tmpdir());
  screenshot(url, png, &img);
  ASSERT_GT(count_foreground(&img), 2000);
  free(img.rgb);

  /* The chart: every series is drawn in its colour inside the panels
   * (rows 60-490; the legend is below). */
  snprintf(url, sizeof(url), "%s/debug/pprof/timeline?format=svg", h.base);
  snprintf(png, sizeof(png), "%s/chart.png", test_tmpdir());
  screenshot(url, png, &img);
  ASSERT_GT(count_foreground(&img), 5000);
  for (i = 0; i < sizeof(colors) / sizeof(colors[0]); i++) {
    size_t n = count_color(&img, colors[i], 60, 491);
    if (n < 100) {
      fprintf(stderr, "colour %06x: %zu pixels\n", colors[i], n);
      ASSERT(0);
    }
  }
  free(img.rgb);
  child_stop(&h.child);
  return 0;
}

/* ---- in this process (sanitized in the ASan build) ----------------------- */

static void bad_options(uv_loop_t* loop, void* arg) {
  uv_pprof_options_t o;

  (void)loop;
  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  o.timeline_seconds = 86401;
  *(int*)arg = uv_pprof_start_ex(loop, &o);
}

TEST_IMPL(metrics_in_process) {
  uv_pprof_options_t o;
  test_host_t* h;
  run_result_t r;
  const char* body;
  size_t len;
  int tries;
  int rc = 0;

  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  o.timeline_seconds = 1;
  h = host_start(&o);
  curl_get(h, "/metrics", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  body = http_body(&r, &len);
  /* The allocator is named for what it is: a sanitizer's malloc is not
   * glibc's. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  ASSERT_CONTAINS(body, "uv_pprof_allocator_info{allocator=\"other\",");
  ASSERT_CONTAINS(body,
#if defined(__SANITIZE_ADDRESS__)
                  "object=\"libasan.so"
#else
                  "object=\"libtsan.so"
#endif
  );
  ASSERT_NOT_CONTAINS(body, "glibc_");
  ASSERT_NOT_CONTAINS(body, "uv_pprof_heap_alloc_bytes");
#else
  ASSERT_CONTAINS(body,
                  "uv_pprof_allocator_info{allocator=\"glibc\","
                  "object=\"libc.so.6\"");
  ASSERT_CONTAINS(body, "\nuv_pprof_heap_alloc_bytes ");
#endif
  ASSERT_CONTAINS(body, "\nuv_pprof_process_resident_memory_bytes ");
  /* the host's 1 ms timer */
  ASSERT_CONTAINS(body, "\",type=\"uv_timer_t\"} 1\n");
  run_free(&r);
  curl_get(h, "/metrics", NULL, &r);
  ASSERT_CONTAINS(http_body(&r, &len),
                  "uv_pprof_requests_total{endpoint="
                  "\"metrics\",code=\"2xx\"} 1\n");
  run_free(&r);

  /* The timeline runs: two samples (bounded: 60 s). */
  for (tries = 0; tries < 120; tries++) {
    const char* p;
    int lines = 0;
    curl_get(h, "/debug/pprof/timeline", NULL, &r);
    ASSERT_EQ(http_status(&r), 200);
    for (p = http_body(&r, &len); (p = strchr(p, '\n')) != NULL; p++)
      lines++;
    run_free(&r);
    if (lines >= 3)
      break;
    usleep(500000);
  }
  ASSERT_LT(tries, 120);
  curl_get(h, "/debug/pprof/timeline?format=svg", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);

  /* A second start with a bad interval leaves nothing behind. */
  host_call(h, bad_options, &rc);
  ASSERT_EQ(rc, UV_EINVAL);
  host_stop(h);
  return 0;
}

/* The tid of uv_pprof's worker thread in this process, 0 when none. */
static int worker_tid(void) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  int tid = 0;

  ASSERT(d != NULL);
  while (tid == 0 && (e = readdir(d)) != NULL) {
    char path[300];
    char comm[32] = "";
    FILE* f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    if (fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "uv_pprof\n") == 0)
      tid = atoi(e->d_name);
    fclose(f);
  }
  closedir(d);
  return tid;
}

/* Samples every second are light jobs: the worker that ran a profile still
 * exits (dropping the profile's symbol tables) 10 s after it, and a new one
 * takes the samples. */
TEST_IMPL(timeline_worker_exits) {
  uv_pprof_options_t o;
  test_host_t* h;
  run_result_t r;
  int first;
  int tid = 0;
  int tries;

  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  o.timeline_seconds = 1;
  h = host_start(&o);
  curl_get(h, "/debug/pprof/threadcreate?debug=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  first = worker_tid();
  ASSERT_NE(first, 0);
  /* Bounded: 40 s, four times the idle exit. */
  for (tries = 0; tries < 80; tries++) {
    tid = worker_tid();
    if (tid != first)
      break;
    usleep(500000);
  }
  ASSERT_NE(tid, first);
  host_stop(h);
  return 0;
}
