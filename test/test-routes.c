/* Integration tests of the routes: a real host loop with uv_pprof on it,
 * queried with real curl and `go tool pprof`. Expectations come from Go
 * 1.19's net/http/pprof (reference/FORMATS.md §3 and the go119 captures):
 * statuses, headers, error texts and layouts byte for byte. */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "task.h"

#define TEXT "text/plain; charset=utf-8"
#define OCTET "application/octet-stream"

static const char index_head[] =
    "<html>\n"
    "<head>\n"
    "<title>/debug/pprof/</title>\n"
    "<style>\n"
    ".profile-name{\n"
    "\tdisplay:inline-block;\n"
    "\twidth:6rem;\n"
    "}\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "/debug/pprof/<br>\n"
    "<br>\n"
    "Types of profiles available:\n"
    "<table>\n"
    "<thead><td>Count</td><td>Profile</td></thead>\n";

/* Profiles a later issue adds; this build must not list them yet. */
static const char* const not_yet[] = {"trace", "symbol", NULL};

static int nthreads(void) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  int n = 0;

  ASSERT(d != NULL);
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Every answer carries a Date header in Go's format. */
static void check_date(const run_result_t* r) {
  const char* d = http_header(r, "Date");

  ASSERT(d != NULL);
  ASSERT_EQ(strlen(d), 29); /* "Thu, 26 Nov 2026 00:02:34 GMT" */
  ASSERT_STR_EQ(d + 25, " GMT");
}

static void get(test_host_t* h, const char* path, const char* const extra[],
                run_result_t* r) {
  curl_get(h, path, extra, r);
  ASSERT_EQ(r->status, 0);
  check_date(r);
}

static void expect_body(const run_result_t* r, const char* text) {
  size_t len;
  const char* body = http_body(r, &len);

  if (len != strlen(text) || memcmp(body, text, len) != 0) {
    fprintf(stderr, "body (%zu bytes):\n%.*s\nexpected (%zu bytes):\n%s\n", len,
            (int)len, body, strlen(text), text);
    ASSERT(0);
  }
}

/* Go's error helper: text/plain, X-Go-Pprof: 1, no Content-Disposition,
 * message + "\n". */
static void expect_go_error(const run_result_t* r, int status,
                            const char* msg) {
  char text[256];

  ASSERT_EQ(http_status(r), status);
  ASSERT_STR_EQ(http_header(r, "Content-Type"), TEXT);
  ASSERT_STR_EQ(http_header(r, "X-Go-Pprof"), "1");
  ASSERT_STR_EQ(http_header(r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(r, "Content-Disposition") == NULL);
  snprintf(text, sizeof(text), "%s\n", msg);
  expect_body(r, text);
}

static void expect_go_error_at(test_host_t* h, const char* path, int status,
                               const char* msg) {
  run_result_t r;

  get(h, path, NULL, &r);
  expect_go_error(&r, status, msg);
  run_free(&r);
}

static void expect_proto_headers(const run_result_t* r, const char* file) {
  char disposition[128];
  size_t len;
  const unsigned char* body = (const unsigned char*)http_body(r, &len);

  ASSERT_EQ(http_status(r), 200);
  ASSERT_STR_EQ(http_header(r, "Content-Type"), OCTET);
  snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"",
           file);
  ASSERT_STR_EQ(http_header(r, "Content-Disposition"), disposition);
  ASSERT_STR_EQ(http_header(r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(r, "Content-Encoding") == NULL);
  ASSERT(http_header(r, "X-Go-Pprof") == NULL);
  ASSERT_GT(len, 2);
  ASSERT_EQ(body[0], 0x1f);
  ASSERT_EQ(body[1], 0x8b);
}

/* `go tool pprof -raw TARGET`, with its cache and home in a temp dir. */
static void pprof_raw(const char* target, run_result_t* r) {
  static char home[128];
  static char tmp[128];
  const char* argv[] = {"go", "tool", "pprof", "-raw", target, NULL};
  const char* env[] = {home, tmp, NULL};
  const char* dir = test_tmpdir();

  snprintf(home, sizeof(home), "HOME=%s", dir);
  snprintf(tmp, sizeof(tmp), "PPROF_TMPDIR=%s", dir);
  run_cmd(argv, env, 120000, r);
  if (r->status != 0)
    fprintf(stderr, "go tool pprof -raw %s: status %d\n%s\n%s\n", target,
            r->status, r->out, r->err);
  ASSERT_EQ(r->status, 0);
}

static void pprof_raw_url(test_host_t* h, const char* path, run_result_t* r) {
  char url[256];

  snprintf(url, sizeof(url), "%s%s", host_base(h), path);
  pprof_raw(url, r);
}

static size_t count_of(const char* hay, const char* needle) {
  size_t n = 0;

  while ((hay = strstr(hay, needle)) != NULL) {
    n++;
    hay += strlen(needle);
  }
  return n;
}

static void expect_not_found(test_host_t* h, const char* path) {
  run_result_t r;

  get(h, path, NULL, &r);
  ASSERT_EQ(http_status(&r), 404);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), TEXT);
  ASSERT_STR_EQ(http_header(&r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(&r, "X-Go-Pprof") == NULL);
  expect_body(&r, "404 page not found\n");
  run_free(&r);
}

