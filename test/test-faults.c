/* Fault injection. faults_alloc_sweep: uv_pprof_failhost (test/failhost.c)
 * makes the Nth allocation of uv_pprof's own code fail, for a full request
 * of each endpoint: every answer is the success itself (a benign failure:
 * a poorer but valid answer), a 5xx with a reason, or a closed connection;
 * never a crash or a hang; the listener still answers; and once uv_pprof
 * is restarted its code holds as many blocks as before (no leak). N runs
 * over the first allocations and a spread of the rest (all of them with
 * UV_PPROF_FAULTS_FULL=1), the first, its connection's, included (the
 * connection is then accepted into the server's spare handle and closed).
 * And the system failing
 * under it, for real: too few descriptors and a connection flood (EMFILE),
 * no memfd and a full disk under jemalloc's prof.dump (a preloaded
 * memfd_create: test/failsys.c), and no thread for the worker
 * (RLIMIT_NPROC). */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "task.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  child_t c;
  int port;
  char base[64];
} host_t;

static void host_line(host_t* h, char* line, size_t size) {
  child_line(&h->c, line, size, 60000);
}

static void host_cmd(host_t* h, const char* cmd, char* answer, size_t size) {
  ASSERT_EQ(write(h->c.in, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
  ASSERT_EQ(write(h->c.in, "\n", 1), 1);
  host_line(h, answer, size);
}

static void read_port(host_t* h, const char* line) {
  ASSERT_EQ(sscanf(line, "port=%d", &h->port), 1);
  snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", h->port);
}

static void host_run(host_t* h, const char* exe, const char* arg,
                     const char* const env[]) {
  const char* argv[] = {exe, arg, NULL};
  char line[64];

  child_start(&h->c, "failhost", argv, env);
  host_line(h, line, sizeof(line));
  read_port(h, line);
}

static long host_value(host_t* h, const char* cmd, const char* key) {
  char line[64];
  long v;

  host_cmd(h, cmd, line, sizeof(line));
  ASSERT_STARTS_WITH(line, key);
  ASSERT_EQ(sscanf(line + strlen(key), "%ld", &v), 1);
  return v;
}

static void restart(host_t* h) {
  char line[64];

  host_cmd(h, "restart", line, sizeof(line));
  read_port(h, line);
}

static void arm(host_t* h, long n) {
  char cmd[32];
  char line[16];

  snprintf(cmd, sizeof(cmd), "arm %ld", n);
  host_cmd(h, cmd, line, sizeof(line));
  ASSERT_STR_EQ(line, "ok");
}

/* One request with curl; *status is the HTTP status, 0 when the server
 * closed the connection without one. The body in *body (run_result_t's). */
static void request(host_t* h, const char* method, const char* path,
                    const char* data, int* status, run_result_t* r) {
  char url[256];
  const char* argv[16];
  int n = 0;

  snprintf(url, sizeof(url), "%s%s", h->base, path);
  argv[n++] = "curl";
  argv[n++] = "-s";
  argv[n++] = "-i";
  argv[n++] = "--max-time";
  argv[n++] = "30";
  argv[n++] = "-X";
  argv[n++] = method;
  if (data != NULL) {
    argv[n++] = "--data-binary";
    argv[n++] = data;
  }
  argv[n++] = url;
  argv[n] = NULL;
  run_cmd(argv, NULL, 40000, r);
  /* 52: empty reply, 56: reset: the server closed the connection. */
  if (r->status == 52 || r->status == 56) {
    *status = 0;
    return;
  }
  if (r->status != 0)
    fprintf(stderr, "curl %s: exit %d\n%s", url, r->status, r->err);
  ASSERT_EQ(r->status, 0); /* 28 would be a hang */
  *status = http_status(r);
}

typedef struct {
  const char* method;
  const char* path;
  const char* data;
  int ok; /* the status without a failure */
} endpoint_t;

/* The Ns to try for a request of `total` allocations. */
static size_t sweep_points(long total, long* out, size_t max) {
  size_t n = 0;
  long i;
  int full = getenv("UV_PPROF_FAULTS_FULL") != NULL;

  for (i = 1; i <= total && n < max; i++) {
    if (full || i <= 8 || (i - 8) % ((total - 8) / 8 + 1) == 0 || i == total)
      out[n++] = i;
  }
  return n;
}

static void sweep(host_t* h, const endpoint_t* e) {
  long points[4096];
  long total;
  long live0;
  size_t n;
  size_t i;
  int status;
  run_result_t r;

  restart(h);
  arm(h, 0);
  request(h, e->method, e->path, e->data, &status, &r);
  ASSERT_EQ(status, e->ok);
  run_free(&r);
  total = host_value(h, "count", "count=");
  /* What uv_pprof keeps from one server to the next once it has served
   * this (the handle ages' table), and nothing more. */
  restart(h);
  live0 = host_value(h, "live", "live=");
  n = sweep_points(total, points, COUNT(points));
  fprintf(stderr, "%s %s: %ld allocations, %zu tried\n", e->method, e->path,
          total, n);
  for (i = 0; i < n; i++) {
    size_t len;
    const char* body;
    restart(h);
    arm(h, points[i]);
    request(h, e->method, e->path, e->data, &status, &r);
    body = status != 0 ? http_body(&r, &len) : NULL;
    if (!(status == 0 || status == e->ok ||
          (status >= 500 && body != NULL && len > 1))) {
      fprintf(stderr, "%s %s, allocation %ld failing: status %d\n%s\n",
              e->method, e->path, points[i], status, r.out);
      ASSERT(0);
    }
    run_free(&r);
    /* The host lives, its listener answers, and nothing leaked. */
    arm(h, 0);
    request(h, "GET", "/debug/pprof/cmdline", NULL, &status, &r);
    ASSERT_EQ(status, 200);
    run_free(&r);
    restart(h);
    if (host_value(h, "live", "live=") > live0) {
      fprintf(stderr,
              "%s %s, allocation %ld failing: %ld blocks left, "
              "%ld before\n",
              e->method, e->path, points[i], host_value(h, "live", "live="),
              live0);
      ASSERT(0);
    }
  }
}

TEST_IMPL(faults_alloc_sweep) {
  static const endpoint_t endpoints[] = {
      {"GET", "/debug/pprof/", NULL, 200},
      {"GET", "/debug/pprof", NULL, 301},
      {"GET", "/debug/pprof/cmdline", NULL, 200},
      {"GET", "/debug/pprof/nosuch", NULL, 404},
      {"GET", "/debug/pprof/goroutine", NULL, 200},
      {"GET", "/debug/pprof/goroutine?debug=1", NULL, 200},
      {"GET", "/debug/pprof/goroutine?debug=2", NULL, 200},
      {"GET", "/debug/pprof/threadcreate", NULL, 200},
      {"GET", "/debug/pprof/threadcreate?debug=1", NULL, 200},
      {"GET", "/debug/pprof/threadcreate?seconds=1", NULL, 200},
      {"GET", "/debug/pprof/heap", NULL, 200},
      {"GET", "/debug/pprof/heap?debug=1", NULL, 200},
      {"GET", "/debug/pprof/allocs", NULL, 200},
      {"GET", "/debug/pprof/block", NULL, 200},
      {"GET", "/debug/pprof/mutex", NULL, 200},
      {"GET", "/debug/pprof/symbol", NULL, 200},
      {"POST", "/debug/pprof/symbol", "0x401000+0x402000", 200},
      {"GET", "/debug/pprof/profile?seconds=1", NULL, 200},
      {"GET", "/debug/pprof/timeline", NULL, 404},
      {"GET", "/debug/pprof/leaks", NULL, 404},
      {"GET", "/debug/pprof/heap?base=1s", NULL, 404},
      {"GET", "/debug/pprof/ui/heap", NULL, 200},
      {"GET", "/debug/pprof/ui/assets/ui.js", NULL, 200},
      {"GET", "/metrics", NULL, 200},
  };
  const char* env[] = {"LD_PRELOAD", NULL};
  host_t h;
  size_t i;

  host_run(&h, UV_PPROF_FAILHOST, NULL, env);
  for (i = 0; i < COUNT(endpoints); i++)
    sweep(&h, &endpoints[i]);
  ASSERT_EQ(child_end(&h.c, 30000, NULL), 0);
  return 0;
}

/* With the soft descriptor limit a few above what the host has open, 300
 * connections at once: some are refused or closed, nothing crashes, and
 * once they are gone (and the limit back) a request is answered. */
TEST_IMPL(faults_emfile_flood) {
  const char* env[] = {"LD_PRELOAD", NULL};
  int fds[300];
  host_t h;
  long before;
  char cmd[32];
  char line[32];
  run_result_t r;
  int status;
  size_t i;

  host_run(&h, UV_PPROF_FAILHOST, NULL, env);
  before = host_value(&h, "fds", "fds=");
  snprintf(cmd, sizeof(cmd), "nofile %ld", before + 8);
  host_cmd(&h, cmd, line, sizeof(line));
  ASSERT_STR_EQ(line, "ok");
  for (i = 0; i < COUNT(fds); i++) {
    struct sockaddr_in sin;
    static const char req[] =
        "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)h.port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fds[i], 0);
    if (connect(fds[i], (struct sockaddr*)&sin, sizeof(sin)) == 0)
      (void)!write(fds[i], req, sizeof(req) - 1);
  }
  /* Still alive, with the flood held open (the host answers a command
   * that opens nothing: its descriptors are used up). */
  ASSERT_GE(host_value(&h, "count", "count="), 0);
  for (i = 0; i < COUNT(fds); i++)
    close(fds[i]);
  host_cmd(&h, "nofile 1024", line, sizeof(line));
  ASSERT_STR_EQ(line, "ok");
  request(&h, "GET", "/debug/pprof/cmdline", NULL, &status, &r);
  ASSERT_EQ(status, 200);
  run_free(&r);
  ASSERT_EQ(child_end(&h.c, 30000, NULL), 0);
  return 0;
}

/* jemalloc's prof.dump with no memfd to write into, and with one that is
 * full (writes get ENOSPC): the heap endpoint answers 500 saying why, and
 * the host goes on serving. */
TEST_IMPL(faults_memfd_and_enospc) {
  static const char* const modes[] = {"UV_PPROF_FAILSYS=memfd",
                                      "UV_PPROF_FAILSYS=enospc"};
  size_t m;

  for (m = 0; m < COUNT(modes); m++) {
    const char* env[] = {"LD_PRELOAD=" UV_PPROF_FAILSYS,
                         "MALLOC_CONF=prof:true,prof_accum:true",
                         "UV_PPROF=127.0.0.1:0", modes[m], NULL};
    const char* argv[] = {UV_PPROF_HEAPHOST, NULL};
    host_t h;
    char line[64];
    run_result_t r;
    int status;
    size_t len;

    child_start(&h.c, "heaphost", argv, env);
    host_line(&h, line, sizeof(line));
    read_port(&h, line);
    request(&h, "GET", "/debug/pprof/heap", NULL, &status, &r);
    ASSERT_EQ(status, 500);
    ASSERT_CONTAINS(http_body(&r, &len), "could not collect the heap profile");
    run_free(&r);
    request(&h, "GET", "/debug/pprof/cmdline", NULL, &status, &r);
    ASSERT_EQ(status, 200);
    run_free(&r);
    ASSERT_EQ(child_end(&h.c, 30000, NULL), 0);
  }
  return 0;
}

/* No thread can be created (RLIMIT_NPROC 1, as nobody when run as root):
 * a request that needs the worker gets 500 with the reason; one that does
 * not is answered. */
TEST_IMPL(faults_no_thread) {
  const char* env[] = {"LD_PRELOAD", NULL};
  host_t h;
  run_result_t r;
  int status;
  size_t len;

  host_run(&h, UV_PPROF_FAILHOST, "--nproc", env);
  request(&h, "GET", "/debug/pprof/threadcreate", NULL, &status, &r);
  ASSERT_EQ(status, 500);
  ASSERT_CONTAINS(http_body(&r, &len), "worker");
  run_free(&r);
  request(&h, "GET", "/debug/pprof/cmdline", NULL, &status, &r);
  ASSERT_EQ(status, 200);
  run_free(&r);
  ASSERT_EQ(child_end(&h.c, 30000, NULL), 0);
  return 0;
}
