/* The listener and its connections on the host's loop: accept (the
 * connection cap, making room by closing the connection idle the longest;
 * the loopback-peer rule), llhttp parsing with keep-alive, pipelining and
 * half-closed clients, request limits, admission when a request's headers
 * are complete (the bearer token, its refusals paced; the Host rule of a
 * loopback server), per-connection timeouts, and writing responses. What a
 * request gets is decided by router.c; the answer comes back through
 * req->finish. Every handle here is unref'd. Answers go out with
 * send(MSG_NOSIGNAL), never libuv's writes (see "sending"). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <llhttp.h>

#include "server.h"

#define READ_BUF_SIZE 65536
#define LINGER_MS 1000
/* An answer goes out a chunk per write, the next one sent when the last
 * has gone: the kernel takes what fits in the socket buffer in one go (MBs
 * on loopback), so one write of debug=2's 18 MB copied MBs per iteration.
 * 64 KiB, not more: on a VM whose kernel copies ~300 MB/s into a socket a
 * 256 KiB chunk held the loop 0.8 ms, and one iteration may write two. */
#define WRITE_CHUNK (64 * 1024)
/* Bodies from this size on are freed on the worker: unmapping 18 MB took
 * the loop 1.5 ms. */
#define FREE_ON_WORKER (1024 * 1024)
/* Refused tokens are answered one per REFUSAL_INTERVAL_MS, server-wide, each
 * on its connection's own timer, so guessing costs time and never blocks
 * the loop. A refusal that would wait longer than REFUSAL_QUEUE intervals
 * is closed unanswered, so nothing piles up. */
#define REFUSAL_INTERVAL_MS 100
#define REFUSAL_QUEUE 64
/* Connections over the cap when none can be closed to make room: this many
 * at most get a 503 (and linger for it); the others are closed at once, so
 * a connection flood cannot pile up descriptors. */
#define MAX_REJECTED 16

enum conn_state {
  STATE_IDLE,     /* keep-alive: waiting for a request's first byte */
  STATE_READING,  /* a request is arriving */
  STATE_REFUSING, /* a refused token: its 401 waits for its turn */
  STATE_ROUTED,   /* the router owns the request */
  STATE_WRITING,  /* the response is being written */
  STATE_LINGER,   /* write side shut; draining input before close */
  STATE_CLOSING
};

/* Which count a connection takes: a slot under the cap, or a 503's. */
enum conn_slot { SLOT_NONE, SLOT_ADMITTED, SLOT_REJECTED };

typedef struct uv_pprof__conn_s uv_pprof__conn_t;

/* Connections that may be closed to make room, oldest first. */
typedef struct {
  uv_pprof__conn_t* head;
  uv_pprof__conn_t* tail;
} queue_t;

struct uv_pprof__server_s {
  uv_loop_t* loop;
  uv_tcp_t listener;
  uv_pprof__server_config_t config;
  struct sockaddr_storage bound;
  uv_pprof__worker_t* worker;
  uv_pprof__conn_t* conns;
  unsigned int nconns;    /* SLOT_ADMITTED, at most max_connections */
  unsigned int nrejected; /* SLOT_REJECTED, at most MAX_REJECTED */
  /* First to go at the cap: idle, lingering after their answer, or waiting
   * for a refusal. Then: those whose request is still arriving. */
  queue_t spare;
  queue_t arriving;
  uint64_t next_refusal; /* uv_now() of the next 401's turn */
  /* Takes a pending connection when there is no memory for one (libuv
   * watches the listener again only once a connection is accepted). */
  uv_tcp_t sink;
  int sink_busy;
  int sink_waiting;
  unsigned int open_handles;
  int closing;
  char* read_buf;
  int loopback;
  int forked; /* a fork's child: the listener is a stand-in */
};

struct uv_pprof__conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown_req;
  /* Sending (see "sending"): out watches out_fd, a duplicate of the
   * socket's descriptor made at the first answer (-1 before), for room to
   * write out_bufs[0..out_n), what is left of a 100 Continue and of the
   * answer's chunk (answering: on_sent is called once it has gone). */
  uv_poll_t out;
  int out_fd;
  uv_buf_t out_bufs[3];
  unsigned int out_n;
  int answering;
  size_t sent; /* of body, handed to the sender */
  uv_pprof__server_t* server;
  uv_pprof__conn_t* prev;
  uv_pprof__conn_t* next;
  queue_t* queue; /* spare, arriving or NULL */
  uv_pprof__conn_t* qprev;
  uv_pprof__conn_t* qnext;
  llhttp_t parser;
  enum conn_state state;
  enum conn_slot slot;
  int open_handles;
  int keep_alive;
  int reading;
  int eof; /* the client sends no more */
  uv_pprof__request_t* req;
  /* parse state of the request being read */
  uv_pprof__buf_t url;
  char field[16];
  size_t field_len;
  int field_is_auth;
  int field_is_expect;
  uv_pprof__buf_t* field_kept; /* the request's copy of this header */
  int field_is_host;
  int expect_continue;
  uv_pprof__buf_t auth;
  char host[256];
  size_t host_len;
  int host_long; /* longer than host[] */
  int nhosts;
  size_t header_bytes;
  size_t body_limit;
  int error_status;
  const char* error_msg;
  /* bytes received but not parsed yet (pipelining) */
  uv_pprof__buf_t pending;
  uv_pprof__buf_t head; /* the response being written: head ... */
  uv_pprof__buf_t body; /* ... and body */
};

