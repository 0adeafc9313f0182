/* bench_idle_rss: what an idle uv_pprof costs its host, measured against the
 * same host without it, in the same run.
 *
 * The parent starts four children from this binary (fork + exec, so none
 * inherits the parent's memory), all the same host — a loop and a repeating
 * timer — differing only in uv_pprof: not loaded at all; loaded with
 * UV_PPROF unset (uv_pprof_start does nothing); started with
 * uv_pprof_start_ex on port 0 and left idle; and started, asked 20 requests,
 * then left idle past the worker thread's idle exit. When a child has settled
 * it reports its handle count (uv_print_all_handles: libuv's own and
 * uv_pprof's, which uv_walk does not show, included) on a pipe; the parent then
 * reads its RSS and thread count from /proc/PID/status and counts /proc/PID/fd.
 * Each figure is the median of the runs. The library is dlopen'd so that the
 * "plain" host does not even map it.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "uv_pprof.h"

#ifndef UV_PPROF_LIBRARY
#define UV_PPROF_LIBRARY "libuv_pprof.so"
#endif

#define DEFAULT_RUNS 5
#define SETTLE_MS 2000          /* idle children report this long after start */
#define AFTER_REQUESTS_MS 12000 /* > the worker's 10 s idle exit */
#define NUM_REQUESTS 20
#define REPORT_TIMEOUT_MS 60000

enum { PLAIN, DISABLED, ENABLED, REQUESTS, NUM_MODES };

static const char* const mode_names[NUM_MODES] = {"plain", "disabled",
                                                  "enabled", "requests"};
static const char* const mode_labels[NUM_MODES] = {
    "plain host (no uv_pprof)", "uv_pprof loaded, UV_PPROF unset",
    "enabled, idle", "after 20 requests + 12 s idle"};

/* What the parent learns of one child. */
typedef struct {
  long rss_kib;
  long anon_kib;
  long threads;
  long fds;
  long handles;      /* reported by the child (uv_print_all_handles) */
  long ok;           /* requests answered 200 */
  long peak_threads; /* threads right after the last request */
} sample_t;

/* ---- the child: a host ----------------------------------------------------
 */

typedef void (*options_init_fn)(uv_pprof_options_t*);
typedef int (*start_fn)(uv_loop_t*);
typedef int (*start_ex_fn)(uv_loop_t*, const uv_pprof_options_t*);
typedef int (*address_fn)(uv_loop_t*, struct sockaddr_storage*);

static uv_loop_t loop;
static uv_timer_t host_timer;
static uv_timer_t report_timer;
static int report_fd;
static unsigned long host_ticks;

static struct sockaddr_storage server_addr;
static uv_tcp_t client;
static uv_connect_t connect_req;
static uv_write_t write_req;
static char response[1 << 16];
static size_t response_len;
static int request_index;
static long requests_ok;
static long peak_threads;

static const char* const paths[] = {
    "/debug/pprof/",
    "/debug/pprof/cmdline",
    "/debug/pprof/threadcreate",
    "/debug/pprof/mutex",
    "/debug/pprof/block",
    "/debug/pprof/threadcreate?debug=1",
};

static void die(const char* what, int err) {
  fprintf(stderr, "bench_idle_rss: %s%s%s\n", what, err ? ": " : "",
          err ? uv_strerror(err) : "");
  exit(1);
}

static void on_host_tick(uv_timer_t* timer) {
  host_ticks++;
}

/* Every handle of the loop, hidden ones included: uv_walk skips libuv's
 * internal handles and uv_pprof's; uv_print_all_handles lists them all, one
 * line each. */
static long count_handles(void) {
  char* text = NULL;
  size_t len = 0;
  FILE* f = open_memstream(&text, &len);
  long n = 0;
  size_t i;

  if (f == NULL)
    return -1;
  uv_print_all_handles(&loop, f);
  fclose(f);
  for (i = 0; i < len; i++)
    n += text[i] == '\n';
  free(text);
  return n;
}

