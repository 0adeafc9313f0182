/* The server against its abusers, end to end with real clients (curl, nc,
 * go tool pprof, raw sockets): redirects that can neither add a header nor
 * leave the origin; the Host rule of a loopback server (DNS rebinding); the
 * token checked when the headers are complete, before any body or
 * 100-continue, and refusals paced; idle connections evicted to make room,
 * and a connection flood that cannot pile up the host's descriptors;
 * clients that half-close after their request; an Upgrade request followed
 * by another; accepting without memory. No test asserts a duration: each
 * waits with a bound for what must happen. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "profile.pb-c.h"
#include "task.h"

#define TOKEN "0123456789abcdef" /* 16: long enough for any address */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* 1 when the peer has closed fd (EOF or reset), 0 when it is still open. */
static int peer_closed(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void raise_fd_limit(int need) {
  struct rlimit rl;

  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_GE(rl.rlim_cur, (rlim_t)need);
}

static test_host_t* start_host(const char* token) {
  uv_pprof_options_t o;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.token = token;
  return host_start(&o);
}

/* Sends req on a new connection and returns all the server says until it
 * closes (bounded). */
static char* exchange(int port, const char* req, size_t* len) {
  int fd = tcp_connect(port);
  char* out;

  tcp_send(fd, req, strlen(req));
  out = tcp_read_all(fd, 20000, len);
  ASSERT(peer_closed(fd));
  close(fd);
  return out;
}

/* The value of header `name` in a raw answer's head (before the blank line),
 * copied into a static buffer; NULL when absent. */
static const char* raw_header(const char* answer, const char* name) {
  static char value[1024];
  const char* end = strstr(answer, "\r\n\r\n");
  const char* p = strstr(answer, "\r\n");
  size_t n = strlen(name);

  while (p != NULL && end != NULL && p < end) {
    const char* eol;
    p += 2;
    eol = strstr(p, "\r\n");
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      size_t len;
      p += n + 1;
      while (*p == ' ')
        p++;
      len = (size_t)(eol - p);
      ASSERT_LT(len, sizeof(value));
      memcpy(value, p, len);
      value[len] = '\0';
      return value;
    }
    p = eol;
  }
  return NULL;
}

static int raw_status(const char* answer) {
  if (strncmp(answer, "HTTP/1.1 ", 9) != 0)
    return -1;
  return atoi(answer + 9);
}

/* A kept-alive connection's input: what has arrived and is not yet read. */
typedef struct {
  int fd;
  char* data;
  size_t len;
} stream_t;

/* The next response (Content-Length framed) on s, as a malloc'd string;
 * what follows it stays in s. NULL when the connection ended first. */
static char* next_response(stream_t* s) {
  for (;;) {
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    const char* end = s->data != NULL ? strstr(s->data, "\r\n\r\n") : NULL;
    ssize_t n;

    if (end != NULL) {
      const char* cl = raw_header(s->data, "Content-Length");
      size_t want =
          (size_t)(end + 4 - s->data) + (cl ? strtoul(cl, NULL, 10) : 0);
      if (s->len >= want) {
        char* out = strndup(s->data, want);
        ASSERT(out != NULL);
        memmove(s->data, s->data + want, s->len - want + 1);
        s->len -= want;
        return out;
      }
    }
    if (poll(&p, 1, 20000) != 1)
      return NULL;
    s->data = realloc(s->data, s->len + 65536 + 1);
    ASSERT(s->data != NULL);
    n = recv(s->fd, s->data + s->len, 65536, 0);
    if (n <= 0)
      return NULL;
    s->len += (size_t)n;
    s->data[s->len] = '\0';
  }
}

/* The one response to the one request sent on fd: nothing unasked for
 * follows it. */
static char* read_response(int fd) {
  stream_t s = {fd, NULL, 0};
  char* out = next_response(&s);

  ASSERT_EQ(s.len, 0);
  free(s.data);
  return out;
}

/* ---- 1. redirects: no header injection, no other origin ----------------- */