static const llhttp_settings_t settings;

static void conn_close(uv_pprof__conn_t* c);
static void conn_next(uv_pprof__conn_t* c);
static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
static int read_start(uv_pprof__conn_t* c);
static void read_stop(uv_pprof__conn_t* c);

/* ---- lifetime ---------------------------------------------------------- */

static void server_release(uv_pprof__server_t* s) {
  if (--s->open_handles > 0)
    return;
  free(s->read_buf);
  free(s);
}

static void on_listener_close(uv_handle_t* handle) {
  uv_pprof__handle_disown(handle);
  server_release(handle->data);
}

static void on_conn_handle_close(uv_handle_t* handle) {
  uv_pprof__conn_t* c = handle->data;
  uv_pprof__server_t* s = c->server;

  uv_pprof__handle_disown(handle);
  if (handle == (uv_handle_t*)&c->out) {
    close(c->out_fd); /* no longer polled */
    c->out_fd = -1;
  }
  if (--c->open_handles > 0)
    return;
  uv_pprof__buf_free(&c->url);
  uv_pprof__buf_free(&c->auth);
  uv_pprof__buf_free(&c->pending);
  uv_pprof__buf_free(&c->head);
  uv_pprof__buf_free(&c->body);
  free(c);
  server_release(s);
}

static void queue_remove(uv_pprof__conn_t* c) {
  queue_t* q = c->queue;

  if (q == NULL)
    return;
  if (c->qprev != NULL)
    c->qprev->qnext = c->qnext;
  else
    q->head = c->qnext;
  if (c->qnext != NULL)
    c->qnext->qprev = c->qprev;
  else
    q->tail = c->qprev;
  c->queue = NULL;
  c->qprev = c->qnext = NULL;
}

static void queue_append(queue_t* q, uv_pprof__conn_t* c) {
  c->queue = q;
  c->qprev = q->tail;
  c->qnext = NULL;
  if (q->tail != NULL)
    q->tail->qnext = c;
  else
    q->head = c;
  q->tail = c;
}

/* Moves c to `state`, and to the tail of the queue of the connections that
 * may be closed to make room in that state, if any. */
static void enter(uv_pprof__conn_t* c, enum conn_state state) {
  uv_pprof__server_t* s = c->server;

  queue_remove(c);
  c->state = state;
  if (c->slot != SLOT_ADMITTED)
    return;
  if (state == STATE_IDLE || state == STATE_LINGER || state == STATE_REFUSING)
    queue_append(&s->spare, c);
  else if (state == STATE_READING)
    queue_append(&s->arriving, c);
}

static void conn_close(uv_pprof__conn_t* c) {
  uv_pprof__server_t* s = c->server;

  if (c->state == STATE_CLOSING)
    return;
  enter(c, STATE_CLOSING);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  if (c->slot == SLOT_ADMITTED)
    s->nconns--;
  else if (c->slot == SLOT_REJECTED)
    s->nrejected--;
  if (c->req != NULL) {
    uv_pprof__request_t* req = c->req;
    c->req = NULL;
    req->conn = NULL;
    if (req->busy)
      uv_pprof__request_abandon(req);
    else
      uv_pprof__request_free(req);
  }
  uv_close((uv_handle_t*)&c->tcp, on_conn_handle_close);
  uv_close((uv_handle_t*)&c->timer, on_conn_handle_close);
  if (c->out_fd >= 0)
    uv_close((uv_handle_t*)&c->out, on_conn_handle_close);
}

static void send_refusal(uv_pprof__conn_t* c);

static void on_timeout(uv_timer_t* timer) {
  uv_pprof__conn_t* c = timer->data;

  if (c->state == STATE_REFUSING)
    send_refusal(c); /* its turn */
  else
    conn_close(c);
}