static void on_report(uv_timer_t* timer) {
  char line[128];
  long handles = count_handles();
  int n;

  n = snprintf(line, sizeof(line), "%ld %ld %ld\n", handles, requests_ok,
               peak_threads);
  if (write(report_fd, line, (size_t)n) != n)
    exit(1);
}

/* Threads: line of /proc/self/status. */
static long self_threads(void) {
  char line[256];
  long n = -1;
  FILE* f = fopen("/proc/self/status", "r");

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "Threads: %ld", &n) == 1)
      break;
  fclose(f);
  return n;
}

static void next_request(void);

static void on_client_closed(uv_handle_t* handle) {
  if (strncmp(response, "HTTP/1.1 200 ", 13) == 0)
    requests_ok++;
  if (++request_index < NUM_REQUESTS) {
    next_request();
    return;
  }
  peak_threads = self_threads();
  uv_timer_start(&report_timer, on_report, AFTER_REQUESTS_MS, 0);
}

/* 1 once the headers and Content-Length bytes of body are in. */
static int response_complete(void) {
  const char* end = strstr(response, "\r\n\r\n");
  const char* p;

  if (end == NULL)
    return 0;
  for (p = response; p < end; p = strstr(p, "\r\n") + 2)
    if (strncasecmp(p, "Content-Length:", 15) == 0)
      return response_len >=
             (size_t)(end + 4 - response) + strtoul(p + 15, NULL, 10);
  return 0;
}

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  size_t room = sizeof(response) - 1 - response_len;

  /* Past the buffer, keep reading into its last part: only the status line
   * and headers matter. */
  if (room < 1024) {
    response_len = sizeof(response) / 2;
    room = sizeof(response) - 1 - response_len;
  }
  *buf = uv_buf_init(response + response_len, (unsigned int)room);
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    response_len += (size_t)nread;
    response[response_len] = '\0';
  }
  if (nread < 0 || (nread > 0 && response_complete()))
    uv_close((uv_handle_t*)&client, on_client_closed);
}

static void on_connect(uv_connect_t* req, int status) {
  static char request[256]; /* uv_write needs it until the write is done */
  uv_buf_t buf;
  int n;

  if (status != 0)
    die("connect", status);
  n = snprintf(request, sizeof(request),
               "GET %s HTTP/1.1\r\nHost: localhost\r\n"
               "Connection: close\r\n\r\n",
               paths[request_index % (sizeof(paths) / sizeof(paths[0]))]);
  buf = uv_buf_init(request, (unsigned int)n);
  if (uv_write(&write_req, (uv_stream_t*)&client, &buf, 1, NULL) != 0 ||
      uv_read_start((uv_stream_t*)&client, on_alloc, on_read) != 0)
    die("write/read", 0);
}

static void next_request(void) {
  int rc;

  response_len = 0;
  response[0] = '\0';
  uv_tcp_init(&loop, &client);
  rc = uv_tcp_connect(&connect_req, &client,
                      (const struct sockaddr*)&server_addr, on_connect);
  if (rc != 0)
    die("uv_tcp_connect", rc);
}

static void* must_sym(void* lib, const char* name) {
  void* p = dlsym(lib, name);

  if (p == NULL)
    die(name, 0);
  return p;
}

