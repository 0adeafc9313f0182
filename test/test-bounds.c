/* What a client cannot make uv_pprof hold: /debug/pprof/symbol's cap on
 * addresses per request (413 with the cap in the text), and the symbol
 * cache's bound, checked on the RSS of a real host (uv_pprof_heaphost_plain,
 * uninstrumented in every build, so that a sanitizer's quarantine does not
 * count) fed 20 requests of fresh addresses. */
#include <inttypes.h>
#include <unistd.h>

#include "profile.h"
#include "task.h"

#define MIB (1024 * 1024)
/* The symbol cache's bound (symbolize.c: 3 MiB of slots, 13 MiB of frames),
 * and what one request holds besides: its body (1 MiB) and its answer (up
 * to 4 MiB here), which glibc may keep for the next one. */
#define CACHE_BOUND (16 * MIB)
#define REQUEST_BOUND (8 * MIB)

/* ---- a host process ------------------------------------------------------ */

typedef struct {
  child_t c;
  int port;
} proc_t;

/* Starts exe with UV_PPROF=127.0.0.1:0 and reads its "port=N". */
static void proc_start(proc_t* p, const char* exe) {
  const char* argv[] = {exe, NULL};
  const char* env[] = {"UV_PPROF=127.0.0.1:0", "LD_PRELOAD", NULL};
  char line[64];

  child_start(&p->c, "host", argv, env);
  child_line(&p->c, line, sizeof(line), 30000);
  ASSERT_EQ(sscanf(line, "port=%d", &p->port), 1);
}

/* EOF on its stdin: it stops uv_pprof and exits 0. */
static void proc_end(proc_t* p) {
  ASSERT_EQ(child_end(&p->c, 30000, NULL), 0);
}

static long proc_rss(const proc_t* p) {
  char path[64];
  unsigned long size;
  unsigned long resident;
  FILE* f;

  snprintf(path, sizeof(path), "/proc/%d/statm", (int)p->c.pid);
  f = fopen(path, "r");
  ASSERT(f != NULL);
  ASSERT_EQ(fscanf(f, "%lu %lu", &size, &resident), 2);
  fclose(f);
  return (long)resident * sysconf(_SC_PAGESIZE);
}

/* The executable mapping of libc in process pid. */
static void libc_text(pid_t pid, uintptr_t* start, uintptr_t* end) {
  char path[64];
  char line[512];
  FILE* f;

  snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
  f = fopen(path, "r");
  ASSERT(f != NULL);
  *start = *end = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned long long a;
    unsigned long long b;
    char perms[8];
    if (strstr(line, "/libc.so") != NULL &&
        sscanf(line, "%llx-%llx %7s", &a, &b, perms) == 3 && perms[2] == 'x') {
      *start = (uintptr_t)a;
      *end = (uintptr_t)b;
    }
  }
  fclose(f);
  ASSERT_GT(*end, *start);
}

/* ---- /debug/pprof/symbol ------------------------------------------------- */

/* Writes a body of n addresses from `first` on, `stride` apart, into a file
 * of test_tmpdir() and returns its path (static buffer). */
static const char* symbol_body(uintptr_t first, size_t n, size_t stride) {
  static char path[256];
  FILE* f;
  size_t i;

  if (path[0] == '\0')
    snprintf(path, sizeof(path), "%s/symbol-body", test_tmpdir());
  f = fopen(path, "w");
  ASSERT(f != NULL);
  for (i = 0; i < n; i++)
    fprintf(f, "%s0x%" PRIxPTR, i == 0 ? "" : "+", first + i * stride);
  ASSERT_EQ(fclose(f), 0);
  return path;
}

/* POSTs the body file to port's /debug/pprof/symbol; -i output in r. */
static void post_symbol(int port, const char* file, run_result_t* r) {
  char url[128];
  char data[300];
  const char* argv[] = {"curl", "-s", "-i",      "--max-time",
                        "60",   "-H", "Expect:", "--data-binary",
                        data,   url,  NULL};

  snprintf(url, sizeof(url), "http://127.0.0.1:%d/debug/pprof/symbol", port);
  snprintf(data, sizeof(data), "@%s", file);
  run_cmd(argv, NULL, 90000, r);
  ASSERT_EQ(r->status, 0);
}

TEST_IMPL(symbol_addresses_cap) {
  test_host_t* h = host_start(NULL);
  uintptr_t start;
  uintptr_t end;
  run_result_t r;
  size_t len;
  const char* body;
  char want[128];

  libc_text(getpid(), &start, &end);
  post_symbol(host_port(h), symbol_body(start, UV_PPROF__MAX_SYMBOL_ADDRS, 1),
              &r);
  ASSERT_EQ(http_status(&r), 200);
  body = http_body(&r, &len);
  ASSERT_STARTS_WITH(body, "num_symbols: 1\n0x");
  run_free(&r);

  post_symbol(host_port(h),
              symbol_body(start, UV_PPROF__MAX_SYMBOL_ADDRS + 1, 1), &r);
  ASSERT_EQ(http_status(&r), 413);
  snprintf(want, sizeof(want),
           "Request Entity Too Large: at most %d addresses per request\n",
           UV_PPROF__MAX_SYMBOL_ADDRS);
  ASSERT_STR_EQ(http_body(&r, &len), want);
  run_free(&r);
  host_stop(h);
  return 0;
}

/* 20 requests, each of 65536 addresses never asked before, spread over all
 * of libc's code (request k asks start + k, start + stride + k, ...): the
 * host's RSS after them stays within the cache's bound (and one request's
 * own memory) of what it was after the first, which loaded libdw, libc's
 * tables and its debug information (libc6-dbg, when installed), whatever
 * address asks them.
 * Without the bound each request kept ~6.5 MiB more until the worker idled
 * out: 128 MiB more after 20. */
TEST_IMPL(symbol_cache_bounded) {
  proc_t p;
  uintptr_t start;
  uintptr_t end;
  size_t stride;
  run_result_t r;
  long first = 0;
  long last = 0;
  long peak = 0;
  int i;

  proc_start(&p, UV_PPROF_HEAPHOST_PLAIN);
  libc_text(p.c.pid, &start, &end);
  stride = (end - start) / UV_PPROF__MAX_SYMBOL_ADDRS;
  ASSERT_GE(stride, 20);
  for (i = 0; i < 20; i++) {
    post_symbol(
        p.port,
        symbol_body(start + (uintptr_t)i, UV_PPROF__MAX_SYMBOL_ADDRS, stride),
        &r);
    ASSERT_EQ(http_status(&r), 200);
    run_free(&r);
    last = proc_rss(&p);
    if (i == 0)
      first = last;
    if (last > peak)
      peak = last;
  }
  fprintf(stderr,
          "RSS after the first request %ld KiB, peak %ld KiB, last %ld KiB\n",
          first / 1024, peak / 1024, last / 1024);
  ASSERT_LE(peak - first, CACHE_BOUND + REQUEST_BOUND);
  proc_end(&p);
  return 0;
}
