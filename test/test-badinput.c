/* Bad input, end to end: malformed and oversized requests on raw sockets,
 * keep-alive and pipelining, a storm of idle connections, slow and vanishing
 * clients, stopping with requests in flight; and, in a child process
 * (uv_pprof_envhost), what uv_pprof_start() does with every kind of UV_PPROF
 * value. Limits are checked by what the server answers, never by timing. */
#include <errno.h>
#include <poll.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "llhttp.h"
#include "task.h"

#define REQ(path) "GET " path " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

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

static void cmdline_of_self(char* buf, size_t size, size_t* len) {
  FILE* f = fopen("/proc/self/cmdline", "rb");
  size_t n;

  ASSERT(f != NULL);
  n = fread(buf, 1, size, f);
  fclose(f);
  ASSERT_GT(n, 0);
  ASSERT_LT(n, size);
  ASSERT_EQ(buf[n - 1], '\0');
  *len = n - 1;
}

/* ---- reading responses off a kept-alive connection ---------------------- */

typedef struct {
  int fd;
  char* data;
  size_t len;
} stream_t;

typedef struct {
  int status;
  char* head; /* status line and headers, NUL-terminated */
  char* body; /* decoded body, NUL-terminated */
  size_t body_len;
} response_t;

static int fill(stream_t* s) {
  struct pollfd p = {.fd = s->fd, .events = POLLIN};
  char* d;
  ssize_t n;

  if (poll(&p, 1, 10000) <= 0)
    return 0;
  d = realloc(s->data, s->len + 65536 + 1);
  ASSERT(d != NULL);
  s->data = d;
  n = recv(s->fd, s->data + s->len, 65536, 0);
  if (n <= 0)
    return 0;
  s->len += (size_t)n;
  s->data[s->len] = '\0';
  return 1;
}