static int run_child(int mode, int fd) {
  uv_pprof_options_t options;
  void* lib = NULL;
  int rc = 0;

  /* Start from what a host started by a shell has: stdin, stdout, stderr
   * (plus the report pipe), whatever the bench itself inherited. */
  if (dup2(fd, 3) != 3)
    die("dup2", 0);
  report_fd = 3;
  close_range(4, ~0u, 0);
  if (uv_loop_init(&loop) != 0)
    die("uv_loop_init", 0);
  uv_timer_init(&loop, &host_timer);
  uv_timer_start(&host_timer, on_host_tick, 1000, 1000);
  uv_timer_init(&loop, &report_timer);

  if (mode != PLAIN) {
    lib = dlopen(UV_PPROF_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
      fprintf(stderr, "bench_idle_rss: %s\n", dlerror());
      return 1;
    }
  }
  if (mode == DISABLED) {
    unsetenv("UV_PPROF");
    rc = ((start_fn)must_sym(lib, "uv_pprof_start"))(&loop);
  } else if (mode == ENABLED || mode == REQUESTS) {
    ((options_init_fn)must_sym(lib, "uv_pprof_options_init"))(&options);
    options.port = 0;
    options.quiet = 1;
    rc = ((start_ex_fn)must_sym(lib, "uv_pprof_start_ex"))(&loop, &options);
    if (rc == 0)
      rc = ((address_fn)must_sym(lib, "uv_pprof_address"))(&loop, &server_addr);
  }
  if (rc != 0)
    die("uv_pprof_start", rc);

  if (mode == REQUESTS)
    next_request();
  else
    uv_timer_start(&report_timer, on_report, SETTLE_MS, 0);
  uv_run(&loop, UV_RUN_DEFAULT); /* until the parent's SIGTERM */
  return 0;
}

/* ---- the parent: measure ----------------------------------------------------
 */

