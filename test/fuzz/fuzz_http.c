/* libFuzzer target: the HTTP request path, bytes in and answers out on a
 * socketpair the server serves as an accepted connection
 * (uv_pprof__server_adopt), with the real router, endpoints and worker
 * behind it. The input is what a client sends; the client then waits for
 * the answers (at most 5 s; a CPU profile's or a delta's window is not
 * waited for) and closes. The answers must be well-formed HTTP/1.1: a status
 * line, header lines each a known name with no CR or LF in its value, a
 * Location only ever on this origin (a path: no "//", no byte a browser
 * would read otherwise, no space or control), a Content-Length body; no more
 * answers than requests (llhttp's count of the input's complete requests) plus
 * one error; nothing after a "Connection: close"; every request answered when
 * the server closed the connection or when all the client waited for came. The
 * server must still answer a fresh connection after each input, and leak
 * nothing (ASan). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <llhttp.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#define WAIT_MS 5000
#define MAX_REQUESTS 256

static uv_loop_t loop;
static uv_idle_t spin; /* keeps the loop polling: uv_pprof's handles are
                          unref'd */
static uv_pprof__server_t* server;

/* ---- what the client sent: llhttp's reading of the input ----------------- */

typedef struct {
  size_t complete;            /* requests llhttp read whole */
  int windowed[MAX_REQUESTS]; /* that request waits for a window */
  int head[MAX_REQUESTS];     /* that request is a HEAD */
  char url[512];
  size_t url_len;
} sent_t;

static int on_url(llhttp_t* p, const char* at, size_t len) {
  sent_t* s = p->data;
  size_t room = sizeof(s->url) - 1 - s->url_len;

  if (len > room)
    len = room;
  memcpy(s->url + s->url_len, at, len);
  s->url_len += len;
  s->url[s->url_len] = '\0';
  return 0;
}

static int on_message_complete(llhttp_t* p) {
  sent_t* s = p->data;

  if (s->complete < MAX_REQUESTS)
    s->head[s->complete] = p->method == HTTP_HEAD;
  if (s->complete < MAX_REQUESTS)
    s->windowed[s->complete] = strstr(s->url, "seconds") != NULL ||
                               strstr(s->url, "/profile") != NULL ||
                               strcasestr(s->url, "%") != NULL;
  s->complete++;
  s->url_len = 0;
  s->url[0] = '\0';
  return 0;
}

static void read_sent(const uint8_t* data, size_t size, sent_t* s) {
  static llhttp_settings_t settings;
  llhttp_t p;

  memset(s, 0, sizeof(*s));
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_message_complete = on_message_complete;
  llhttp_init(&p, HTTP_REQUEST, &settings);
  p.data = s;
  llhttp_execute(&p, (const char*)data, size);
}

/* ---- what the server answered ------------------------------------------- */

typedef struct {
  size_t answers;   /* final (non-1xx) answers, whole */
  int closed_after; /* the last one said "Connection: close" */
  int truncated;    /* the bytes end inside an answer */
} answered_t;

static int known_header(const char* line, size_t len) {
  static const char* const names[] = {"Allow",
                                      "Cache-Control",
                                      "Content-Disposition",
                                      "Content-Encoding",
                                      "Content-Security-Policy",
                                      "Content-Type",
                                      "ETag",
                                      "Location",
                                      "Vary",
                                      "Www-Authenticate",
                                      "X-Content-Type-Options",
                                      "X-Go-Pprof",
                                      "X-Uv-Pprof-Base",
                                      "Date",
                                      "Content-Length",
                                      "Connection"};
  size_t i;

  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    size_t n = strlen(names[i]);
    if (len > n + 2 && strncmp(line, names[i], n) == 0 && line[n] == ':' &&
        line[n + 1] == ' ')
      return 1;
  }
  return 0;
}

/* Whether a Location value (value[0..len)) stays on this origin: a path
 * from the root, not "//host" nor "/\\host" (browsers read a backslash as
 * a slash), and only printable ASCII other than a space or backslash, as
 * the redirect escapes everything else (issue 12's item 1: this target
 * found the decoded path written raw, CR LF and all). */
static int same_origin(const char* value, size_t len) {
  size_t i;

  if (len == 0 || value[0] != '/' ||
      (len > 1 && (value[1] == '/' || value[1] == '\\')))
    return 0;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)value[i];
    if (c <= ' ' || c >= 0x7f || c == '\\')
      return 0;
  }
  return 1;
}

/* Reads the answers in buf[0..len) to the requests `sent`; aborts on
 * anything malformed. An answer to a HEAD has no body, unless it is an
 * error of the connection (which has one whatever the method): told apart
 * by what follows. */