static void arm(uv_pprof__conn_t* c, unsigned int ms) {
  uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* ---- sending ----------------------------------------------------------- */

/* libuv writes to a socket with write(2), and a write to a peer that has
 * gone raises SIGPIPE, which kills a host that does not ignore it (libuv
 * leaves that to the program; our tests and demo ignore it, many hosts do
 * not). It is common here: a client that closes after its request (or
 * half-closes and is then gone) leaves the socket in CLOSE_WAIT, where the
 * peer's RST to the first answer makes the next write fail with EPIPE
 * (found by fuzz_http). So answers go out with send(MSG_NOSIGNAL), and the
 * room to write comes from a uv_poll_t on a duplicate of the socket's
 * descriptor (libuv watches a descriptor once; the uv_tcp_t keeps reading).
 * Nothing is sent from the call that queues it: like uv_write, the
 * completion (on_sent) always comes from the loop. */

static void on_sent(uv_pprof__conn_t* c, int status);

/* Sends what out_bufs still holds. Returns 0 when all of it has gone,
 * UV_EAGAIN when the socket is full, else a negative libuv code. */
static int send_some(uv_pprof__conn_t* c) {
  while (c->out_n > 0) {
    struct iovec iov[3];
    struct msghdr m;
    unsigned int i;
    ssize_t n;
    size_t left;

    for (i = 0; i < c->out_n; i++) {
      iov[i].iov_base = c->out_bufs[i].base;
      iov[i].iov_len = c->out_bufs[i].len;
    }
    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = c->out_n;
    do
      n = sendmsg(c->out_fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK
                 ? UV_EAGAIN
                 : uv_translate_sys_error(errno);
    left = (size_t)n;
    i = 0;
    while (i < c->out_n && left >= c->out_bufs[i].len)
      left -= c->out_bufs[i++].len;
    memmove(c->out_bufs, c->out_bufs + i,
            (c->out_n - i) * sizeof(c->out_bufs[0]));
    c->out_n -= i;
    if (c->out_n > 0) {
      c->out_bufs[0].base += left;
      c->out_bufs[0].len -= left;
    }
  }
  return 0;
}

static void on_writable(uv_poll_t* poll, int status, int events) {
  uv_pprof__conn_t* c = poll->data;
  int err = status < 0 ? status : send_some(c);

  (void)events;
  if (err == UV_EAGAIN)
    return;
  uv_poll_stop(poll);
  if (c->answering) {
    c->answering = 0;
    on_sent(c, err);
  } else if (err < 0) {
    conn_close(c); /* a 100 Continue that could not go out */
  }
}

/* The duplicate descriptor and its poll handle, at the first answer. */
static int out_open(uv_pprof__conn_t* c) {
  uv_os_fd_t fd;
  int err;

  if (uv_fileno((uv_handle_t*)&c->tcp, &fd) != 0)
    return UV_EBADF;
  c->out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (c->out_fd < 0)
    return uv_translate_sys_error(errno);
  err = uv_poll_init_socket(c->server->loop, &c->out, c->out_fd);
  if (err != 0) {
    close(c->out_fd);
    c->out_fd = -1;
    return err;
  }
  uv_pprof__handle_own(&c->out);
  uv_unref((uv_handle_t*)&c->out);
  c->out.data = c;
  c->open_handles++;
  return 0;
}

/* Queues bufs[0..n) (their memory must last until sent) after what is
 * still going out; `answer`: on_sent(c, status) is called once all has
 * gone, or it failed. Returns 0 or a negative libuv code. */
static int send_bufs(uv_pprof__conn_t* c, const uv_buf_t* bufs, unsigned int n,
                     int answer) {
  unsigned int i;

  if (c->out_fd < 0) {
    int err = out_open(c);
    if (err != 0)
      return err;
  }
  for (i = 0; i < n; i++)
    if (bufs[i].len > 0 &&
        c->out_n < sizeof(c->out_bufs) / sizeof(c->out_bufs[0]))
      c->out_bufs[c->out_n++] = bufs[i];
  if (answer)
    c->answering = 1;
  return uv_poll_start(&c->out, UV_WRITABLE, on_writable);
}

/* ---- writing ----------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t* req, int status) {
  uv_pprof__conn_t* c = req->data;

  /* Keep reading (and discarding) until the peer closes or LINGER_MS pass,
   * so that closing with unread input does not reset the connection and
   * destroy the answer in flight. */
  if (status < 0 && c->state != STATE_CLOSING)
    conn_close(c);
}

static void conn_linger(uv_pprof__conn_t* c) {
  enter(c, STATE_LINGER);
  arm(c, LINGER_MS);
  if (!c->reading && read_start(c) != 0) {
    conn_close(c);
    return;
  }
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t*)&c->tcp, on_shutdown) != 0)
    conn_close(c);
}

static void free_work(uv_pprof__job_t* job) {
  free(job->data);
  job->data = NULL;
}

static void free_done(uv_pprof__job_t* job, int cancelled) {
  free(job->data);
  free(job);
}

/* Frees the answer sent; a large body on the worker. */
static void drop_answer(uv_pprof__conn_t* c) {
  uv_pprof__worker_t* w = c->server->worker;
  uv_pprof__job_t* job;

  uv_pprof__buf_free(&c->head);
  if (c->body.cap >= FREE_ON_WORKER && w != NULL &&
      (job = calloc(1, sizeof(*job))) != NULL) {
    job->work = free_work;
    job->done = free_done;
    job->data = c->body.base;
    job->light = 1; /* not work that should keep the thread */
    if (uv_pprof__worker_submit(w, job) == 0)
      uv_pprof__buf_init(&c->body);
    else
      free(job);
  }
  uv_pprof__buf_free(&c->body);
}

/* Queues the next chunk of the body, after bufs[0..n). */
static int write_chunk(uv_pprof__conn_t* c, uv_buf_t* bufs, unsigned int n) {
  size_t len = c->body.len - c->sent;

  if (len > WRITE_CHUNK)
    len = WRITE_CHUNK;
  if (len > 0)
    bufs[n++] = uv_buf_init(c->body.base + c->sent, (unsigned int)len);
  c->sent += len;
  return send_bufs(c, bufs, n, 1);
}