static long status_field(pid_t pid, const char* key) {
  char path[64];
  char line[256];
  size_t klen = strlen(key);
  long v = -1;
  FILE* f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      v = strtol(line + klen + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

static long count_fds(pid_t pid) {
  char path[64];
  struct dirent* e;
  long n = 0;
  DIR* d;

  snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  d = opendir(path);
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

typedef struct {
  pid_t pid;
  int fd; /* read end of the child's report pipe, -1 once read */
  char buf[128];
  size_t len;
} child_t;

static void spawn(child_t* c, int mode, const char* self) {
  char mode_arg[16];
  char fd_arg[16];
  int p[2];

  /* Close-on-exec, so that no child inherits another's pipe. */
  if (pipe2(p, O_CLOEXEC) != 0)
    die("pipe", 0);
  c->pid = fork();
  if (c->pid < 0)
    die("fork", 0);
  if (c->pid == 0) {
    fcntl(p[1], F_SETFD, 0);
    snprintf(mode_arg, sizeof(mode_arg), "%s", mode_names[mode]);
    snprintf(fd_arg, sizeof(fd_arg), "%d", p[1]);
    execl(self, self, "--child", mode_arg, fd_arg, (char*)NULL);
    _exit(127);
  }
  close(p[1]);
  c->fd = p[0];
  c->len = 0;
}

/* Runs one repetition: all modes side by side, each measured once it has
 * reported. */
static void run_once(const char* self, sample_t out[NUM_MODES]) {
  child_t children[NUM_MODES];
  int pending = NUM_MODES;
  int m;

  for (m = 0; m < NUM_MODES; m++)
    spawn(&children[m], m, self);

  while (pending > 0) {
    struct pollfd fds[NUM_MODES];
    int idx[NUM_MODES];
    int n = 0;
    int i;

    for (m = 0; m < NUM_MODES; m++) {
      if (children[m].fd < 0)
        continue;
      fds[n].fd = children[m].fd;
      fds[n].events = POLLIN;
      idx[n++] = m;
    }
    i = poll(fds, (nfds_t)n, REPORT_TIMEOUT_MS);
    if (i < 0 && errno == EINTR)
      continue;
    if (i <= 0)
      die("a child did not report in time", 0);
    for (i = 0; i < n; i++) {
      child_t* c = &children[idx[i]];
      sample_t* s = &out[idx[i]];
      ssize_t r;

      if (fds[i].revents == 0)
        continue;
      r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
      if (r <= 0) {
        fprintf(stderr, "bench_idle_rss: the %s child died\n",
                mode_names[idx[i]]);
        exit(1);
      }
      c->len += (size_t)r;
      c->buf[c->len] = '\0';
      if (strchr(c->buf, '\n') == NULL)
        continue;
      /* The child is idle now: measure it from outside. */
      s->rss_kib = status_field(c->pid, "VmRSS");
      s->anon_kib = status_field(c->pid, "RssAnon");
      s->threads = status_field(c->pid, "Threads");
      s->fds = count_fds(c->pid);
      if (sscanf(c->buf, "%ld %ld %ld", &s->handles, &s->ok,
                 &s->peak_threads) != 3)
        die("bad report from a child", 0);
      close(c->fd);
      c->fd = -1;
      pending--;
    }
  }

  for (m = 0; m < NUM_MODES; m++) {
    int status;

    kill(children[m].pid, SIGTERM);
    if (waitpid(children[m].pid, &status, 0) != children[m].pid)
      die("waitpid", 0);
  }
}

static int cmp_long(const void* a, const void* b) {
  long x = *(const long*)a;
  long y = *(const long*)b;

  return (x > y) - (x < y);
}

/* Median of one field over the runs. */
static long median(sample_t (*runs)[NUM_MODES], int nruns, int mode,
                   size_t field_offset) {
  long v[64];
  int i;

  for (i = 0; i < nruns; i++)
    v[i] = *(const long*)((const char*)&runs[i][mode] + field_offset);
  qsort(v, (size_t)nruns, sizeof(v[0]), cmp_long);
  return nruns % 2 ? v[nruns / 2] : (v[nruns / 2 - 1] + v[nruns / 2]) / 2;
}

#define MEDIAN(mode, field) \
  median(runs, nruns, (mode), offsetof(sample_t, field))

int main(int argc, char** argv) {
  static sample_t runs[64][NUM_MODES];
  int nruns = DEFAULT_RUNS;
  int i;
  int m;

  if (argc == 4 && strcmp(argv[1], "--child") == 0) {
    for (m = 0; m < NUM_MODES; m++)
      if (strcmp(argv[2], mode_names[m]) == 0)
        return run_child(m, atoi(argv[3]));
    return 2;
  }
  if (argc == 3 && strcmp(argv[1], "--runs") == 0)
    nruns = atoi(argv[2]);
  else if (argc != 1) {
    fprintf(stderr, "usage: %s [--runs N]   (N from 1 to 64, default %d)\n",
            argv[0], DEFAULT_RUNS);
    return 2;
  }
  if (nruns < 1 || nruns > 64)
    return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);

  printf(
      "bench_idle_rss: %d runs of 4 hosts side by side (~%d s each); "
      "library %s\n",
      nruns, (AFTER_REQUESTS_MS + 1500) / 1000, UV_PPROF_LIBRARY);
  for (i = 0; i < nruns; i++) {
    run_once("/proc/self/exe", runs[i]);
    printf("  run %d: RSS KiB", i + 1);
    for (m = 0; m < NUM_MODES; m++)
      printf(" %s %ld", mode_names[m], runs[i][m].rss_kib);
    printf("; 200s %ld/%d\n", runs[i][REQUESTS].ok, NUM_REQUESTS);
  }

  printf("\n%-31s %8s %6s %9s %6s %8s %4s %8s\n", "median of runs", "RSS KiB",
         "delta", "anon KiB", "delta", "threads", "fds", "handles");
  for (m = 0; m < NUM_MODES; m++) {
    long rss = MEDIAN(m, rss_kib);
    long anon = MEDIAN(m, anon_kib);
    char delta[32] = "-";
    char anon_delta[32] = "-";

    if (m != PLAIN) {
      snprintf(delta, sizeof(delta), "%+ld", rss - MEDIAN(PLAIN, rss_kib));
      snprintf(anon_delta, sizeof(anon_delta), "%+ld",
               anon - MEDIAN(PLAIN, anon_kib));
    }
    printf("%-31s %8ld %6s %9ld %6s %8ld %4ld %8ld\n", mode_labels[m], rss,
           delta, anon, anon_delta, MEDIAN(m, threads), MEDIAN(m, fds),
           MEDIAN(m, handles));
  }
  printf(
      "\nrequests answered 200 (median): %ld of %d; threads right after "
      "the last request: %ld\n",
      MEDIAN(REQUESTS, ok), NUM_REQUESTS, MEDIAN(REQUESTS, peak_threads));
  return 0;
}
