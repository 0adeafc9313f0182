/* A tiny host built against the *installed* uv_pprof package by
 * test/package.sh (with CMake and with pkg-config, shared and static). It
 * starts uv_pprof on port 0, fetches /debug/pprof/cmdline from itself with a
 * libuv TCP client, checks that the answer is 200 with argv joined by NUL,
 * stops uv_pprof and checks that uv_loop_close() returns 0. Exit status 0
 * means all of that held; any failure prints one line and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv_pprof.h>

#define TIMEOUT_MS 10000

static uv_loop_t loop;
static uv_tcp_t client;
static uv_connect_t connect_req;
static uv_write_t write_req;
static uv_timer_t timeout_timer;
static char request[] =
    "GET /debug/pprof/cmdline HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Connection: close\r\n"
    "\r\n";
static char* response;
static size_t response_len;
static int done;

static void fail(const char* what, int err) {
  if (err != 0)
    fprintf(stderr, "consumer: %s: %s\n", what, uv_strerror(err));
  else
    fprintf(stderr, "consumer: %s\n", what);
  exit(1);
}

/* Stops everything once the answer is complete (or the peer closed). */
static void finish(void) {
  if (done)
    return;
  done = 1;
  if (uv_pprof_stop(&loop) != 0)
    fail("uv_pprof_stop failed", 0);
  uv_close((uv_handle_t*)&client, NULL);
  uv_close((uv_handle_t*)&timeout_timer, NULL);
}

/* 1 once the headers and Content-Length bytes of body are in. */
static int response_complete(void) {
  const char* end;
  const char* p;
  size_t head;

  if (response == NULL)
    return 0;
  end = strstr(response, "\r\n\r\n");
  if (end == NULL)
    return 0;
  head = (size_t)(end - response) + 4;
  for (p = response; p < end; p = strstr(p, "\r\n") + 2) {
    if (strncasecmp(p, "Content-Length:", 15) == 0)
      return response_len >= head + strtoul(p + 15, NULL, 10);
  }
  return 0; /* no length: read until the server closes */
}

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  char* grown = realloc(response, response_len + suggested + 1);

  (void)handle;
  if (grown == NULL)
    fail("out of memory", 0);
  response = grown;
  *buf = uv_buf_init(response + response_len, (unsigned int)suggested);
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  (void)stream;
  (void)buf;
  if (nread > 0) {
    response_len += (size_t)nread;
    response[response_len] = '\0';
    if (response_complete())
      finish();
  } else if (nread < 0) {
    finish();
  }
}

static void on_written(uv_write_t* req, int status) {
  (void)req;
  if (status != 0)
    fail("write", status);
}

static void on_connect(uv_connect_t* req, int status) {
  uv_buf_t buf = uv_buf_init(request, sizeof(request) - 1);
  int rc;

  (void)req;
  if (status != 0)
    fail("connect", status);
  rc = uv_write(&write_req, (uv_stream_t*)&client, &buf, 1, on_written);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t*)&client, on_alloc, on_read);
  if (rc != 0)
    fail("write/read", rc);
}

static void on_timeout(uv_timer_t* timer) {
  (void)timer;
  fail("no complete answer within 10 s", 0);
}

/* Checks the answer: status 200 and a body of argv joined by NUL. */
static void check_response(int argc, char** argv) {
  const char* body;
  size_t body_len;
  size_t expected_len = 0;
  size_t off = 0;
  int i;

  if (response == NULL || strncmp(response, "HTTP/1.1 200 ", 13) != 0) {
    fprintf(stderr, "consumer: expected 200, got:\n%s\n",
            response ? response : "(nothing)");
    exit(1);
  }
  body = strstr(response, "\r\n\r\n") + 4;
  body_len = response_len - (size_t)(body - response);
  for (i = 0; i < argc; i++)
    expected_len += strlen(argv[i]) + (i > 0);
  if (body_len != expected_len) {
    fprintf(stderr, "consumer: body has %zu bytes, expected %zu\n", body_len,
            expected_len);
    exit(1);
  }
  for (i = 0; i < argc; i++) {
    size_t n = strlen(argv[i]);
    if (i > 0 && body[off++] != '\0')
      fail("arguments not separated by NUL", 0);
    if (memcmp(body + off, argv[i], n) != 0)
      fail("body is not argv", 0);
    off += n;
  }
}

int main(int argc, char** argv) {
  uv_pprof_options_t options;
  struct sockaddr_storage addr;
  int rc;

  if (uv_loop_init(&loop) != 0)
    fail("uv_loop_init", 0);
  uv_pprof_options_init(&options);
  options.port = 0;
  options.quiet = 1;
  rc = uv_pprof_start_ex(&loop, &options);
  if (rc != 0)
    fail("uv_pprof_start_ex", rc);
  rc = uv_pprof_address(&loop, &addr);
  if (rc != 0)
    fail("uv_pprof_address", rc);

  uv_timer_init(&loop, &timeout_timer);
  uv_timer_start(&timeout_timer, on_timeout, TIMEOUT_MS, 0);
  uv_tcp_init(&loop, &client);
  rc = uv_tcp_connect(&connect_req, &client, (const struct sockaddr*)&addr,
                      on_connect);
  if (rc != 0)
    fail("uv_tcp_connect", rc);

  uv_run(&loop, UV_RUN_DEFAULT);
  if (!done)
    fail("the loop ended before the answer", 0);
  check_response(argc, argv);
  rc = uv_loop_close(&loop);
  if (rc != 0)
    fail("uv_loop_close", rc);
  free(response);
  printf("consumer: ok (cmdline from port %d)\n",
         ntohs(((struct sockaddr_in*)&addr)->sin_port));
  return 0;
}