static void on_sent(uv_pprof__conn_t* c, int status) {
  uv_buf_t b;

  if (c->state == STATE_CLOSING)
    return;
  if (status == 0 && c->sent < c->body.len) {
    if (write_chunk(c, &b, 0) != 0)
      conn_close(c);
    return;
  }
  drop_answer(c);
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->keep_alive && !(c->eof && c->pending.len == 0))
    conn_next(c);
  else if (c->eof)
    conn_close(c); /* all its input is read: the close is a clean FIN */
  else
    conn_linger(c);
}

static void conn_write(uv_pprof__conn_t* c, uv_pprof__response_t* res,
                       int head_only) {
  uv_buf_t b[2];

  uv_pprof__buf_free(&c->head);
  if (uv_pprof__http_head(res, res->body.len, c->keep_alive, &c->head) != 0) {
    uv_pprof__buf_free(&res->body);
    conn_close(c);
    return;
  }
  uv_pprof__buf_move(&c->body, &res->body);
  if (head_only)
    uv_pprof__buf_free(&c->body);
  enter(c, STATE_WRITING);
  arm(c, c->server->config.write_timeout_ms);
  b[0] = uv_buf_init(c->head.base, (unsigned int)c->head.len);
  c->sent = 0;
  if (write_chunk(c, b, 1) != 0)
    conn_close(c);
}

/* An error found while parsing, or a refusal: answered in Go's plain-text
 * style, then the connection is closed (its input can no longer be trusted,
 * or was not read). Refusals carry X-Go-Pprof, so that `go tool pprof`
 * prints their reason. */
static void conn_fail(uv_pprof__conn_t* c, int status, const char* msg) {
  uv_pprof__response_t res;

  memset(&res, 0, sizeof(res));
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.go_error = status == 401 || status == 403;
  if (status == 401)
    res.headers[0] = "Www-Authenticate: Bearer realm=\"uv_pprof\"";
  uv_pprof__buf_printf(&res.body, "%s\n", msg);
  c->keep_alive = 0;
  conn_write(c, &res, 0);
}

static void send_refusal(uv_pprof__conn_t* c) {
  conn_fail(c, 401,
            "Unauthorized: this server requires "
            "\"Authorization: Bearer <token>\"");
}

/* A wrong or missing token: its 401 goes out at the next turn of the
 * server-wide pace, waiting on the connection's timer (the connection reads
 * nothing meanwhile, and is among the first closed to make room). */
static void refuse(uv_pprof__conn_t* c) {
  uv_pprof__server_t* s = c->server;
  uint64_t now = uv_now(s->loop);
  uint64_t turn = s->next_refusal > now ? s->next_refusal : now;

  if (turn - now >= (uint64_t)REFUSAL_INTERVAL_MS * REFUSAL_QUEUE) {
    conn_close(c);
    return;
  }
  s->next_refusal = turn + REFUSAL_INTERVAL_MS;
  if (turn == now) {
    send_refusal(c);
    return;
  }
  enter(c, STATE_REFUSING);
  arm(c, (unsigned int)(turn - now));
}

/* req->finish: the handler is done with req. */
static void on_finish(uv_pprof__request_t* req) {
  uv_pprof__conn_t* c = req->conn;

  if (c != NULL) {
    uv_pprof__metrics_observe(req);
    c->req = NULL;
    conn_write(c, &req->res, req->method == HTTP_HEAD);
  }
  uv_pprof__request_free(req);
}

/* ---- reading and parsing ----------------------------------------------- */

static int fail_cb(uv_pprof__conn_t* c, int status, const char* msg) {
  if (c->error_status == 0) {
    c->error_status = status;
    c->error_msg = msg;
  }
  return -1;
}

static int on_message_begin(llhttp_t* p) {
  uv_pprof__conn_t* c = p->data;

  c->req =
      uv_pprof__request_new(c->server->loop, c->server->worker, c, on_finish);
  if (c->req == NULL)
    return fail_cb(c, 500, "out of memory");
  c->url.len = 0;
  c->auth.len = 0;
  c->field_len = 0;
  c->field_is_auth = 0;
  c->field_is_expect = 0;
  c->field_kept = NULL;
  c->field_is_host = 0;
  c->expect_continue = 0;
  c->header_bytes = 0;
  c->host_len = 0;
  c->host_long = 0;
  c->nhosts = 0;
  return 0;
}

static int on_url(llhttp_t* p, const char* at, size_t len) {
  uv_pprof__conn_t* c = p->data;

  if (c->url.len + len > UV_PPROF__MAX_URL)
    return fail_cb(c, 414, "URI Too Long");
  if (uv_pprof__buf_append(&c->url, at, len) != 0)
    return fail_cb(c, 500, "out of memory");
  return 0;
}

static int count_header(uv_pprof__conn_t* c, size_t len) {
  c->header_bytes += len;
  if (c->header_bytes > UV_PPROF__MAX_HEADERS)
    return fail_cb(c, 431, "Request Header Fields Too Large");
  return 0;
}

