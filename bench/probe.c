/* The benchmarks' measuring host, HTTP client and median (see probe.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"
#include "uv_pprof.h"

#define MAX_TICKS 400000

static void on_tick(uv_timer_t* t) {
  probe_host_t* h = t->data;
  uint64_t now = uv_hrtime();

  if (h->allocates) {
    char* volatile block = malloc(4096);
    if (block != NULL)
      block[0] = 1;
    free(block);
  }
  uv_mutex_lock(&h->mu);
  if (h->last != 0 && h->nticks < MAX_TICKS)
    h->lateness_us[h->nticks++] = ((int64_t)(now - h->last) - 1000000) / 1000;
  h->last = now;
  uv_mutex_unlock(&h->mu);
}

static void on_wake(uv_async_t* a) {
  probe_host_t* h = a->data;

  uv_pprof_stop(&h->loop);
  uv_close((uv_handle_t*)&h->tick, NULL);
  uv_close((uv_handle_t*)&h->wake, NULL);
}

static void run_host(void* arg) {
  probe_host_t* h = arg;

  uv_run(&h->loop, UV_RUN_DEFAULT);
}

void probe_start(probe_host_t* h, int allocates) {
  uv_pprof_options_t o;
  struct sockaddr_storage ss;

  memset(h, 0, sizeof(*h));
  h->allocates = allocates;
  h->lateness_us = calloc(MAX_TICKS, sizeof(int64_t));
  uv_mutex_init(&h->mu);
  uv_loop_init(&h->loop);
  uv_loop_configure(&h->loop, UV_METRICS_IDLE_TIME);
  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  if (h->lateness_us == NULL || uv_pprof_start_ex(&h->loop, &o) != 0)
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

static int cmp_i64(const void* a, const void* b) {
  int64_t x = *(const int64_t*)a;
  int64_t y = *(const int64_t*)b;

  return x < y ? -1 : x > y;
}

void probe_phase_begin(probe_host_t* h) {
  uv_mutex_lock(&h->mu);
  h->nticks = 0;
  h->last = 0;
  uv_mutex_unlock(&h->mu);
  h->phase_start = uv_hrtime();
  h->phase_idle = uv_metrics_idle_time(&h->loop);
}

probe_stats_t probe_phase_end(probe_host_t* h) {
  probe_stats_t s = {0, 0, 0, 0, 0, 0};

  s.ms = (double)(uv_hrtime() - h->phase_start) / 1e6;
  s.busy_ms =
      s.ms - (double)(uv_metrics_idle_time(&h->loop) - h->phase_idle) / 1e6;
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

int probe_stop(probe_host_t* h) {
  int rc;

  uv_async_send(&h->wake);
  uv_thread_join(&h->thread);
  rc = uv_loop_close(&h->loop);
  free(h->lateness_us);
  return rc;
}

int probe_connect(int port) {
  struct sockaddr_in sin;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr*)&sin, sizeof(sin)) != 0)
    exit(1);
  return fd;
}

size_t probe_get(int fd, const char* path, int status) {
  static char* buf;
  static size_t cap;
  char req[256];
  char want_line[32];
  size_t have = 0;
  long want = -1;
  size_t head = 0;

  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
           path);
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
    exit(1);
  for (;;) {
    ssize_t r;
    char* end;
    if (cap - have < 65536) {
      cap = cap ? 2 * cap : 1 << 20;
      buf = realloc(buf, cap);
      if (buf == NULL)
        exit(1);
    }
    r = read(fd, buf + have, cap - have - 1);
    if (r <= 0)
      exit(1);
    have += (size_t)r;
    buf[have] = '\0';
    if (want < 0 && (end = strstr(buf, "\r\n\r\n")) != NULL) {
      char* cl = strstr(buf, "Content-Length: ");
      snprintf(want_line, sizeof(want_line), "HTTP/1.1 %d ", status);
      if (strncmp(buf, want_line, strlen(want_line)) != 0 || cl == NULL) {
        fprintf(stderr, "GET %s: %.200s\n", path, buf);
        exit(1);
      }
      head = (size_t)(end + 4 - buf);
      want = (long)head + atol(cl + 16);
    }
    if (want >= 0 && (long)have >= want)
      return have - head;
  }
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a;
  double y = *(const double*)b;

  return (x > y) - (x < y);
}

double probe_median(double* v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t probe_thread_cpu_ns(const char* name) {
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
    comm[strcspn(comm, "\n")] = '\0';
    if (strcmp(comm, name) != 0)
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