static const char* find_header(const char* head, const char* name) {
  size_t n = strlen(name);
  const char* p = strstr(head, "\r\n");

  while (p != NULL && p[2] != '\0') {
    p += 2;
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      p += n + 1;
      while (*p == ' ')
        p++;
      return p;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

/* Reads the next complete response; 0 when the connection ended first. */
static int next_response(stream_t* s, response_t* r) {
  for (;;) {
    const char* end = s->data ? strstr(s->data, "\r\n\r\n") : NULL;
    if (end != NULL) {
      size_t hlen = (size_t)(end + 4 - s->data);
      const char* cl;
      const char* te;
      size_t used = 0;

      r->head = strndup(s->data, hlen);
      ASSERT(r->head != NULL);
      r->status = atoi(strchr(r->head, ' ') + 1);
      cl = find_header(r->head, "Content-Length");
      te = find_header(r->head, "Transfer-Encoding");
      if (te != NULL && strncasecmp(te, "chunked", 7) == 0) {
        size_t off = hlen;
        r->body = malloc(s->len + 1);
        ASSERT(r->body != NULL);
        r->body_len = 0;
        for (;;) {
          char* crlf = strstr(s->data + off, "\r\n");
          size_t n;
          if (crlf == NULL)
            break;
          n = strtoul(s->data + off, NULL, 16);
          if (s->len < (size_t)(crlf + 2 - s->data) + n + 2)
            break;
          memcpy(r->body + r->body_len, crlf + 2, n);
          r->body_len += n;
          off = (size_t)(crlf + 2 - s->data) + n + 2;
          if (n == 0) {
            used = off;
            break;
          }
        }
      } else {
        size_t n = cl ? strtoul(cl, NULL, 10) : 0;
        if (s->len >= hlen + n) {
          r->body = malloc(n + 1);
          ASSERT(r->body != NULL);
          memcpy(r->body, s->data + hlen, n);
          r->body_len = n;
          used = hlen + n;
        }
      }
      if (used != 0) {
        r->body[r->body_len] = '\0';
        memmove(s->data, s->data + used, s->len - used + 1);
        s->len -= used;
        return 1;
      }
      free(r->head);
      free(r->body);
      r->head = r->body = NULL;
    }
    if (!fill(s))
      return 0;
  }
}

static void response_free(response_t* r) {
  free(r->head);
  free(r->body);
}

static void expect_cmdline_response(stream_t* s) {
  char want[65536];
  size_t want_len;
  response_t r;

  cmdline_of_self(want, sizeof(want), &want_len);
  ASSERT(next_response(s, &r));
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body_len, want_len);
  ASSERT(memcmp(r.body, want, want_len) == 0);
  response_free(&r);
}

static void expect_unknown_response(stream_t* s) {
  response_t r;

  ASSERT(next_response(s, &r));
  ASSERT_EQ(r.status, 404);
  ASSERT_STR_EQ(r.body, "Unknown profile\n");
  response_free(&r);
}

/* ---- one-shot requests on raw sockets ----------------------------------- */

/* Sends req (ignoring a send failure: the server may answer and close before
 * it has read everything) and returns all the server says until it closes. */
static char* exchange(test_host_t* h, const char* req, size_t len) {
  int fd = tcp_connect(host_port(h));
  char* out;

  tcp_send(fd, req, len);
  out = tcp_read_all(fd, 20000, NULL);
  ASSERT(peer_closed(fd));
  close(fd);
  return out;
}

static void expect_status_line(const char* out, const char* line) {
  if (strncmp(out, line, strlen(line)) != 0) {
    fprintf(stderr, "got:\n%s\nexpected a response starting with %s\n", out,
            line);
    ASSERT(0);
  }
}

static const char* llhttp_reason(const char* req) {
  static char reason[256];
  llhttp_settings_t settings;
  llhttp_t parser;

  llhttp_settings_init(&settings);
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  ASSERT_NE(llhttp_execute(&parser, req, strlen(req)), HPE_OK);
  snprintf(reason, sizeof(reason), "%s", llhttp_get_error_reason(&parser));
  return reason;
}

TEST_IMPL(badinput_malformed_request) {
  static const char* const bad[] = {
      "\x01\x02\x03 garbage\r\n\r\n",
      "GET /debug/pprof/ XTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /debug/pprof/ HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
      NULL};
  test_host_t* h = host_start(NULL);
  size_t i;

  for (i = 0; bad[i] != NULL; i++) {
    const char* reason = llhttp_reason(bad[i]);
    char* out = exchange(h, bad[i], strlen(bad[i]));
    const char* body;

    expect_status_line(out, "HTTP/1.1 400 Bad Request\r\n");
    body = strstr(out, "\r\n\r\n");
    ASSERT(body != NULL);
    ASSERT_NE(body[4], '\0');
    ASSERT_CONTAINS(out, "Content-Type: text/plain; charset=utf-8\r\n");
    ASSERT_CONTAINS(body + 4, reason);
    free(out);
  }
  host_stop(h);
  return 0;
}

TEST_IMPL(badinput_headers_too_large) {
  test_host_t* h = host_start(NULL);
  char* req = malloc(65536);
  size_t len = 0;
  int i;
  char* out;

  ASSERT(req != NULL);
  len += (size_t)sprintf(req,
                         "GET /debug/pprof/cmdline HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n");
  for (i = 0; i < 40; i++) { /* 40 x 512 bytes > 16 KiB */
    len += (size_t)sprintf(req + len, "X-Pad-%02d: ", i);
    memset(req + len, 'a', 500);
    len += 500;
    len += (size_t)sprintf(req + len, "\r\n");
  }
  len += (size_t)sprintf(req + len, "\r\n");
  out = exchange(h, req, len);
  expect_status_line(out, "HTTP/1.1 431 ");
  free(out);
  free(req);
  host_stop(h);
  return 0;
}

TEST_IMPL(badinput_url_too_long) {
  test_host_t* h = host_start(NULL);
  char* req = malloc(8192);
  size_t len;
  char* out;

  ASSERT(req != NULL);
  len = (size_t)sprintf(req, "GET /debug/pprof/");
  memset(req + len, 'a', 5000);
  len += 5000;
  len += (size_t)sprintf(req + len, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  out = exchange(h, req, len);
  expect_status_line(out, "HTTP/1.1 414 ");
  free(out);
  free(req);
  host_stop(h);
  return 0;
}

TEST_IMPL(badinput_body_too_large) {
  static const char req[] =
      "POST /debug/pprof/cmdline HTTP/1.1\r\n"
      "Host: 127.0.0.1\r\nContent-Length: 10\r\n\r\n"
      "0123456789";
  test_host_t* h = host_start(NULL);
  char* out = exchange(h, req, sizeof(req) - 1);

  expect_status_line(out, "HTTP/1.1 413 ");
  free(out);
  host_stop(h);
  return 0;
}

TEST_IMPL(badinput_keepalive) {
  static const char last[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\n"
      "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
  test_host_t* h = host_start(NULL);
  stream_t s = {tcp_connect(host_port(h)), NULL, 0};
  response_t r;

  ASSERT_EQ(tcp_send(s.fd, REQ("/debug/pprof/cmdline"),
                     strlen(REQ("/debug/pprof/cmdline"))),
            0);
  expect_cmdline_response(&s);
  ASSERT(!peer_closed(s.fd));
  ASSERT_EQ(tcp_send(s.fd, REQ("/debug/pprof/nosuch"),
                     strlen(REQ("/debug/pprof/nosuch"))),
            0);
  expect_unknown_response(&s);
  ASSERT_EQ(tcp_send(s.fd, last, sizeof(last) - 1), 0);
  expect_cmdline_response(&s);
  ASSERT(!next_response(&s, &r));
  ASSERT(peer_closed(s.fd));
  close(s.fd);
  free(s.data);
  host_stop(h);
  return 0;
}

TEST_IMPL(badinput_pipelining) {
  static const char reqs[] =
      REQ("/debug/pprof/cmdline") REQ("/debug/pprof/nosuch")
      REQ("/debug/pprof/mutex?debug=1") REQ("/debug/pprof/threadcreate")
      "GET /debug/pprof/nosuch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n";
  test_host_t* h = host_start(NULL);
  stream_t s = {tcp_connect(host_port(h)), NULL, 0};
  response_t r;

  ASSERT_EQ(tcp_send(s.fd, reqs, sizeof(reqs) - 1), 0);
  expect_cmdline_response(&s);
  expect_unknown_response(&s);
  ASSERT(next_response(&s, &r));
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(r.body,
                "--- mutex:\ncycles/second=1000000000\nsampling period=0\n");
  response_free(&r);
  ASSERT(next_response(&s, &r));
  ASSERT_EQ(r.status, 200);
  ASSERT_CONTAINS(r.head,
                  "Content-Disposition: attachment; "
                  "filename=\"threadcreate\"\r\n");
  ASSERT_EQ((unsigned char)r.body[0], 0x1f);
  response_free(&r);
  expect_unknown_response(&s);
  ASSERT(!next_response(&s, &r));
  close(s.fd);
  free(s.data);
  host_stop(h);
  return 0;
}

#define STORM 2000

static void raise_fd_limit(int need) {
  struct rlimit rl;

  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_GE(rl.rlim_cur, (rlim_t)need);
}

/* 2,000 idle connections at once, none sending a byte: each new one takes
 * the slot of the one idle the longest, which is closed without a word, so
 * the newest max_connections (64) hold the slots, the host's own timer
 * keeps running, and a fresh client is served while all are held.
 * Connections are accepted in connect order, so which ones hold slots is
 * known. */
TEST_IMPL(badinput_connection_storm) {
  uv_pprof_options_t o;
  test_host_t* h;
  run_result_t r;
  uint64_t ticks;
  int* fds;
  int i;

  raise_fd_limit(STORM + 256);
  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  ASSERT_EQ(o.max_connections, 64);
  h = host_start(&o);
  ticks = host_ticks(h);

  fds = malloc(STORM * sizeof(*fds));
  ASSERT(fds != NULL);
  for (i = 0; i < STORM; i++)
    fds[i] = tcp_connect(host_port(h));
  for (i = 0; i < STORM - 64; i++) {
    size_t len;
    char* out = tcp_read_all(fds[i], 20000, &len);
    ASSERT(peer_closed(fds[i]));
    ASSERT_EQ(len, 0);
    free(out);
    close(fds[i]);
  }
  for (i = STORM - 64; i < STORM; i++)
    ASSERT(!peer_closed(fds[i]));  /* holding the slots */
  ASSERT_GT(host_ticks(h), ticks); /* the host's own timer kept running */

  /* All slots taken by idle connections: curl takes the oldest's. */
  curl_get(h, "/debug/pprof/cmdline", NULL, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  for (i = STORM - 64; i < STORM; i++)
    close(fds[i]);
  free(fds);
  host_stop(h);
  return 0;
}

/* Connections that send nothing, and kept-alive ones after a response, are
 * closed by the server once idle, without a word. */
TEST_IMPL(badinput_idle_timeout) {
  uv_pprof_options_t o;
  test_host_t* h;
  stream_t s;
  response_t none;
  run_result_t r;
  int fds[64];
  int i;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.idle_timeout_ms = 300;
  h = host_start(&o);

  for (i = 0; i < 64; i++)
    fds[i] = tcp_connect(host_port(h));
  for (i = 0; i < 64; i++) {
    size_t len;
    char* out = tcp_read_all(fds[i], 20000, &len);
    ASSERT(peer_closed(fds[i]));
    ASSERT_EQ(len, 0);
    free(out);
    close(fds[i]);
  }

  s.fd = tcp_connect(host_port(h));
  s.data = NULL;
  s.len = 0;
  ASSERT_EQ(tcp_send(s.fd, REQ("/debug/pprof/cmdline"),
                     strlen(REQ("/debug/pprof/cmdline"))),
            0);
  expect_cmdline_response(&s);
  ASSERT(!next_response(&s, &none));
  ASSERT(peer_closed(s.fd));
  ASSERT_EQ(s.len, 0);
  close(s.fd);
  free(s.data);

  curl_get(h, "/debug/pprof/cmdline", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_stop(h);
  return 0;
}

static test_host_t* start_with_request_timeout(void) {
  uv_pprof_options_t o;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.request_timeout_ms = 200;
  return host_start(&o);
}

/* A request that never completes is dropped without an answer (or with a
 * 408), however the client paces it. */
TEST_IMPL(badinput_slow_client) {
  static const char* const partial[] = {
      "GET /debug/pprof/cmdline HT",
      "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n", NULL};
  test_host_t* h = start_with_request_timeout();
  uint64_t ticks = host_ticks(h);
  run_result_t r;
  size_t i;
  int fd;
  int sent;

  for (i = 0; partial[i] != NULL; i++) {
    size_t len;
    char* out;
    fd = tcp_connect(host_port(h));
    ASSERT_EQ(tcp_send(fd, partial[i], strlen(partial[i])), 0);
    out = tcp_read_all(fd, 20000, &len);
    ASSERT(peer_closed(fd));
    if (len != 0)
      ASSERT_STARTS_WITH(out, "HTTP/1.1 408 ");
    free(out);
    close(fd);
  }

  /* Slowloris: one header byte at a time, each well within any idle limit.
   * The bound on the loop only keeps the test finite. */
  fd = tcp_connect(host_port(h));
  ASSERT_EQ(tcp_send(fd, partial[1], strlen(partial[1])), 0);
  ASSERT_EQ(tcp_send(fd, "X-Slow: ", 8), 0);
  for (sent = 0; sent < 2400; sent++) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (tcp_send(fd, "a", 1) != 0)
      break;
    if (poll(&p, 1, 50) > 0 && peer_closed(fd))
      break;
  }
  ASSERT_LT(sent, 2400);
  close(fd);

  ASSERT_GT(host_ticks(h), ticks);
  curl_get(h, "/debug/pprof/cmdline", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_stop(h);
  return 0;
}

TEST_IMPL(badinput_disconnect_mid_response) {
  test_host_t* h = host_start(NULL);
  static const char one[] =
      REQ("/debug/pprof/threadcreate?debug=1") REQ("/debug/pprof/");
  char* reqs = malloc(sizeof(one) * 200);
  size_t len = 0;
  run_result_t r;
  int round;
  int i;

  ASSERT(reqs != NULL);
  for (i = 0; i < 200; i++) {
    memcpy(reqs + len, one, sizeof(one) - 1);
    len += sizeof(one) - 1;
  }
  for (round = 0; round < 6; round++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 2048;
    struct sockaddr_in sin;
    char buf[1000];

    /* A tiny receive window so that the server is surely mid-write. */
    ASSERT_GE(fd, 0);
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)host_port(h));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr*)&sin, sizeof(sin)), 0);
    ASSERT_EQ(tcp_send(fd, reqs, len), 0);
    if (round % 2 == 1) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      ASSERT_EQ(poll(&p, 1, 20000), 1);
      ASSERT_GT(recv(fd, buf, sizeof(buf), 0), 0);
    }
    if (round % 3 == 2) {
      struct linger lg = {1, 0}; /* reset rather than close */
      ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    }
    close(fd);
  }
  free(reqs);

  /* Still serving, every route. */
  curl_get(h, "/debug/pprof/threadcreate?debug=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  curl_get(h, "/debug/pprof/", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_stop(h);
  return 0;
}