static int on_header_field(llhttp_t* p, const char* at, size_t len) {
  uv_pprof__conn_t* c = p->data;
  size_t room = sizeof(c->field) - c->field_len;

  memcpy(c->field + c->field_len, at, len < room ? len : room);
  c->field_len += len < room ? len : room;
  return count_header(c, len);
}

static int on_header_field_complete(llhttp_t* p) {
  uv_pprof__conn_t* c = p->data;

  c->field_is_auth =
      c->field_len == 13 && strncasecmp(c->field, "authorization", 13) == 0;
  c->field_is_expect =
      c->field_len == 6 && strncasecmp(c->field, "expect", 6) == 0;
  c->field_kept = NULL;
  if (c->field_len == 15 && strncasecmp(c->field, "accept-encoding", 15) == 0)
    c->field_kept = &c->req->accept_encoding;
  else if (c->field_len == 13 &&
           strncasecmp(c->field, "if-none-match", 13) == 0)
    c->field_kept = &c->req->if_none_match;
  c->field_is_host = c->field_len == 4 && strncasecmp(c->field, "host", 4) == 0;
  c->nhosts += c->field_is_host;
  c->field_len = 0;
  return 0;
}

static int on_header_value(llhttp_t* p, const char* at, size_t len) {
  uv_pprof__conn_t* c = p->data;

  if (c->field_is_auth && c->auth.len + len <= 1024)
    uv_pprof__buf_append(&c->auth, at, len);
  if (c->field_kept != NULL && c->field_kept->len + len <= 256)
    uv_pprof__buf_append(c->field_kept, at, len);
  if (c->field_is_expect && len >= 12 &&
      strncasecmp(at, "100-continue", 12) == 0)
    c->expect_continue = 1;
  if (c->field_is_host) {
    if (c->host_len + len <= sizeof(c->host)) {
      memcpy(c->host + c->host_len, at, len);
      c->host_len += len;
    } else {
      c->host_long = 1;
    }
  }
  return count_header(c, len);
}

static int token_ok(const uv_pprof__server_t* s, const uv_pprof__buf_t* auth);

/* Whether a request may be served at all, decided when its headers are
 * complete: before its body is read or a 100-continue sent. Returns 0, or
 * the status of its refusal (401: see refuse()) and *msg. */
static int admit(uv_pprof__conn_t* c, const char** msg) {
  const uv_pprof__server_t* s = c->server;

  if (c->nhosts > 1) {
    *msg = "Bad Request: more than one Host header";
    return 400;
  }
  if (s->config.token_len > 0) {
    *msg = "";
    return token_ok(s, &c->auth) ? 0 : 401;
  }
  /* No request from a browser lacks a Host: none is no page's. */
  if (s->loopback && c->nhosts == 1 &&
      (c->host_long || !uv_pprof__http_host_is_local(c->host, c->host_len))) {
    *msg =
        "Forbidden: without a token this server answers only requests for "
        "localhost or a loopback address (Host: localhost:PORT, "
        "127.0.0.1:PORT or [::1]:PORT), so that no web page can read it "
        "through a name rebound to 127.0.0.1; with UV_PPROF_TOKEN set, any "
        "Host is answered";
    return 403;
  }
  return 0;
}

static int on_headers_complete(llhttp_t* p) {
  uv_pprof__conn_t* c = p->data;
  uv_pprof__request_t* req = c->req;
  const uv_pprof__route_t* route;
  const char* q;
  const char* msg;
  size_t path_len;
  int refusal;

  req->method = p->method;
  refusal = admit(c, &msg);
  if (refusal != 0)
    return fail_cb(c, refusal, msg);
  /* uv_pprof switches to no other protocol: an Upgrade request is answered
   * as any other, and the connection goes on as HTTP/1.1 (llhttp would
   * otherwise stop parsing after it). */
  p->upgrade = 0;
  if (p->method != HTTP_GET && p->method != HTTP_HEAD && p->method != HTTP_POST)
    return fail_cb(c, 405, "Method Not Allowed");
  if (c->url.len == 0 || c->url.base[0] != '/')
    return fail_cb(c, 400, "Bad Request: request target must be a path");
  q = memchr(c->url.base, '?', c->url.len);
  path_len = q != NULL ? (size_t)(q - c->url.base) : c->url.len;
  req->path = uv_pprof__http_unescape(c->url.base, path_len, 0);
  if (req->path == NULL)
    return errno == ENOMEM
               ? fail_cb(c, 500, "out of memory")
               : fail_cb(c, 400, "Bad Request: invalid escape in path");
  req->query =
      q != NULL ? strndup(q + 1, c->url.len - path_len - 1) : strdup("");
  if (req->query == NULL)
    return fail_cb(c, 500, "out of memory");
  route = uv_pprof__route_find(req->path);
  c->body_limit = route != NULL ? route->body_limit : 0;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->body_limit)
    return fail_cb(c, 413,
                   c->body_limit == 0
                       ? "Request Entity Too Large: only "
                         "/debug/pprof/symbol takes a request body"
                       : "Request Entity Too Large");
  if (c->expect_continue && c->body_limit > 0) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init((char*)cont, sizeof(cont) - 1);
    if (send_bufs(c, &b, 1, 0) != 0)
      return fail_cb(c, 500, "Internal Server Error: cannot send");
  }
  return 0;
}