/* The rows of the index page: names and counts, in page order. */
typedef struct {
  char name[32];
  long count;
} row_t;

static const char* parse_rows(const char* p, row_t* rows, size_t* n) {
  *n = 0;
  while (strncmp(p, "<tr><td>", 8) == 0) {
    row_t* row = &rows[*n];
    char expect[160];
    char* end;
    size_t len;
    const char* q;

    ASSERT_LT(*n, 32);
    p += 8;
    row->count = strtol(p, &end, 10);
    ASSERT(end != p);
    p = end;
    ASSERT_STARTS_WITH(p, "</td><td><a href='");
    p += 18;
    q = strstr(p, "?debug=1'>");
    ASSERT(q != NULL);
    len = (size_t)(q - p);
    ASSERT_GT(len, 0);
    ASSERT_LT(len, sizeof(row->name));
    memcpy(row->name, p, len);
    row->name[len] = '\0';
    snprintf(expect, sizeof(expect), "?debug=1'>%s</a></td></tr>\n", row->name);
    ASSERT_STARTS_WITH(q, expect);
    p = q + strlen(expect);
    (*n)++;
  }
  return p;
}

static const row_t* find_row(const row_t* rows, size_t n, const char* name) {
  size_t i;

  for (i = 0; i < n; i++)
    if (strcmp(rows[i].name, name) == 0)
      return &rows[i];
  return NULL;
}