static void nop(uv_loop_t* loop, void* arg) {
}

TEST_IMPL(badinput_stop_in_flight) {
  static const char partial[] = "GET /debug/pprof/cmdline HTTP/1.1\r\nHo";
  test_host_t* h = host_start(NULL);
  int delta = tcp_connect(host_port(h));
  int debug = tcp_connect(host_port(h));
  int half = tcp_connect(host_port(h));
  int idle = tcp_connect(host_port(h));
  char* out;
  size_t len;

  ASSERT_EQ(tcp_send(delta, REQ("/debug/pprof/threadcreate?seconds=5"),
                     strlen(REQ("/debug/pprof/threadcreate?seconds=5"))),
            0);
  ASSERT_EQ(tcp_send(debug, REQ("/debug/pprof/threadcreate?debug=1"),
                     strlen(REQ("/debug/pprof/threadcreate?debug=1"))),
            0);
  ASSERT_EQ(tcp_send(half, partial, sizeof(partial) - 1), 0);
  /* Let the loop read what was sent: each call is a full loop iteration. */
  host_call(h, nop, NULL);
  host_call(h, nop, NULL);
  sleep_ms(100);
  host_call(h, nop, NULL);

  host_stop(h); /* asserts uv_loop_close() == 0, and that uv_pprof's
                   worker, never waited for, exits by itself */

  out = tcp_read_all(delta, 20000, &len);
  ASSERT(peer_closed(delta));
  ASSERT_EQ(len, 0); /* abandoned, not answered */
  free(out);
  out = tcp_read_all(half, 20000, &len);
  ASSERT(peer_closed(half));
  free(out);
  out = tcp_read_all(idle, 20000, &len);
  ASSERT(peer_closed(idle));
  ASSERT_EQ(len, 0);
  free(out);
  out = tcp_read_all(debug, 20000, &len);
  ASSERT(peer_closed(debug));
  free(out);
  close(delta);
  close(debug);
  close(half);
  close(idle);
  return 0;
}