/* The headers a 301 may carry: the percent-decoded path must not add any. */
static void expect_only_redirect_headers(const char* answer) {
  static const char* const allowed[] = {"Content-Type",
                                        "Location",
                                        "X-Content-Type-Options",
                                        "Date",
                                        "Content-Length",
                                        "Connection",
                                        NULL};
  const char* end = strstr(answer, "\r\n\r\n");
  const char* p = strstr(answer, "\r\n");

  ASSERT(end != NULL);
  while (p < end) {
    const char* colon;
    size_t i;
    p += 2;
    colon = strchr(p, ':');
    ASSERT(colon != NULL);
    for (i = 0; allowed[i] != NULL; i++)
      if ((size_t)(colon - p) == strlen(allowed[i]) &&
          strncasecmp(p, allowed[i], strlen(allowed[i])) == 0)
        break;
    if (allowed[i] == NULL) {
      fprintf(stderr, "unexpected header in:\n%s\n", answer);
      ASSERT(0);
    }
    p = strstr(p, "\r\n");
  }
}

TEST_IMPL(server_redirect_header_injection) {
  static const char req[] =
      "GET /debug/pprof//%0d%0aSet-Cookie:%20x=1 HTTP/1.1\r\n"
      "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const char* as_is[] = {"--path-as-is", NULL};
  test_host_t* h = start_host(NULL);
  run_result_t r;
  size_t len;
  char* out = exchange(host_port(h), req, &len);

  ASSERT_EQ(raw_status(out), 301);
  expect_only_redirect_headers(out);
  ASSERT(raw_header(out, "Set-Cookie") == NULL);
  ASSERT_STR_EQ(raw_header(out, "Location"),
                "/debug/pprof/%0D%0ASet-Cookie:%20x=1");
  free(out);

  curl_get(h, "/debug/pprof//%0d%0aSet-Cookie:%20x=1", as_is, &r);
  ASSERT_EQ(http_status(&r), 301);
  ASSERT(http_header(&r, "Set-Cookie") == NULL);
  ASSERT_STR_EQ(http_header(&r, "Location"),
                "/debug/pprof/%0D%0ASet-Cookie:%20x=1");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* Every redirect is to a path of this server, whatever the decoded path
 * holds; a browser (here curl -L) following it stays here. */
TEST_IMPL(server_redirect_same_origin) {
  static const char* const cases[][2] = {
      {"/%5cevil.example/.", "/%5Cevil.example"},
      {"/%5c%5cevil.example/.", "/%5C%5Cevil.example"},
      {"/%2f%2fevil.example/.", "/evil.example"},
      {"/.%2f%5cevil.example", "/%5Cevil.example"},
      {"/debug/pprof/..%2f..%2f%09evil/.", "/%09evil"},
      {"/%20/evil.example/.", "/%20/evil.example"},
      {"/debug//pprof%3fx=1", "/debug/pprof%3Fx=1"},
      {"/debug/pprof?x=%0d%0a", "/debug/pprof/?x=%0d%0a"},
  };
  const char* as_is[] = {"--path-as-is", NULL};
  test_host_t* h = start_host(NULL);
  char origin[128];
  size_t i;

  snprintf(origin, sizeof(origin), "%s/", host_base(h));
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char url[256];
    const char* loc;
    const char* follow[] = {"curl",
                            "-s",
                            "-o",
                            "/dev/null",
                            "--path-as-is",
                            "-L",
                            "--max-redirs",
                            "5",
                            "--max-time",
                            "20",
                            "-w",
                            "%{url_effective}",
                            url,
                            NULL};
    run_result_t r;
    size_t j;

    curl_get(h, cases[i][0], as_is, &r);
    ASSERT_EQ(http_status(&r), 301);
    loc = http_header(&r, "Location");
    ASSERT_STR_EQ(loc, cases[i][1]);
    ASSERT(loc[0] == '/' && loc[1] != '/' && loc[1] != '\\');
    for (j = 0; loc[j] != '\0'; j++)
      ASSERT((unsigned char)loc[j] > ' ' && (unsigned char)loc[j] < 0x7f &&
             loc[j] != '\\');
    run_free(&r);

    snprintf(url, sizeof(url), "%s%s", host_base(h), cases[i][0]);
    run_cmd(follow, NULL, 30000, &r);
    ASSERT_EQ(r.status, 0);
    if (strncmp(r.out, origin, strlen(origin)) != 0) {
      fprintf(stderr, "%s led to %s\n", cases[i][0], r.out);
      ASSERT(0);
    }
    run_free(&r);
  }
  host_stop(h);
  return 0;
}