TEST_IMPL(routes_index) {
  /* Descriptions may say what uv_pprof does; cmdline's is Go's. */
  static const char* const go_desc[][2] = {
      {"cmdline", "The command line invocation of the current program"},
  };
  /* /metrics and the timeline (off here: test-metrics.c has it on) */
  static const char also[] =
      "<br>\n<p>\nAlso: <a href=\"/metrics\">/metrics</a> (Prometheus), the "
      "memory timeline: off (UV_PPROF_TIMELINE=&lt;seconds&gt;)\n</p>\n";
  static const char ui[] =
      "<br>\n<p>\nIn the browser (flame graph, top table; nothing to "
      "install): <a href=\"ui/allocs\">allocs</a> <a "
      "href=\"ui/block\">block</a> "
      "<a href=\"ui/goroutine\">goroutine</a> <a href=\"ui/heap\">heap</a> <a "
      "href=\"ui/mutex\">mutex</a> <a href=\"ui/profile?seconds=10\">profile "
      "(CPU, 10 s)</a> <a href=\"ui/threadcreate\">threadcreate</a>\n</p>\n";
  static const char mid[] = "<br>\n<p>\nProfile Descriptions:\n<ul>\n";
  static const char tail[] = "</ul>\n</p>\n</body>\n</html>";
  test_host_t* h = host_start(NULL);
  run_result_t r;
  row_t rows[32];
  size_t nrows;
  size_t len;
  size_t i;
  const char* body;
  const char* p;
  const row_t* row;

  get(h, "/debug/pprof/", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), "text/html; charset=utf-8");
  ASSERT_STR_EQ(http_header(&r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(&r, "X-Go-Pprof") == NULL);
  body = http_body(&r, &len);
  ASSERT_EQ(strlen(body), len);
  if (strncmp(body, index_head, strlen(index_head)) != 0) {
    fprintf(stderr, "index page:\n%s\n", body);
    ASSERT(0);
  }

  p = parse_rows(body + strlen(index_head), rows, &nrows);
  for (i = 1; i < nrows; i++)
    ASSERT(strcmp(rows[i - 1].name, rows[i].name) < 0);
  ASSERT(find_row(rows, nrows, "block") != NULL);
  ASSERT_EQ(find_row(rows, nrows, "block")->count, 0);
  ASSERT(find_row(rows, nrows, "cmdline") != NULL);
  ASSERT_EQ(find_row(rows, nrows, "cmdline")->count, 0);
  ASSERT(find_row(rows, nrows, "mutex") != NULL);
  ASSERT_EQ(find_row(rows, nrows, "mutex")->count, 0);
  row = find_row(rows, nrows, "threadcreate");
  ASSERT(row != NULL);
  ASSERT_EQ(row->count, nthreads());
  for (i = 0; not_yet[i] != NULL; i++)
    if (find_row(rows, nrows, not_yet[i]) != NULL) {
      fprintf(stderr, "index lists %s, not served yet\n", not_yet[i]);
      ASSERT(0);
    }

  ASSERT_STARTS_WITH(p, "</table>\n");
  p += 9;
  if (find_row(rows, nrows, "goroutine") != NULL) {
    static const char link[] =
        "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n";
    ASSERT_STARTS_WITH(p, link);
    p += strlen(link);
  }
  ASSERT_STARTS_WITH(p, also);
  p += strlen(also);
  ASSERT_STARTS_WITH(p, ui);
  p += strlen(ui);
  ASSERT_STARTS_WITH(p, mid);
  p += strlen(mid);
  for (i = 0; i < nrows; i++) {
    char li[128];
    const char* eol;
    size_t j;

    snprintf(li, sizeof(li), "<li><div class=profile-name>%.31s: </div> ",
             rows[i].name);
    ASSERT_STARTS_WITH(p, li);
    p += strlen(li);
    eol = strstr(p, "</li>\n");
    ASSERT(eol != NULL && eol > p); /* a description */
    ASSERT(memchr(p, '\n', (size_t)(eol - p)) == NULL);
    for (j = 0; j < sizeof(go_desc) / sizeof(go_desc[0]); j++)
      if (strcmp(rows[i].name, go_desc[j][0]) == 0) {
        ASSERT_EQ((size_t)(eol - p), strlen(go_desc[j][1]));
        ASSERT_STARTS_WITH(p, go_desc[j][1]);
      }
    p = eol + 6;
  }
  ASSERT_STR_EQ(p, tail);
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_redirect) {
  test_host_t* h = host_start(NULL);
  run_result_t r;

  get(h, "/debug/pprof", NULL, &r);
  ASSERT_EQ(http_status(&r), 301);
  ASSERT_STR_EQ(http_header(&r, "Location"), "/debug/pprof/");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* Go's ServeMux keeps the query string when it redirects to the slash. */
TEST_IMPL(routes_redirect_query) {
  test_host_t* h = host_start(NULL);
  run_result_t r;

  get(h, "/debug/pprof?x=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 301);
  ASSERT_STR_EQ(http_header(&r, "Location"), "/debug/pprof/?x=1");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* Go's ServeMux answers an unclean path with a redirect to the clean one,
 * keeping the query. */
TEST_IMPL(routes_unclean_path) {
  static const char* const cases[][2] = {
      {"/debug//pprof/cmdline", "/debug/pprof/cmdline"},
      {"/debug/pprof/./cmdline", "/debug/pprof/cmdline"},
      {"/debug/pprof/x/../mutex?debug=1", "/debug/pprof/mutex?debug=1"},
      {"/debug/pprof/../pprof/?x=1", "/debug/pprof/?x=1"},
  };
  const char* as_is[] = {"--path-as-is", NULL};
  test_host_t* h = host_start(NULL);
  run_result_t r;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    get(h, cases[i][0], as_is, &r);
    ASSERT_EQ(http_status(&r), 301);
    ASSERT_STR_EQ(http_header(&r, "Location"), cases[i][1]);
    run_free(&r);
  }
  host_stop(h);
  return 0;
}

static char* read_cmdline(size_t* len) {
  char* buf = malloc(65536);
  int fd = open("/proc/self/cmdline", O_RDONLY);
  ssize_t n;

  ASSERT(buf != NULL);
  ASSERT_GE(fd, 0);
  n = read(fd, buf, 65536);
  close(fd);
  ASSERT_GT(n, 0);
  ASSERT_EQ(buf[n - 1], '\0');
  *len = (size_t)n - 1;
  return buf;
}

static void expect_cmdline(const run_result_t* r) {
  size_t want_len;
  size_t len;
  char* want = read_cmdline(&want_len);
  const char* body = http_body(r, &len);
  char clen[32];

  ASSERT_EQ(http_status(r), 200);
  ASSERT_STR_EQ(http_header(r, "Content-Type"), TEXT);
  ASSERT_STR_EQ(http_header(r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(r, "Content-Disposition") == NULL);
  snprintf(clen, sizeof(clen), "%zu", want_len);
  ASSERT_STR_EQ(http_header(r, "Content-Length"), clen);
  ASSERT_EQ(len, want_len);
  ASSERT(memcmp(body, want, len) == 0);
  free(want);
}

TEST_IMPL(routes_cmdline) {
  test_host_t* h = host_start(NULL);
  run_result_t r;

  get(h, "/debug/pprof/cmdline", NULL, &r);
  expect_cmdline(&r);
  run_free(&r);
  /* The path is percent-decoded before routing. */
  get(h, "/debug/pprof/%63mdline", NULL, &r);
  expect_cmdline(&r);
  run_free(&r);
  /* All parameters are ignored, seconds included. */
  get(h, "/debug/pprof/cmdline?seconds=1&debug=2", NULL, &r);
  expect_cmdline(&r);
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_unknown_profile) {
  test_host_t* h = host_start(NULL);

  expect_go_error_at(h, "/debug/pprof/nosuch", 404, "Unknown profile");
  expect_go_error_at(h, "/debug/pprof/heap/", 404, "Unknown profile");
  expect_go_error_at(h, "/debug/pprof/cmdline/", 404, "Unknown profile");
  expect_go_error_at(h, "/debug/pprof/nosuch?debug=1", 404, "Unknown profile");
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_not_found) {
  test_host_t* h = host_start(NULL);

  expect_not_found(h, "/");
  expect_not_found(h, "/foo");
  expect_not_found(h, "/debug/pprofx");
  expect_not_found(h, "/debug/");
  host_stop(h);
  return 0;
}

static void check_proto(test_host_t* h, const char* name,
                        const char* period_type, const char* types) {
  run_result_t r;
  char path[128];
  char want[128];

  snprintf(path, sizeof(path), "/debug/pprof/%s", name);
  get(h, path, NULL, &r);
  expect_proto_headers(&r, name);
  run_free(&r);

  pprof_raw_url(h, path, &r);
  snprintf(want, sizeof(want), "PeriodType: %s\nPeriod: 1\n", period_type);
  ASSERT_CONTAINS(r.out, want);
  snprintf(want, sizeof(want), "Samples:\n%s\n", types);
  ASSERT_CONTAINS(r.out, want);
  run_free(&r);
}

TEST_IMPL(routes_threadcreate_proto) {
  test_host_t* h = host_start(NULL);
  run_result_t r;
  DIR* d;
  struct dirent* e;
  int n;

  check_proto(h, "threadcreate", "threadcreate count", "threadcreate/count");

  pprof_raw_url(h, "/debug/pprof/threadcreate", &r);
  n = nthreads();
  ASSERT_EQ(count_of(r.out, "thread:["), (size_t)n);
  ASSERT_EQ(count_of(r.out, "tid:["), (size_t)n);
  d = opendir("/proc/self/task");
  ASSERT(d != NULL);
  while ((e = readdir(d)) != NULL) {
    char tid[300];
    if (e->d_name[0] == '.')
      continue;
    snprintf(tid, sizeof(tid), "tid:[%s]", e->d_name);
    ASSERT_CONTAINS(r.out, tid);
  }
  closedir(d);
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_block_mutex_proto) {
  test_host_t* h = host_start(NULL);
  run_result_t r;

  check_proto(h, "block", "contentions count",
              "contentions/count delay/nanoseconds");
  check_proto(h, "mutex", "contentions count",
              "contentions/count delay/nanoseconds");
  /* No samples yet: the sample list is empty. */
  pprof_raw_url(h, "/debug/pprof/block", &r);
  ASSERT_CONTAINS(r.out, "contentions/count delay/nanoseconds\nLocations\n");
  run_free(&r);
  pprof_raw_url(h, "/debug/pprof/mutex", &r);
  ASSERT_CONTAINS(r.out, "contentions/count delay/nanoseconds\nLocations\n");
  run_free(&r);
  /* An empty seconds value is not a delta request. */
  get(h, "/debug/pprof/mutex?seconds=", NULL, &r);
  expect_proto_headers(&r, "mutex");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* `go tool pprof` reads every proto the index lists (all but cmdline). */
TEST_IMPL(routes_pprof_reads_all) {
  test_host_t* h = host_start(NULL);
  run_result_t r;
  row_t rows[32];
  size_t nrows;
  size_t len;
  size_t i;
  size_t nread = 0;

  get(h, "/debug/pprof/", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STARTS_WITH(http_body(&r, &len), index_head);
  parse_rows(http_body(&r, &len) + strlen(index_head), rows, &nrows);
  run_free(&r);
  for (i = 0; i < nrows; i++) {
    char path[64];
    if (strcmp(rows[i].name, "cmdline") == 0)
      continue;
    snprintf(path, sizeof(path), "/debug/pprof/%.31s", rows[i].name);
    pprof_raw_url(h, path, &r);
    /* -raw prints the profile's comments first (heap says why it is
     * empty in a process without jemalloc). */
    ASSERT(strncmp(r.out, "PeriodType: ", 12) == 0 ||
           (strncmp(r.out, "Comment: ", 9) == 0 &&
            strstr(r.out, "\nPeriodType: ") != NULL));
    ASSERT_CONTAINS(r.out, "\nSamples:\n");
    run_free(&r);
    nread++;
  }
  ASSERT_GE(nread, 3); /* threadcreate, block, mutex */
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_debug1) {
  test_host_t* h = host_start(NULL);
  run_result_t r;
  char want[64];
  size_t len;

  get(h, "/debug/pprof/threadcreate?debug=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), TEXT);
  ASSERT_STR_EQ(http_header(&r, "X-Content-Type-Options"), "nosniff");
  ASSERT(http_header(&r, "Content-Disposition") == NULL);
  snprintf(want, sizeof(want), "threadcreate profile: total %d\n", nthreads());
  ASSERT_STARTS_WITH(http_body(&r, &len), want);
  run_free(&r);

  get(h, "/debug/pprof/mutex?debug=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), TEXT);
  ASSERT(http_header(&r, "Content-Disposition") == NULL);
  expect_body(&r, "--- mutex:\ncycles/second=1000000000\nsampling period=0\n");
  run_free(&r);

  get(h, "/debug/pprof/block?debug=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), TEXT);
  ASSERT(http_header(&r, "Content-Disposition") == NULL);
  expect_body(&r, "--- contention:\ncycles/second=1000000000\n");
  run_free(&r);

  /* Go's Atoi: garbage means 0, i.e. the proto. */
  get(h, "/debug/pprof/mutex?debug=x", NULL, &r);
  expect_proto_headers(&r, "mutex");
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_seconds_errors) {
  static const char bad[] =
      "invalid value for \"seconds\" - must be a positive integer";
  test_host_t* h = host_start(NULL);

  expect_go_error_at(h, "/debug/pprof/threadcreate?seconds=abc", 400, bad);
  expect_go_error_at(h, "/debug/pprof/threadcreate?seconds=0", 400, bad);
  expect_go_error_at(h, "/debug/pprof/block?seconds=-3", 400, bad);
  expect_go_error_at(h, "/debug/pprof/mutex?seconds=1.5", 400, bad);
  expect_go_error_at(h, "/debug/pprof/threadcreate?seconds=1&debug=1", 400,
                     "seconds and debug params are incompatible");
  host_stop(h);
  return 0;
}

/* Go refuses a delta that cannot finish within the server's write timeout
 * (default 60 s here). */
/* Our write timeout counts from the first byte of the answer, so a delta
 * is bounded by its own limit instead of Go's WriteTimeout check. */
TEST_IMPL(routes_seconds_too_long) {
  const char* quick[] = {"--max-time", "5", NULL};
  test_host_t* h = host_start(NULL);
  run_result_t r;

  curl_get(h, "/debug/pprof/threadcreate?seconds=3601", quick, &r);
  ASSERT_EQ(r.status, 0); /* answered at once */
  expect_go_error(&r, 400,
                  "invalid value for \"seconds\" - must be at most 3600");
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_threadcreate_delta) {
  test_host_t* h = host_start(NULL);
  run_result_t r;
  char path[256];
  size_t len;
  const char* body;
  int fd;

  get(h, "/debug/pprof/threadcreate?seconds=1", NULL, &r);
  expect_proto_headers(&r, "threadcreate-delta");
  body = http_body(&r, &len);
  snprintf(path, sizeof(path), "%s/delta.pb.gz", test_tmpdir());
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, body, len), (ssize_t)len);
  close(fd);
  run_free(&r);

  pprof_raw(path, &r);
  ASSERT_CONTAINS(r.out, "PeriodType: threadcreate count\n");
  ASSERT_CONTAINS(r.out, "\nDuration: ");
  ASSERT_CONTAINS(r.out, "Samples:\nthreadcreate/count\n");
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_head) {
  static const char req[] =
      "HEAD /debug/pprof/cmdline HTTP/1.1\r\n"
      "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const char* head[] = {"-I", NULL};
  test_host_t* h = host_start(NULL);
  run_result_t r;
  size_t len;
  char* raw;
  char* end;
  int fd;

  get(h, "/debug/pprof/cmdline", head, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), TEXT);
  http_body(&r, &len);
  ASSERT_EQ(len, 0);
  run_free(&r);

  get(h, "/debug/pprof/threadcreate", head, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), OCTET);
  ASSERT_STR_EQ(http_header(&r, "Content-Disposition"),
                "attachment; filename=\"threadcreate\"");
  http_body(&r, &len);
  ASSERT_EQ(len, 0);
  run_free(&r);

  /* curl -I never reads a body: check on the wire that none is sent. */
  fd = tcp_connect(host_port(h));
  ASSERT_EQ(tcp_send(fd, req, sizeof(req) - 1), 0);
  raw = tcp_read_all(fd, 10000, &len);
  close(fd);
  ASSERT_STARTS_WITH(raw, "HTTP/1.1 200 OK\r\n");
  end = strstr(raw, "\r\n\r\n");
  ASSERT(end != NULL);
  ASSERT_EQ(end + 4 - raw, (long long)len);
  free(raw);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_post) {
  const char* post[] = {"-X", "POST", NULL};
  test_host_t* h = host_start(NULL);
  run_result_t r;
  size_t len;

  get(h, "/debug/pprof/threadcreate?debug=1", post, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), TEXT);
  ASSERT_STARTS_WITH(http_body(&r, &len), "threadcreate profile: total ");
  run_free(&r);

  get(h, "/debug/pprof/mutex", post, &r);
  expect_proto_headers(&r, "mutex");
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_method_not_allowed) {
  static const char* const methods[] = {"DELETE", "PUT", "OPTIONS", "PATCH",
                                        NULL};
  test_host_t* h = host_start(NULL);
  run_result_t r;
  size_t i;

  for (i = 0; methods[i] != NULL; i++) {
    const char* extra[] = {"-X", methods[i], NULL};
    get(h, "/debug/pprof/cmdline", extra, &r);
    ASSERT_EQ(http_status(&r), 405);
    ASSERT_STR_EQ(http_header(&r, "Allow"), "GET, HEAD, POST");
    run_free(&r);
  }
  host_stop(h);
  return 0;
}

TEST_IMPL(routes_token) {
  static const char* const refused[][3] = {
      {NULL, NULL, NULL},
      {"-H", "Authorization: Bearer wrong", NULL},
      {"-H", "Authorization: Bearer s3cre", NULL},
      {"-H", "Authorization: Bearer s3cretX", NULL},
      {"-H", "Authorization: Basic s3cret", NULL},
      {"-H", "Authorization: s3cret", NULL},
  };
  const char* good[] = {"-H", "Authorization: Bearer s3cret", NULL};
  uv_pprof_options_t o;
  test_host_t* h;
  run_result_t r;
  size_t i;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.token = "s3cret";
  h = host_start(&o);
  for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    get(h, "/debug/pprof/cmdline", refused[i], &r);
    ASSERT_EQ(http_status(&r), 401);
    run_free(&r);
  }
  get(h, "/debug/pprof/cmdline", good, &r);
  expect_cmdline(&r);
  run_free(&r);
  get(h, "/debug/pprof/", good, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_stop(h);
  return 0;
}

typedef struct {
  int port;
  int url_rc;
  int small_rc;
  char url[128];
  struct sockaddr_storage addr;
  int addr_rc;
} where_t;

static void ask_where(uv_loop_t* loop, void* arg) {
  where_t* w = arg;
  char small[10];

  w->url_rc = uv_pprof_url(loop, w->url, sizeof(w->url));
  w->small_rc = uv_pprof_url(loop, small, sizeof(small));
  w->addr_rc = uv_pprof_address(loop, &w->addr);
}

TEST_IMPL(routes_url_address) {
  test_host_t* h = host_start(NULL);
  struct sockaddr_in* sin;
  struct sockaddr_storage ss;
  where_t w;
  char want[128];
  char buf[128];
  uv_loop_t other;

  memset(&w, 0, sizeof(w));
  host_call(h, ask_where, &w);
  ASSERT_EQ(w.url_rc, 0);
  ASSERT_EQ(w.small_rc, UV_ENOBUFS);
  ASSERT_EQ(w.addr_rc, 0);
  snprintf(want, sizeof(want), "http://localhost:%d/debug/pprof/",
           host_port(h));
  ASSERT_STR_EQ(w.url, want);
  ASSERT_EQ(w.addr.ss_family, AF_INET);
  sin = (struct sockaddr_in*)&w.addr;
  ASSERT_EQ(ntohs(sin->sin_port), host_port(h));
  ASSERT_EQ(ntohl(sin->sin_addr.s_addr), 0x7f000001);
  host_stop(h);

  /* A loop uv_pprof does not serve. */
  ASSERT_EQ(uv_loop_init(&other), 0);
  ASSERT_EQ(uv_pprof_address(&other, &ss), UV_ENOENT);
  ASSERT_EQ(uv_pprof_url(&other, buf, sizeof(buf)), UV_ENOENT);
  ASSERT_EQ(uv_pprof_stop(&other), 0);
  ASSERT_EQ(uv_run(&other, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(uv_loop_close(&other), 0);
  return 0;
}