/* ---- process level: uv_pprof_start() and UV_PPROF ------------------------ */

/* The integer after "key=" in envhost's output. */
static long value_of(const char* out, const char* key) {
  char k[64];
  const char* p = NULL;

  snprintf(k, sizeof(k), "\n%s=", key);
  if (strncmp(out, k + 1, strlen(k + 1)) == 0)
    p = out + strlen(k + 1);
  else if ((p = strstr(out, k)) != NULL)
    p += strlen(k);
  if (p == NULL) {
    fprintf(stderr, "no %s in:\n%s\n", key, out);
    ASSERT(0);
  }
  return strtol(p, NULL, 10);
}

static void envhost(const char* value, const char* arg, run_result_t* r) {
  static char setting[256];
  const char* argv[] = {UV_PPROF_ENVHOST, arg, NULL};
  const char* env[] = {setting, "UV_PPROF_TOKEN", NULL};

  if (value != NULL)
    snprintf(setting, sizeof(setting), "UV_PPROF=%s", value);
  else
    snprintf(setting, sizeof(setting), "UV_PPROF");
  run_cmd(argv, env, 60000, r);
  if (r->status != 0)
    fprintf(stderr, "envhost UV_PPROF=%s: status %d\n%s\n%s\n",
            value ? value : "(unset)", r->status, r->out, r->err);
  ASSERT_EQ(r->status, 0);
}