static int on_body(llhttp_t* p, const char* at, size_t len) {
  uv_pprof__conn_t* c = p->data;

  if (c->req->body.len + len > c->body_limit)
    return fail_cb(c, 413,
                   c->body_limit == 0
                       ? "Request Entity Too Large: only "
                         "/debug/pprof/symbol takes a request body"
                       : "Request Entity Too Large");
  if (uv_pprof__buf_append(&c->req->body, at, len) != 0)
    return fail_cb(c, 500, "out of memory");
  return 0;
}

static int on_message_complete(llhttp_t* p) {
  uv_pprof__conn_t* c = p->data;

  c->keep_alive = llhttp_should_keep_alive(p);
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Constant-time in the token's content; only its length can leak. */
static int token_ok(const uv_pprof__server_t* s, const uv_pprof__buf_t* auth) {
  const uv_pprof__server_config_t* cfg = &s->config;
  const char* v = auth->base;
  size_t len = auth->len;
  unsigned char diff = 0;
  size_t i;

  if (cfg->token_len == 0)
    return 1;
  while (len > 0 && *v == ' ') {
    v++;
    len--;
  }
  if (len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
    return 0;
  v += 7;
  len -= 7;
  while (len > 0 && v[len - 1] == ' ')
    len--;
  if (len != cfg->token_len)
    return 0;
  for (i = 0; i < len; i++)
    diff |= (unsigned char)(v[i] ^ cfg->token[i]);
  return diff == 0;
}

static void dispatch(uv_pprof__conn_t* c) {
  uv_pprof__request_t* req = c->req;

  enter(c, STATE_ROUTED);
  uv_timer_stop(&c->timer);
  req->busy = 1;
  uv_pprof__route(req);
}

/* Feeds data to the parser; what follows a complete request is kept in
 * c->pending until that request has been answered. */
static void parse(uv_pprof__conn_t* c, const char* data, size_t len) {
  llhttp_errno_t err;
  const char* stop;

  if (len == 0)
    return;
  if (c->state == STATE_IDLE) {
    enter(c, STATE_READING);
    arm(c, c->server->config.request_timeout_ms);
  }
  err = llhttp_execute(&c->parser, data, len);
  if (err == HPE_OK)
    return;
  if (err == HPE_PAUSED && c->error_status == 0) {
    stop = llhttp_get_error_pos(&c->parser);
    llhttp_resume(&c->parser);
    uv_pprof__buf_append(&c->pending, stop, (size_t)(data + len - stop));
    if (c->pending.len > UV_PPROF__MAX_PENDING_INPUT)
      read_stop(c);
    dispatch(c);
    return;
  }
  read_stop(c);
  if (c->req != NULL) {
    uv_pprof__request_free(c->req);
    c->req = NULL;
  }
  if (c->error_status == 401) {
    refuse(c);
  } else if (c->error_status != 0) {
    conn_fail(c, c->error_status, c->error_msg);
  } else {
    char msg[256];
    snprintf(msg, sizeof(msg), "Bad Request: malformed HTTP request: %s",
             llhttp_get_error_reason(&c->parser));
    conn_fail(c, 400, msg);
  }
}

/* The previous response is out: wait for, or parse, the next request. */
static void conn_next(uv_pprof__conn_t* c) {
  uv_pprof__buf_t more;

  enter(c, STATE_IDLE);
  c->error_status = 0;
  arm(c, c->server->config.idle_timeout_ms);
  more = c->pending;
  uv_pprof__buf_init(&c->pending);
  if (!c->reading && !c->eof && read_start(c) != 0) {
    uv_pprof__buf_free(&more);
    conn_close(c);
    return;
  }
  parse(c, more.base, more.len);
  uv_pprof__buf_free(&more);
  if (!c->eof)
    return;
  /* The client sends no more: a request it sent is answered as soon as it
   * can be; what is left can never become one. */
  if (c->state == STATE_ROUTED)
    uv_pprof__request_hurry(c->req);
  else if (c->state == STATE_IDLE || c->state == STATE_READING)
    conn_close(c);
}

/* EOF: the client sends no more. `nc -N` and some HTTP/1.0 clients
 * half-close right after their request and then wait for the answer: a
 * request being answered is answered (a handler waiting for a window ends
 * it now, as Go's do when the client's side ends), then the connection
 * closes. Anything else closes now. */
static void peer_done(uv_pprof__conn_t* c) {
  c->eof = 1;
  c->reading = 0; /* libuv stopped reading at EOF */
  if (c->state == STATE_ROUTED)
    uv_pprof__request_hurry(c->req);
  else if (c->state != STATE_WRITING)
    conn_close(c);
}

static void on_alloc(uv_handle_t* handle, size_t size, uv_buf_t* buf) {
  uv_pprof__conn_t* c = handle->data;
  uv_pprof__server_t* s = c->server;

  if (s->read_buf == NULL)
    s->read_buf = malloc(READ_BUF_SIZE);
  *buf = uv_buf_init(s->read_buf, s->read_buf ? READ_BUF_SIZE : 0);
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  uv_pprof__conn_t* c = stream->data;

  if (nread == UV_EOF) {
    peer_done(c);
    return;
  }
  if (nread < 0) {
    conn_close(c);
    return;
  }
  switch (c->state) {
    case STATE_IDLE:
    case STATE_READING:
      parse(c, buf->base, (size_t)nread);
      break;
    case STATE_ROUTED:
    case STATE_WRITING:
      uv_pprof__buf_append(&c->pending, buf->base, (size_t)nread);
      if (c->pending.len > UV_PPROF__MAX_PENDING_INPUT)
        read_stop(c);
      break;
    default:
      break; /* lingering: input is discarded */
  }
}

static int read_start(uv_pprof__conn_t* c) {
  int err = uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read);
  c->reading = err == 0;
  return err;
}

static void read_stop(uv_pprof__conn_t* c) {
  uv_read_stop((uv_stream_t*)&c->tcp);
  c->reading = 0;
}

/* ---- accepting --------------------------------------------------------- */

static void on_connection(uv_stream_t* listener, int status);

static void on_sink_close(uv_handle_t* handle) {
  uv_pprof__server_t* s = handle->data;

  uv_pprof__handle_disown(handle);
  s->sink_busy = 0;
  if (s->sink_waiting && !s->closing) {
    s->sink_waiting = 0;
    on_connection((uv_stream_t*)&s->listener, 0); /* memory again? */
  }
  server_release(s);
}

/* No memory for the pending connection: it is accepted into the server's
 * own handle and closed (or, while that handle closes, when it has). A
 * listener whose connection is never accepted is never watched again. */
static void drop_pending(uv_pprof__server_t* s) {
  if (s->sink_busy) {
    s->sink_waiting = 1;
    return;
  }
  if (uv_tcp_init(s->loop, &s->sink) != 0)
    return;
  s->sink_busy = 1;
  s->open_handles++;
  s->sink.data = s;
  uv_pprof__handle_own(&s->sink);
  uv_unref((uv_handle_t*)&s->sink);
  uv_accept((uv_stream_t*)&s->listener, (uv_stream_t*)&s->sink);
  uv_close((uv_handle_t*)&s->sink, on_sink_close);
}

/* At the cap: closes the connection that has waited longest among those
 * that lose no answer in progress (idle, lingering after their answer, or
 * waiting for a refusal), else the one whose request began arriving first.
 * So idle keep-alive connections, however many, never lock others out. */
static void make_room(uv_pprof__server_t* s) {
  uv_pprof__conn_t* c =
      s->spare.head != NULL ? s->spare.head : s->arriving.head;

  if (c != NULL)
    conn_close(c);
}

/* 1 when the client has sent something already: its request is arriving,
 * and the connection is not to be taken for an idle one before the loop
 * has read it (its first read comes on a later iteration). */
static int has_input(uv_pprof__conn_t* c) {
  uv_os_fd_t fd;
  char byte;

  return uv_fileno((uv_handle_t*)&c->tcp, &fd) == 0 &&
         recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* A new connection of s, its handles initialized (not yet counted under
 * the cap); NULL when out of memory. */
static uv_pprof__conn_t* conn_new(uv_pprof__server_t* s) {
  uv_pprof__conn_t* c = calloc(1, sizeof(*c));

  if (c == NULL)
    return NULL;
  c->server = s;
  c->out_fd = -1;
  if (uv_tcp_init(s->loop, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  uv_timer_init(s->loop, &c->timer);
  uv_pprof__handle_own(&c->tcp);
  uv_pprof__handle_own(&c->timer);
  uv_unref((uv_handle_t*)&c->tcp);
  uv_unref((uv_handle_t*)&c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->open_handles = 2;
  s->open_handles++;
  c->next = s->conns;
  if (s->conns != NULL)
    s->conns->prev = c;
  s->conns = c;
  c->state = STATE_IDLE;
  return c;
}

/* The connection's socket is open: it takes a slot under the cap (making
 * room if it must) and reads, or gets a 503, or, past MAX_REJECTED, is
 * closed at once. */
static void conn_begin(uv_pprof__conn_t* c) {
  uv_pprof__server_t* s = c->server;

  if (s->nconns >= s->config.max_connections)
    make_room(s);
  if (s->nconns >= s->config.max_connections) {
    c->slot = SLOT_REJECTED;
    if (s->nrejected++ >= MAX_REJECTED)
      conn_close(c);
    else
      conn_fail(c, 503, "Service Unavailable: too many connections");
    return;
  }
  c->slot = SLOT_ADMITTED;
  s->nconns++;
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  if (has_input(c)) {
    enter(c, STATE_READING);
    arm(c, s->config.request_timeout_ms);
  } else {
    enter(c, STATE_IDLE);
    arm(c, s->config.idle_timeout_ms);
  }
  if (read_start(c) != 0)
    conn_close(c);
}

static void on_connection(uv_stream_t* listener, int status) {
  uv_pprof__server_t* s = listener->data;
  uv_pprof__conn_t* c;
  struct sockaddr_storage peer;
  int len = sizeof(peer);

  /* In a fork's child the listener's descriptor is a readable eventfd:
   * accept fails (ENOTSOCK) and the inherited server is stopped here, on
   * the loop's thread; closing the listener ends libuv's accept loop. */
  if (status < 0 && s->forked && !s->closing) {
    s->config.on_forked(s->loop);
    return;
  }
  if (status < 0 || s->closing)
    return;
  c = conn_new(s);
  if (c == NULL) {
    drop_pending(s);
    return;
  }
  if (uv_accept(listener, (uv_stream_t*)&c->tcp) != 0 ||
      uv_tcp_getpeername(&c->tcp, (struct sockaddr*)&peer, &len) != 0 ||
      (s->loopback && !uv_pprof__is_loopback((struct sockaddr*)&peer))) {
    conn_close(c);
    return;
  }
  conn_begin(c);
}

int uv_pprof__server_adopt(uv_pprof__server_t* s, uv_os_sock_t fd) {
  uv_pprof__conn_t* c;
  int err;

  if (s->closing || (c = conn_new(s)) == NULL) {
    close(fd);
    return s->closing ? UV_ECANCELED : UV_ENOMEM;
  }
  err = uv_tcp_open(&c->tcp, fd);
  if (err != 0) {
    close(fd);
    conn_close(c);
    return err;
  }
  conn_begin(c);
  return 0;
}

/* ---- server ------------------------------------------------------------ */

/* Binding and listening happen on a plain socket first, so that a failure
 * leaves no libuv handle behind (a closing handle would need one more loop
 * iteration before uv_loop_close() could succeed). */
static int listen_socket(const struct sockaddr* addr, int* out) {
  socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
  int on = 1;
  int fd = -1;

  fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      bind(fd, addr, len) != 0 || listen(fd, 511) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

int uv_pprof__server_start(uv_loop_t* loop,
                           const uv_pprof__server_config_t* config,
                           uv_pprof__server_t** out) {
  uv_pprof__server_t* s;
  int len = sizeof(s->bound);
  int fd = -1;
  int err;

  err = listen_socket((const struct sockaddr*)&config->addr, &fd);
  if (err != 0)
    return err;
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    close(fd);
    return UV_ENOMEM;
  }
  err = uv_tcp_init(loop, &s->listener);
  if (err != 0) {
    close(fd);
    free(s);
    return err;
  }
  s->loop = loop;
  s->config = *config;
  s->loopback = uv_pprof__is_loopback((const struct sockaddr*)&config->addr);
  s->listener.data = s;
  s->open_handles = 1;
  uv_pprof__handle_own(&s->listener);
  uv_unref((uv_handle_t*)&s->listener);
  err = uv_tcp_open(&s->listener, fd);
  if (err != 0)
    close(fd);
  if (err == 0)
    err = uv_listen((uv_stream_t*)&s->listener, 511, on_connection);
  if (err == 0)
    err = uv_tcp_getsockname(&s->listener, (struct sockaddr*)&s->bound, &len);
  if (err == 0) {
    s->worker = uv_pprof__worker_new(loop);
    if (s->worker == NULL)
      err = UV_ENOMEM;
  }
  if (err != 0) {
    /* Only resource exhaustion gets here; the listener then needs one more
     * loop iteration to finish closing. */
    uv_close((uv_handle_t*)&s->listener, on_listener_close);
    return err;
  }
  *out = s;
  return 0;
}

void uv_pprof__server_close(uv_pprof__server_t* s) {
  s->closing = 1;
  uv_close((uv_handle_t*)&s->listener, on_listener_close);
  while (s->conns != NULL)
    conn_close(s->conns);
  uv_pprof__worker_close(s->worker);
}

void uv_pprof__server_address(const uv_pprof__server_t* s,
                              struct sockaddr_storage* addr) {
  *addr = s->bound;
}

uv_pprof__worker_t* uv_pprof__server_worker(const uv_pprof__server_t* s) {
  return s->worker;
}

unsigned int uv_pprof__server_connections(const uv_pprof__server_t* s) {
  const uv_pprof__conn_t* c;
  unsigned int n = 0;

  for (c = s->conns; c != NULL; c = c->next)
    n++;
  return n;
}

/* dup3() of a fresh eventfd over fd: the descriptor number stays valid for
 * the loop (uv_loop_fork registers it again); the parent's socket leaves
 * this process. */
static void stand_in(int fd, unsigned int count) {
  int efd = eventfd(count, EFD_CLOEXEC | EFD_NONBLOCK);

  if (efd < 0)
    return;
  dup3(efd, fd, O_CLOEXEC);
  close(efd);
}

void uv_pprof__server_fork_child(uv_pprof__server_t* s) {
  uv_pprof__conn_t* c;
  uv_os_fd_t fd;

  s->forked = 1;
  if (uv_fileno((uv_handle_t*)&s->listener, &fd) == 0)
    stand_in(fd, 1);
  for (c = s->conns; c != NULL; c = c->next) {
    if (uv_fileno((uv_handle_t*)&c->tcp, &fd) == 0)
      stand_in(fd, 0);
    if (c->out_fd >= 0)
      stand_in(c->out_fd, 0);
  }
  uv_pprof__worker_fork_child(s->worker);
}