static void read_answers(const char* buf, size_t len, const sent_t* sent,
                         answered_t* a) {
  const char* p = buf;
  const char* end = buf + len;

  memset(a, 0, sizeof(*a));
  while (p < end) {
    const char* head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    const char* line;
    long body = -1;
    int status;
    int close_it = 0;

    if (head_end == NULL) {
      a->truncated = 1;
      return;
    }
    if (a->closed_after)
      abort(); /* an answer after "Connection: close" */
    if (end - p < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 ||
        sscanf(p + 9, "%3d", &status) != 1 || status < 100 || status > 599)
      abort();
    line = memmem(p, (size_t)(head_end + 2 - p), "\r\n", 2) + 2;
    while (line < head_end + 2) {
      const char* eol = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
      size_t n = (size_t)(eol - line);
      if (memchr(line, '\r', n) != NULL || memchr(line, '\n', n) != NULL ||
          !known_header(line, n))
        abort(); /* header injection, or a name we never write */
      if (strncmp(line, "Location: ", 10) == 0 &&
          !same_origin(line + 10, n - 10))
        abort(); /* an open redirect */
      if (strncmp(line, "Content-Length: ", 16) == 0)
        body = strtol(line + 16, NULL, 10);
      if (strncmp(line, "Connection: close", 17) == 0)
        close_it = 1;
      line = eol + 2;
    }
    p = head_end + 4;
    if (status < 200)
      continue; /* 100 Continue */
    if (body < 0)
      abort();
    if (a->answers < sent->complete && a->answers < MAX_REQUESTS &&
        sent->head[a->answers] &&
        (p == end || (end - p >= 9 && memcmp(p, "HTTP/1.1 ", 9) == 0)))
      body = 0;
    if (end - p < body) {
      a->truncated = 1;
      return;
    }
    p += body;
    a->answers++;
    a->closed_after = close_it;
  }
}

/* ---- the exchange -------------------------------------------------------- */

static void on_spin(uv_idle_t* h) {
  (void)h;
}

static void setup(void) {
  uv_pprof__server_config_t config;
  struct sockaddr_in* sin = (struct sockaddr_in*)&config.addr;

  memset(&config, 0, sizeof(config));
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  config.max_connections = 64;
  config.idle_timeout_ms = 1000;
  config.request_timeout_ms = 1000;
  config.write_timeout_ms = 5000;
  if (uv_loop_init(&loop) != 0 || uv_idle_init(&loop, &spin) != 0 ||
      uv_idle_start(&spin, on_spin) != 0 ||
      uv_pprof__server_start(&loop, &config, &server) != 0)
    abort();
}

/* Serves one connection: sends `data`, collects the answers until the
 * client has what it waits for (or the server closes, or WAIT_MS pass),
 * then closes its end and lets the server close its own. Returns the
 * answers' bytes (malloc'd) and whether the server closed first. */
static char* exchange(const uint8_t* data, size_t size, const sent_t* sent,
                      size_t* len, int* server_closed) {
  uint64_t deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000;
  size_t off = 0;
  size_t cap = 65536;
  char* buf = malloc(cap);
  int sv[2];
  int i;

  *len = 0;
  *server_closed = 0;
  if (buf == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
      fcntl(sv[1], F_SETFL, O_NONBLOCK) != 0 ||
      uv_pprof__server_adopt(server, sv[0]) != 0)
    abort();
  while (uv_hrtime() < deadline) {
    answered_t a;
    ssize_t n;
    size_t k;
    int waits = 0;

    if (off < size) {
      n = write(sv[1], data + off, size - off);
      if (n > 0)
        off += (size_t)n;
      else if (n < 0 && errno != EAGAIN)
        break; /* the server closed: no more input taken */
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    for (;;) {
      if (cap - *len < 65536) {
        cap *= 2;
        buf = realloc(buf, cap);
        if (buf == NULL)
          abort();
      }
      n = read(sv[1], buf + *len, cap - *len);
      if (n <= 0)
        break;
      *len += (size_t)n;
    }
    if (n == 0) {
      *server_closed = 1;
      break;
    }
    read_answers(buf, *len, sent, &a);
    for (k = a.answers; k < sent->complete && k < MAX_REQUESTS; k++)
      waits |= !sent->windowed[k];
    if (off == size && !waits && !a.truncated)
      break; /* all that is worth waiting for came */
    if (off == size)
      poll(&(struct pollfd){sv[1], POLLIN, 0}, 1, 1);
  }
  close(sv[1]);
  for (i = 0; i < 1000; i++) /* the server sees the close */
    uv_run(&loop, UV_RUN_NOWAIT);
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char probe[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n";
  sent_t sent;
  answered_t a;
  char* buf;
  size_t len;
  int server_closed;

  if (server == NULL)
    setup();
  read_sent(data, size, &sent);
  buf = exchange(data, size, &sent, &len, &server_closed);
  read_answers(buf, len, &sent, &a);
  if (a.answers > sent.complete + 1)
    abort(); /* more answers than requests */
  if (server_closed && !a.truncated && !a.closed_after &&
      a.answers < sent.complete)
    abort(); /* closed with requests unanswered, and without saying so */
  free(buf);

  /* The server still answers. */
  read_sent((const uint8_t*)probe, sizeof(probe) - 1, &sent);
  buf = exchange((const uint8_t*)probe, sizeof(probe) - 1, &sent, &len,
                 &server_closed);
  read_answers(buf, len, &sent, &a);
  if (a.answers != 1 || strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
    abort();
  free(buf);
  return 0;
}