/* Nothing was left behind: no thread, fd or handle. */
static void expect_untouched(const run_result_t* r) {
  ASSERT_EQ(value_of(r->out, "threads_after"),
            value_of(r->out, "threads_before"));
  ASSERT_EQ(value_of(r->out, "fds_after"), value_of(r->out, "fds_before"));
  ASSERT_EQ(value_of(r->out, "heap_after"), value_of(r->out, "heap_before"));
  ASSERT_EQ(value_of(r->out, "signals_after"),
            value_of(r->out, "signals_before"));
  ASSERT_EQ(value_of(r->out, "handles"), 0);
  ASSERT_EQ(value_of(r->out, "port"), -1);
}

static void expect_one_line(const char* err) {
  size_t len = strlen(err);

  if (len < 2 || err[len - 1] != '\n' || strchr(err, '\n') != err + len - 1) {
    fprintf(stderr, "stderr is not one line:\n%s\n", err);
    ASSERT(0);
  }
}

TEST_IMPL(badinput_env_garbage) {
  static const char* const values[] = {
      "abc", "70000",       "1.2.3.4:", "[::1", "host:99999",
      "-1",  "127.0.0.1:x", "1 2",      NULL};
  run_result_t r;
  size_t i;

  for (i = 0; values[i] != NULL; i++) {
    envhost(values[i], NULL, &r);
    if (value_of(r.out, "rc") != UV_EINVAL)
      fprintf(stderr, "UV_PPROF=%s:\n%s%s", values[i], r.out, r.err);
    ASSERT_EQ(value_of(r.out, "rc"), UV_EINVAL);
    ASSERT_CONTAINS(r.out, "\nname=EINVAL\n");
    expect_one_line(r.err);
    expect_untouched(&r);
    run_free(&r);
  }
  return 0;
}