/* ---- 2. DNS rebinding: the Host rule of a loopback server --------------- */

static void expect_host(test_host_t* h, const char* host, int status) {
  char req[512];
  char* out;
  size_t len;

  snprintf(req, sizeof(req),
           "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: %s\r\n"
           "Connection: close\r\n\r\n",
           host);
  out = exchange(host_port(h), req, &len);
  if (raw_status(out) != status) {
    fprintf(stderr, "Host: %s answered:\n%s\nexpected %d\n", host, out, status);
    ASSERT(0);
  }
  if (status == 403) {
    ASSERT_STR_EQ(raw_header(out, "X-Go-Pprof"), "1");
    ASSERT_STR_EQ(raw_header(out, "Content-Type"), "text/plain; charset=utf-8");
    ASSERT_STR_EQ(raw_header(out, "Connection"), "close");
    ASSERT_CONTAINS(out, "\r\n\r\nForbidden: ");
    ASSERT_CONTAINS(out, "UV_PPROF_TOKEN");
  }
  free(out);
}

TEST_IMPL(server_host_rule) {
  static const char* const allowed[] = {"localhost",
                                        "LocalHost:1",
                                        "localhost:6060",
                                        "127.0.0.1",
                                        "127.9.8.7:1",
                                        "[::1]",
                                        "[::1]:80",
                                        "[0:0:0:0:0:0:0:1]:8",
                                        "[::ffff:127.0.0.1]:9",
                                        "localhost: ",
                                        NULL};
  static const char* const refused[] = {"evil.example",
                                        "evil.example:6060",
                                        "localhost.evil.example",
                                        "localhost.",
                                        "127.0.0.1.nip.io",
                                        "127.1",
                                        "2130706433",
                                        "0x7f.0.0.1",
                                        "10.0.0.1",
                                        "0.0.0.0:1",
                                        "[::]:1",
                                        "[::1",
                                        "[::1]x",
                                        "::1",
                                        "[fe80::1%25lo]",
                                        "localhost:http",
                                        "localhost:6060:1",
                                        "localhost:123456",
                                        "",
                                        NULL};
  static const char no_host_10[] = "GET /debug/pprof/cmdline HTTP/1.0\r\n\r\n";
  static const char no_host_11[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\nConnection: close\r\n\r\n";
  static const char two_hosts[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: localhost\r\n"
      "Host: evil.example\r\nConnection: close\r\n\r\n";
  const char* evil[] = {"-H", "Host: evil.example", NULL};
  const char* evil_good[] = {"-H", "Host: evil.example", "-H",
                             "Authorization: Bearer " TOKEN, NULL};
  char port_host[64];
  char url[128];
  const char* pprof[] = {"-raw", url, NULL};
  test_host_t* h = start_host(NULL);
  run_result_t r;
  size_t len;
  size_t i;
  char* out;

  for (i = 0; allowed[i] != NULL; i++)
    expect_host(h, allowed[i], 200);
  snprintf(port_host, sizeof(port_host), "127.0.0.1:%d", host_port(h));
  expect_host(h, port_host, 200);
  for (i = 0; refused[i] != NULL; i++)
    expect_host(h, refused[i], 403);
  /* No browser omits Host: a request without one is nobody's page. */
  out = exchange(host_port(h), no_host_10, &len);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  out = exchange(host_port(h), no_host_11, &len);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  out = exchange(host_port(h), two_hosts, &len);
  ASSERT_EQ(raw_status(out), 400);
  free(out);
  /* curl, and go tool pprof on a localhost URL. */
  curl_get(h, "/debug/pprof/cmdline", evil, &r);
  ASSERT_EQ(http_status(&r), 403);
  run_free(&r);
  snprintf(url, sizeof(url), "http://localhost:%d/debug/pprof/threadcreate",
           host_port(h));
  go_pprof(pprof, &r);
  ASSERT_CONTAINS(r.out, "PeriodType: threadcreate count");
  run_free(&r);
  host_stop(h);

  /* A token-protected server answers any Host, with the token. */
  h = start_host(TOKEN);
  curl_get(h, "/debug/pprof/cmdline", evil_good, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  curl_get(h, "/debug/pprof/cmdline", evil, &r);
  ASSERT_EQ(http_status(&r), 401);
  run_free(&r);
  host_stop(h);
  return 0;
}

/* ---- 3. the token: before the body, paced refusals, its length ---------- */

/* A wrong or missing token is answered when the headers are complete: no
 * 100 Continue, no wait for the announced 4 MiB body. */
TEST_IMPL(server_token_before_body) {
  static const char* const auths[] = {"Authorization: Bearer wrong\r\n", "",
                                      NULL};
  static const char good[] =
      "POST /debug/pprof/symbol HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer " TOKEN
      "\r\n"
      "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  test_host_t* h = start_host(TOKEN);
  char* out;
  size_t len;
  size_t i;
  int fd;

  for (i = 0; auths[i] != NULL; i++) {
    char req[512];
    snprintf(req, sizeof(req),
             "POST /debug/pprof/symbol HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
             "Expect: 100-continue\r\nContent-Length: 4194304\r\n\r\n",
             auths[i]);
    out = exchange(host_port(h), req, &len);
    ASSERT_STARTS_WITH(out, "HTTP/1.1 401 Unauthorized\r\n");
    ASSERT_NOT_CONTAINS(out, "100 Continue");
    ASSERT_STR_EQ(raw_header(out, "Www-Authenticate"),
                  "Bearer realm=\"uv_pprof\"");
    ASSERT_STR_EQ(raw_header(out, "X-Go-Pprof"), "1");
    free(out);
  }

  /* With the token: 100 Continue, then the answer to the body. */
  fd = tcp_connect(host_port(h));
  ASSERT_EQ(tcp_send(fd, good, sizeof(good) - 1), 0);
  out = read_response(fd);
  ASSERT(out != NULL);
  ASSERT_STR_EQ(out, "HTTP/1.1 100 Continue\r\n\r\n");
  free(out);
  ASSERT_EQ(tcp_send(fd, "0x1", 3), 0);
  out = read_response(fd);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 200);
  ASSERT_CONTAINS(out, "\r\n\r\nnum_symbols: 1\n");
  free(out);
  close(fd);
  host_stop(h);
  return 0;
}

static void send_all(int* fds, int n, int port, const char* token) {
  char req[256];
  int i;

  snprintf(req, sizeof(req),
           "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer %s\r\n\r\n",
           token);
  for (i = 0; i < n; i++)
    fds[i] = tcp_connect(port);
  for (i = 0; i < n; i++)
    ASSERT_EQ(tcp_send(fds[i], req, strlen(req)), 0);
}

/* Reads a 401 from each of n connections, noting when each arrived. */
static void read_refusals(const int* fds, int n, uint64_t* at) {
  struct pollfd p[64];
  int left = n;
  int i;

  ASSERT_LE(n, 64);
  for (i = 0; i < n; i++) {
    p[i].fd = fds[i];
    p[i].events = POLLIN;
    at[i] = 0;
  }
  while (left > 0) {
    ASSERT_GT(poll(p, (nfds_t)n, 20000), 0);
    for (i = 0; i < n; i++) {
      char* out;
      if (p[i].fd < 0 || p[i].revents == 0)
        continue;
      out = read_response(fds[i]);
      ASSERT(out != NULL);
      at[i] = uv_hrtime();
      ASSERT_EQ(raw_status(out), 401);
      free(out);
      p[i].fd = -1;
      left--;
    }
  }
}

/* Wrong tokens are answered one per 100 ms at most, server-wide, without
 * holding up a right one. */
TEST_IMPL(server_token_pace) {
  enum { N = 12, QUEUED = 60 };
  test_host_t* h = start_host(TOKEN);
  int fds[QUEUED];
  uint64_t at[QUEUED];
  uint64_t sent;
  uint64_t last = 0;
  char* out;
  int waiting;
  int good;
  int i;

  sent = uv_hrtime();
  send_all(fds, N, host_port(h), "wrong");
  read_refusals(fds, N, at);
  for (i = 0; i < N; i++) {
    last = at[i] > last ? at[i] : last;
    close(fds[i]);
  }
  /* The first refusal's turn is no earlier than the requests were sent
   * (less the loop clock's millisecond step), the last one's N - 1 turns
   * later. A slow machine only makes that longer. */
  if (last - sent < (uint64_t)(N - 1) * 100000000 - 2000000) {
    fprintf(stderr, "%d refusals within %.3f s\n", N, (last - sent) / 1e9);
    ASSERT(0);
  }

  /* 60 refusals queued (6 s of them); a right token is answered before
   * they all are. */
  send_all(fds, QUEUED, host_port(h), "wrong");
  send_all(&good, 1, host_port(h), TOKEN);
  out = read_response(good);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  close(good);
  waiting = 0;
  for (i = 0; i < QUEUED; i++) {
    struct pollfd p = {.fd = fds[i], .events = POLLIN};
    waiting += poll(&p, 1, 0) == 0;
  }
  ASSERT_GT(waiting, 0);
  read_refusals(fds, QUEUED, at);
  for (i = 0; i < QUEUED; i++)
    close(fds[i]);
  host_stop(h);
  return 0;
}

/* uv_pprof_envhost's `key=` integer. */
static long value_of(const char* out, const char* key) {
  char k[64];
  const char* p;

  snprintf(k, sizeof(k), "%s=", key);
  p = strstr(out, k);
  ASSERT(p != NULL && (p == out || p[-1] == '\n'));
  return strtol(p + strlen(k), NULL, 10);
}

/* A token shorter than 16 characters cannot guard a non-loopback address:
 * refused before anything is bound (one line, nothing left behind); on
 * loopback it is accepted as before (routes_token). */
TEST_IMPL(server_short_token) {
  static const char* const values[] = {":0", "0.0.0.0:0", "[::]:0", NULL};
  static const char* const tokens[] = {"x", "0123456789abcde", NULL};
  uv_pprof_options_t o;
  uv_loop_t loop;
  size_t i;
  size_t j;

  for (i = 0; values[i] != NULL; i++)
    for (j = 0; tokens[j] != NULL; j++) {
      char setting[64];
      char token[64];
      const char* argv[] = {UV_PPROF_ENVHOST, NULL};
      const char* env[] = {setting, token, NULL};
      const char* nl;
      run_result_t r;

      snprintf(setting, sizeof(setting), "UV_PPROF=%s", values[i]);
      snprintf(token, sizeof(token), "UV_PPROF_TOKEN=%s", tokens[j]);
      run_cmd(argv, env, 60000, &r);
      ASSERT_EQ(r.status, 0);
      ASSERT_EQ(value_of(r.out, "rc"), UV_EINVAL);
      ASSERT_CONTAINS(r.err, "at least 16");
      nl = strchr(r.err, '\n');
      ASSERT(nl != NULL && nl[1] == '\0'); /* one line */
      ASSERT_EQ(value_of(r.out, "fds_after"), value_of(r.out, "fds_before"));
      ASSERT_EQ(value_of(r.out, "threads_after"),
                value_of(r.out, "threads_before"));
      ASSERT_EQ(value_of(r.out, "port"), -1);
      run_free(&r);
    }

  ASSERT_EQ(uv_loop_init(&loop), 0);
  uv_pprof_options_init(&o);
  o.host = "0.0.0.0";
  o.port = 0;
  o.token = "short";
  ASSERT_EQ(uv_pprof_start_ex(&loop, &o), UV_EINVAL);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  return 0;
}

/* ---- 4. connections: eviction, floods ----------------------------------- */

#define REQ_CMDLINE \
  "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
#define KEPT 2000

/* 2,000 keep-alive connections, each after its answer: every new one
 * closes the one idle the longest, so the newest 64 hold the slots, the
 * others are closed, and a fresh client is answered while all 2,000 are
 * held. */
TEST_IMPL(server_idle_eviction) {
  test_host_t* h = start_host(NULL);
  uint64_t ticks = host_ticks(h);
  run_result_t r;
  int* fds = malloc(KEPT * sizeof(*fds));
  char* out;
  int i;

  ASSERT(fds != NULL);
  raise_fd_limit(KEPT + 256);
  for (i = 0; i < KEPT; i++) {
    fds[i] = tcp_connect(host_port(h));
    ASSERT_EQ(tcp_send(fds[i], REQ_CMDLINE, strlen(REQ_CMDLINE)), 0);
    out = read_response(fds[i]);
    if (out == NULL || raw_status(out) != 200) {
      fprintf(stderr, "connection %d: %s\n", i, out ? out : "(closed)");
      ASSERT(0);
    }
    free(out);
  }

  curl_get(h, "/debug/pprof/cmdline", NULL, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  ASSERT_GT(host_ticks(h), ticks); /* the host's own timer kept running */

  /* curl's connection took the slot of the oldest of the last 64. */
  for (i = 0; i < KEPT - 63; i++) {
    int closed = 0;
    int tries;
    for (tries = 0; tries < 2000 && !(closed = peer_closed(fds[i])); tries++)
      sleep_ms(1); /* its FIN may still be on the way */
    if (!closed)
      fprintf(stderr, "connection %d was not closed\n", i);
    ASSERT(closed);
  }
  for (i = KEPT - 63; i < KEPT; i++)
    ASSERT(!peer_closed(fds[i]));
  ASSERT_EQ(tcp_send(fds[KEPT - 1], REQ_CMDLINE, strlen(REQ_CMDLINE)), 0);
  out = read_response(fds[KEPT - 1]);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  for (i = 0; i < KEPT; i++)
    close(fds[i]);
  free(fds);
  host_stop(h);
  return 0;
}

/* The demo in a process of its own, whose descriptors are counted. */
typedef struct {
  child_t child;
  int port;
  char fd_dir[64];
  atomic_int stop;
  atomic_int max_fds;
  pthread_t sampler;
} demo_t;

static int count_fds(const demo_t* d) {
  DIR* dir = opendir(d->fd_dir);
  struct dirent* e;
  int n = 0;

  ASSERT(dir != NULL);
  while ((e = readdir(dir)) != NULL)
    n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

static void* sample_fds(void* arg) {
  demo_t* d = arg;

  while (!atomic_load(&d->stop)) {
    int n = count_fds(d);
    if (n > atomic_load(&d->max_fds))
      atomic_store(&d->max_fds, n);
    sleep_ms(1);
  }
  return NULL;
}

static void demo_start(demo_t* d) {
  static const char* const argv[] = {UV_PPROF_DEMO, "--echo-port", "0", NULL};
  static const char* const env[] = {"UV_PPROF*", "UV_PPROF=127.0.0.1:0", NULL};
  static const char url[] = "pprof: http://localhost:";
  char line[512];

  child_start(&d->child, "demo", argv, env);
  do
    child_line(&d->child, line, sizeof(line), 20000);
  while (strncmp(line, url, strlen(url)) != 0);
  d->port = atoi(line + strlen(url));
  ASSERT_GT(d->port, 0);
  snprintf(d->fd_dir, sizeof(d->fd_dir), "/proc/%d/fd", (int)d->child.pid);
}

static int get_status(int port, const char* path) {
  char req[256];
  char* out;
  size_t len;
  int status;

  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           path);
  out = exchange(port, req, &len);
  status = raw_status(out);
  free(out);
  return status;
}

#define FLOOD 3000 /* idle connections, held */
#define BUSY 64    /* requests in progress: every slot */
#define FLOOD2 2000

/* A connection flood against a real host process: its descriptors stay
 * within 200 of where they were while 3,000 idle connections are held (a
 * fresh request is answered meanwhile) and while 2,000 more arrive with
 * every slot busy (those get 503s or are closed at once), and come back to
 * where they were once the clients are gone. */
TEST_IMPL(server_connection_flood) {
  static const char busy_req[] =
      "GET /debug/pprof/threadcreate?seconds=60 HTTP/1.1\r\n"
      "Host: 127.0.0.1\r\n\r\n";
  demo_t d;
  int* fds = malloc((FLOOD + BUSY + FLOOD2) * sizeof(*fds));
  int base;
  int n = 0;
  int probes;
  int i;

  ASSERT(fds != NULL);
  raise_fd_limit(FLOOD + BUSY + FLOOD2 + 256);
  memset(&d, 0, sizeof(d));
  demo_start(&d);
  /* Warm: the worker thread and whatever a first request opens for good. */
  ASSERT_EQ(get_status(d.port, "/debug/pprof/cmdline"), 200);
  ASSERT_EQ(get_status(d.port, "/debug/pprof/threadcreate?seconds=1"), 200);
  base = count_fds(&d);
  atomic_store(&d.max_fds, base);
  ASSERT_EQ(pthread_create(&d.sampler, NULL, sample_fds, &d), 0);

  for (i = 0; i < FLOOD; i++)
    fds[n++] = tcp_connect(d.port);
  ASSERT_EQ(get_status(d.port, "/debug/pprof/cmdline"), 200);

  /* Once the 64 requests are in progress, a new connection gets a 503.
   * Until then a probe takes the slot of one whose request the server has
   * not read yet (to the server, an idle connection): that one is sent
   * again. */
  for (probes = 0; probes < 100; probes++) {
    int fd;
    char* out;
    int rejected;
    for (i = 0; i < BUSY; i++) {
      if (probes > 0 && !peer_closed(fds[n + i]))
        continue;
      if (probes > 0)
        close(fds[n + i]);
      fds[n + i] = tcp_connect(d.port);
      ASSERT_EQ(tcp_send(fds[n + i], busy_req, sizeof(busy_req) - 1), 0);
    }
    fd = tcp_connect(d.port);
    out = tcp_read_all(fd, 200, NULL);
    rejected = raw_status(out) == 503;
    free(out);
    close(fd);
    if (rejected)
      break;
  }
  ASSERT_LT(probes, 100);
  n += BUSY;
  for (i = 0; i < FLOOD2; i++)
    fds[n++] = tcp_connect(d.port);
  sleep_ms(200); /* the last ones reach the server */

  atomic_store(&d.stop, 1);
  ASSERT_EQ(pthread_join(d.sampler, NULL), 0);
  fprintf(stderr, "host descriptors: %d at rest, at most %d in the flood\n",
          base, atomic_load(&d.max_fds));
  ASSERT_LE(atomic_load(&d.max_fds) - base, 200);

  for (i = 0; i < n; i++)
    close(fds[i]);
  free(fds);
  for (i = 0; i < 3000 && count_fds(&d) > base; i++)
    sleep_ms(10);
  if (count_fds(&d) > base)
    fprintf(stderr, "host descriptors: %d, %d at rest\n", count_fds(&d), base);
  ASSERT_LE(count_fds(&d), base);
  ASSERT_EQ(get_status(d.port, "/debug/pprof/cmdline"), 200);
  child_stop(&d.child);
  return 0;
}

/* ---- 8. small protocol faults ------------------------------------------- */

/* printf REQUESTS | nc -N: the request, then a half-close. */
static void nc_half_close(test_host_t* h, const char* requests,
                          run_result_t* r) {
  char script[1024];

  snprintf(script, sizeof(script), "printf '%s' | nc -N 127.0.0.1 %d", requests,
           host_port(h));
  run_sh(script, 60000, r);
  ASSERT_EQ(r->status, 0);
}

static void expect_window_cut(const run_result_t* r, const char* file,
                              int64_t window_ns) {
  char disposition[64];
  const char* body;
  size_t len;
  Perftools__Profiles__Profile* p;

  ASSERT_EQ(http_status(r), 200);
  snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"",
           file);
  ASSERT_STR_EQ(http_header(r, "Content-Disposition"), disposition);
  body = http_body(r, &len);
  p = profile_decode(body, len);
  ASSERT_LT(p->duration_nanos, window_ns); /* ended by the half-close */
  perftools__profiles__profile__free_unpacked(p, NULL);
}

/* `nc -N` sends its request, then half-closes, then reads: it gets its
 * answer, whoever makes it; a window ends early, as Go's does when the
 * client's side ends. */
TEST_IMPL(server_half_close) {
  test_host_t* h = start_host(NULL);
  run_result_t r;
  char cmdline[4096];
  size_t cmdline_len;
  size_t len;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

  ASSERT_GE(fd, 0);
  cmdline_len = (size_t)read(fd, cmdline, sizeof(cmdline));
  close(fd);
  ASSERT(cmdline_len > 1 && cmdline_len < sizeof(cmdline));
  cmdline_len--; /* no trailing NUL in the answer */
  nc_half_close(h, "GET /debug/pprof/cmdline HTTP/1.0\\r\\n\\r\\n", &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT(memcmp(http_body(&r, &len), cmdline, cmdline_len) == 0);
  ASSERT_EQ(len, cmdline_len);
  run_free(&r);

  nc_half_close(h,
                "GET /debug/pprof/threadcreate?debug=1 HTTP/1.1\\r\\n"
                "Host: localhost\\r\\n\\r\\n",
                &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STARTS_WITH(http_body(&r, &len), "threadcreate profile: total ");
  run_free(&r);

  nc_half_close(h, "GET /debug/pprof/ HTTP/1.0\\r\\n\\r\\n", &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_CONTAINS(http_body(&r, &len), "Types of profiles available:");
  run_free(&r);

  /* Two pipelined requests: both answered, in order. */
  nc_half_close(h,
                "GET /debug/pprof/threadcreate?debug=1 HTTP/1.1\\r\\n"
                "Host: localhost\\r\\n\\r\\n"
                "GET /debug/pprof/nosuch HTTP/1.1\\r\\nHost: localhost\\r\\n"
                "\\r\\n",
                &r);
  ASSERT_STARTS_WITH(r.out, "HTTP/1.1 200 OK\r\n");
  ASSERT(strstr(r.out, "threadcreate profile: total ") <
         strstr(r.out, "HTTP/1.1 404 Not Found\r\n"));
  ASSERT(strstr(r.out, "threadcreate profile: total ") != NULL);
  ASSERT_CONTAINS(r.out, "\r\n\r\nUnknown profile\n");
  run_free(&r);

  nc_half_close(
      h, "GET /debug/pprof/threadcreate?seconds=30 HTTP/1.0\\r\\n\\r\\n", &r);
  expect_window_cut(&r, "threadcreate-delta", 30 * INT64_C(1000000000));
  run_free(&r);
  nc_half_close(h, "GET /debug/pprof/profile?seconds=30 HTTP/1.0\\r\\n\\r\\n",
                &r);
  expect_window_cut(&r, "profile", 30 * INT64_C(1000000000));
  run_free(&r);
  host_stop(h);
  return 0;
}

/* uv_pprof upgrades to nothing: a request asking for it is answered as any
 * other, and the next one on the connection too. */
TEST_IMPL(server_upgrade_keepalive) {
  static const char upgrade[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  static const char h2c[] =
      "GET /debug/pprof/nosuch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
  test_host_t* h = start_host(NULL);
  stream_t s = {tcp_connect(host_port(h)), NULL, 0};
  char* out;

  ASSERT_EQ(tcp_send(s.fd, upgrade, sizeof(upgrade) - 1), 0);
  out = next_response(&s);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  ASSERT_EQ(tcp_send(s.fd, REQ_CMDLINE, strlen(REQ_CMDLINE)), 0);
  out = next_response(&s);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  /* Pipelined after an Upgrade request, in one write. */
  ASSERT_EQ(tcp_send(s.fd, h2c, sizeof(h2c) - 1), 0);
  ASSERT_EQ(tcp_send(s.fd, REQ_CMDLINE, strlen(REQ_CMDLINE)), 0);
  out = next_response(&s);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 404);
  free(out);
  out = next_response(&s);
  ASSERT(out != NULL);
  ASSERT_EQ(raw_status(out), 200);
  free(out);
  ASSERT_EQ(s.len, 0);
  close(s.fd);
  free(s.data);
  host_stop(h);
  return 0;
}

static void fail_next_calloc(uv_loop_t* loop, void* arg) {
  failalloc_calloc_next();
}

/* No memory for a new connection: it is closed, and the listener goes on
 * accepting (libuv watches it again only once a connection is accepted). */
TEST_IMPL(server_accept_enomem) {
  test_host_t* h = start_host(NULL);
  int failures = failalloc_failures();
  run_result_t r;
  size_t len;
  char* out;
  int fd;

  host_call(h, fail_next_calloc, NULL);
  fd = tcp_connect(host_port(h));
  out = tcp_read_all(fd, 20000, &len);
  ASSERT_EQ(len, 0);
  ASSERT(peer_closed(fd));
  free(out);
  close(fd);
  ASSERT_EQ(failalloc_failures(), failures + 1);

  curl_get(h, "/debug/pprof/cmdline", NULL, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_stop(h);
  return 0;
}