TEST_IMPL(badinput_env_port_in_use) {
  struct sockaddr_in sin;
  socklen_t slen = sizeof(sin);
  char value[64];
  run_result_t r;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port;

  ASSERT_GE(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, (struct sockaddr*)&sin, sizeof(sin)), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  ASSERT_EQ(getsockname(fd, (struct sockaddr*)&sin, &slen), 0);
  port = ntohs(sin.sin_port);

  snprintf(value, sizeof(value), "127.0.0.1:%d", port);
  envhost(value, NULL, &r);
  ASSERT_EQ(value_of(r.out, "rc"), UV_EADDRINUSE);
  ASSERT_CONTAINS(r.out, "\nname=EADDRINUSE\n");
  expect_one_line(r.err);
  expect_untouched(&r);
  run_free(&r);

  snprintf(value, sizeof(value), "%d", port); /* PORT alone: loopback */
  envhost(value, NULL, &r);
  ASSERT_EQ(value_of(r.out, "rc"), UV_EADDRINUSE);
  expect_one_line(r.err);
  expect_untouched(&r);
  run_free(&r);
  close(fd);
  return 0;
}

/* A non-loopback address without a token is refused before anything is
 * bound; with a token the same value would serve. */
TEST_IMPL(badinput_env_public_needs_token) {
  static const char* const values[] = {":0", "0.0.0.0:0", "[::]:0", NULL};
  run_result_t r;
  size_t i;

  for (i = 0; values[i] != NULL; i++) {
    envhost(values[i], NULL, &r);
    ASSERT_EQ(value_of(r.out, "rc"), UV_EACCES);
    ASSERT_CONTAINS(r.err, "UV_PPROF_TOKEN");
    expect_one_line(r.err);
    expect_untouched(&r);
    run_free(&r);
  }
  return 0;
}

TEST_IMPL(badinput_env_disabled) {
  static const char* const values[] = {NULL, "", "0"};
  run_result_t r;
  size_t i;

  for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    envhost(values[i], NULL, &r);
    ASSERT_EQ(value_of(r.out, "rc"), 0);
    ASSERT_STR_EQ(r.err, "");
    expect_untouched(&r);
    run_free(&r);
  }
  return 0;
}

TEST_IMPL(badinput_env_banner) {
  run_result_t r;
  char want[512];
  long port;

  envhost("127.0.0.1:0", "--run", &r);
  ASSERT_EQ(value_of(r.out, "rc"), 0);
  port = value_of(r.out, "port");
  ASSERT_GT(port, 0);
  ASSERT_LT(port, 65536);
  /* envhost's malloc is glibc's: a second line says heap profiling is
   * off and how to turn it on (test-heap.c checks the other cases). */
  snprintf(want, sizeof(want),
           "pprof enabled on http://localhost:%ld/debug/pprof/\n"
           "uv_pprof: heap profiling is off: this process's malloc is not "
           "jemalloc. Start it with LD_PRELOAD=libjemalloc.so.2 "
           "MALLOC_CONF=prof:true,prof_accum:true (or link it with "
           "-ljemalloc and set MALLOC_CONF) to turn it on\n",
           port);
  ASSERT_STR_EQ(r.err, want);
  /* The host's walk sees none of uv_pprof's handles; they are there. */
  ASSERT_EQ(value_of(r.out, "handles"), 0);
  ASSERT_GT(value_of(r.out, "hidden"), 2);
  run_free(&r);
  return 0;
}

/* A host holding only uv_pprof's handles leaves uv_run() at once, and the
 * loop closes cleanly after uv_pprof_stop(). */
TEST_IMPL(badinput_unref_exits) {
  run_result_t r;

  envhost("127.0.0.1:0", "--run", &r);
  ASSERT_EQ(value_of(r.out, "rc"), 0);
  ASSERT_EQ(value_of(r.out, "run"), 0);
  ASSERT_EQ(value_of(r.out, "stop"), 0);
  ASSERT_EQ(value_of(r.out, "loop_close"), 0);
  run_free(&r);
  return 0;
}
