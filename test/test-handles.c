/* Tests of the goroutine profile (libuv handles as goroutines), issue 4: a
 * host with known handles read in all three formats (proto through
 * `go tool pprof`, ?debug=1, ?debug=2), -base and ?seconds= deltas, two
 * loops on two threads (one of them stuck), uv_pprof's own handles absent,
 * and creation stacks through libuv_pprof_track preloaded, linked, and with
 * ld --wrap (host programs of handlehost.c). Every host ends with
 * uv_loop_close() == 0 (host_stop asserts it). */
#include <unistd.h>

#include "profile.h"
#include "task.h"

#define NTIMERS 137
#define NIDLES 3
#define NCLIENTS 5
#define NLEAKED 50

/* The test host has its own 1 ms timer (on_tick) and async (on_call). */
#define HOST_OWN 2
/* 137 timers, 3 idles, a listener, 5 accepted, 5 clients, a pipe. */
#define NWORLD (NTIMERS + NIDLES + 1 + 2 * NCLIENTS + 1)

typedef struct {
  uv_timer_t timers[NTIMERS];
  uv_idle_t idles[NIDLES];
  uv_tcp_t server;
  uv_tcp_t accepted[NCLIENTS];
  uv_tcp_t clients[NCLIENTS];
  uv_connect_t connects[NCLIENTS];
  uv_pipe_t pipe;
  char pipe_path[256];
  uv_timer_t leaked[NLEAKED];
  int nleaked;
  uv_timer_t later; /* delta: leaks during the window */
  int naccepted;
  int nconnected;
} world_t;

static world_t world;

/* ---- callbacks the profile must name ------------------------------------ */

static void tick_a(uv_timer_t* t) {
}

static void tick_b(uv_timer_t* t) {
}

static void on_idle_a(uv_idle_t* idle) {
}

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  static char space[4096];
  *buf = uv_buf_init(space, sizeof(space));
}

static void on_server_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
}

static void on_client_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
}

static void on_conn_a(uv_stream_t* server, int status) {
  uv_tcp_t* c = &world.accepted[world.naccepted];

  ASSERT_EQ(status, 0);
  ASSERT_EQ(uv_tcp_init(server->loop, c), 0);
  ASSERT_EQ(uv_accept(server, (uv_stream_t*)c), 0);
  ASSERT_EQ(uv_read_start((uv_stream_t*)c, on_alloc, on_server_read), 0);
  world.naccepted++;
}

static void on_connected(uv_connect_t* req, int status) {
  ASSERT_EQ(status, 0);
  ASSERT_EQ(uv_read_start(req->handle, on_alloc, on_client_read), 0);
  world.nconnected++;
}

static void on_pipe_conn(uv_stream_t* pipe, int status) {
}

/* ---- the world on the host's loop --------------------------------------- */

static void build_world(uv_loop_t* loop, void* arg) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  size_t i;

  for (i = 0; i < NTIMERS; i++) {
    ASSERT_EQ(uv_timer_init(loop, &world.timers[i]), 0);
    ASSERT_EQ(uv_timer_start(&world.timers[i], tick_a, 100000 + i, 100000), 0);
  }
  /* Started then stopped: inactive, so the loop does not spin, with their
   * callback still set. */
  for (i = 0; i < NIDLES; i++) {
    ASSERT_EQ(uv_idle_init(loop, &world.idles[i]), 0);
    ASSERT_EQ(uv_idle_start(&world.idles[i], on_idle_a), 0);
    ASSERT_EQ(uv_idle_stop(&world.idles[i]), 0);
  }
  ASSERT_EQ(uv_tcp_init(loop, &world.server), 0);
  ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in*)&ss), 0);
  ASSERT_EQ(uv_tcp_bind(&world.server, (struct sockaddr*)&ss, 0), 0);
  ASSERT_EQ(uv_listen((uv_stream_t*)&world.server, 16, on_conn_a), 0);
  ASSERT_EQ(uv_tcp_getsockname(&world.server, (struct sockaddr*)&ss, &len), 0);
  for (i = 0; i < NCLIENTS; i++) {
    ASSERT_EQ(uv_tcp_init(loop, &world.clients[i]), 0);
    ASSERT_EQ(uv_tcp_connect(&world.connects[i], &world.clients[i],
                             (struct sockaddr*)&ss, on_connected),
              0);
  }
  snprintf(world.pipe_path, sizeof(world.pipe_path), "%s/handles.sock",
           test_tmpdir());
  ASSERT_EQ(uv_pipe_init(loop, &world.pipe, 0), 0);
  ASSERT_EQ(uv_pipe_bind(&world.pipe, world.pipe_path), 0);
  ASSERT_EQ(uv_listen((uv_stream_t*)&world.pipe, 4, on_pipe_conn), 0);
}

static void read_progress(uv_loop_t* loop, void* arg) {
  int* n = arg;
  *n = world.naccepted + world.nconnected;
}

static test_host_t* start_world(void) {
  test_host_t* h = host_start(NULL);
  int n = 0;
  int i;

  memset(&world, 0, sizeof(world));
  host_call(h, build_world, NULL);
  for (i = 0; i < 1000 && n < 2 * NCLIENTS; i++) {
    usleep(10000);
    host_call(h, read_progress, &n);
  }
  ASSERT_EQ(n, 2 * NCLIENTS);
  return h;
}

static void close_all(uv_loop_t* loop, void* arg) {
  size_t i;

  for (i = 0; i < NTIMERS; i++)
    uv_close((uv_handle_t*)&world.timers[i], NULL);
  for (i = 0; i < NIDLES; i++)
    if (!uv_is_closing((uv_handle_t*)&world.idles[i]))
      uv_close((uv_handle_t*)&world.idles[i], NULL);
  uv_close((uv_handle_t*)&world.server, NULL);
  for (i = 0; i < NCLIENTS; i++) {
    uv_close((uv_handle_t*)&world.accepted[i], NULL);
    uv_close((uv_handle_t*)&world.clients[i], NULL);
  }
  uv_close((uv_handle_t*)&world.pipe, NULL);
  for (i = 0; i < (size_t)world.nleaked; i++)
    uv_close((uv_handle_t*)&world.leaked[i], NULL);
}

static void stop_world(test_host_t* h) {
  host_call(h, close_all, NULL);
  host_stop(h);
}

/* ---- helpers ------------------------------------------------------------ */

static size_t count_of(const char* hay, const char* needle) {
  size_t n = 0;
  const char* p = hay;

  while ((p = strstr(p, needle)) != NULL) {
    n++;
    p += strlen(needle);
  }
  return n;
}

static char* fetch_body(test_host_t* h, const char* path) {
  run_result_t r;
  const char* body;
  size_t len;
  char* copy;

  curl_get(h, path, NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  body = http_body(&r, &len);
  copy = malloc(len + 1);
  ASSERT(copy != NULL);
  memcpy(copy, body, len);
  copy[len] = '\0';
  run_free(&r);
  return copy;
}

/* Saves path's answer into the temp dir; returns the file's path. */
static const char* save(test_host_t* h, const char* path, const char* name) {
  static char files[8][512];
  static int next;
  char* file = files[next++ % 8];
  const char* argv[] = {"curl", "-sf", "-o", file, NULL, NULL};
  char url[512];
  run_result_t r;

  snprintf(file, sizeof(files[0]), "%s/%s", test_tmpdir(), name);
  snprintf(url, sizeof(url), "%s%s", host_base(h), path);
  argv[4] = url;
  run_cmd(argv, NULL, 30000, &r);
  ASSERT_EQ(r.status, 0);
  run_free(&r);
  return file;
}

/* flat and cum of `name` in `go tool pprof -top` output; 0 when absent. */
static void top_row(const char* top, const char* name, long long* flat,
                    long long* cum) {
  const char* p = top;

  *flat = 0;
  *cum = 0;
  while (p != NULL && *p != '\0') {
    char fn[256];
    long long f;
    long long c;
    if (sscanf(p, " %lld %*s %*s %lld %*s %255s", &f, &c, fn) == 3 &&
        strcmp(fn, name) == 0) {
      *flat = f;
      *cum = c;
      return;
    }
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
}

static void expect_top(const char* top, const char* name, long long flat,
                       long long cum) {
  long long f;
  long long c;

  top_row(top, name, &f, &c);
  if (f != flat || c != cum)
    fprintf(stderr, "%s: flat %lld cum %lld, expected %lld %lld in:\n%s\n",
            name, f, c, flat, cum, top);
  ASSERT_EQ(f, flat);
  ASSERT_EQ(c, cum);
}

/* Number of debug=2 blocks whose header contains `type` and whose next
 * `lines` lines contain `text` (what `grep -A<lines>` shows). */
static size_t blocks_with(const char* dump, const char* type, const char* text,
                          int lines) {
  size_t n = 0;
  const char* p = dump;

  while ((p = strstr(p, "goroutine ")) != NULL) {
    const char* eol = strchr(p, '\n');
    const char* end = eol;
    int k;
    ASSERT(eol != NULL);
    for (k = 0; k < lines && end != NULL && end[1] != '\0'; k++)
      end = strchr(end + 1, '\n');
    if (end == NULL)
      end = p + strlen(p);
    if (memmem(p, (size_t)(eol - p), type, strlen(type)) != NULL &&
        memmem(eol, (size_t)(end - eol), text, strlen(text)) != NULL)
      n++;
    p = eol;
  }
  return n;
}

/* Keeps only the "goroutine <id> [...]:" lines of a debug=2 dump. */
static void headers(char* dump) {
  char* out = dump;
  const char* p = dump;

  while ((p = strstr(p, "goroutine ")) != NULL) {
    const char* eol = strchr(p, '\n');
    size_t len = eol != NULL ? (size_t)(eol - p) + 1 : strlen(p);
    memmove(out, p, len);
    out += len;
    p += len;
  }
  *out = '\0';
}

/* ---- tests -------------------------------------------------------------- */

/* Proto: `go tool pprof -top` names every callback with its count. */
static void check_counts_proto(test_host_t* h) {
  const char* top_args[] = {"-top", "-nodecount=100", NULL, NULL};
  char total[64];
  run_result_t r;

  top_args[2] = save(h, "/debug/pprof/goroutine", "g.pb.gz");
  go_pprof(top_args, &r);
  expect_top(r.out, "tick_a", NTIMERS, NTIMERS);
  expect_top(r.out, "on_tick", 1, 1);
  expect_top(r.out, "uv_timer_t", 0, NTIMERS + 1);
  expect_top(r.out, "on_idle_a", NIDLES, NIDLES);
  expect_top(r.out, "uv_idle_t", 0, NIDLES);
  expect_top(r.out, "on_conn_a", 1, 1);
  expect_top(r.out, "on_server_read", NCLIENTS, NCLIENTS);
  expect_top(r.out, "on_client_read", NCLIENTS, NCLIENTS);
  expect_top(r.out, "uv_tcp_t", 0, 1 + 2 * NCLIENTS);
  expect_top(r.out, "on_pipe_conn", 1, 1);
  expect_top(r.out, "uv_pipe_t", 0, 1);
  expect_top(r.out, "on_call", 1, 1);
  expect_top(r.out, "uv_async_t", 0, 1);
  snprintf(total, sizeof(total), "of %d total", NWORLD + HOST_OWN);
  ASSERT_CONTAINS(r.out, total);
  ASSERT_CONTAINS(r.out, "Type: goroutine");
  run_free(&r);
}

/* debug=1: Go's grouped layout, the biggest group first. */
static void check_counts_debug1(test_host_t* h) {
  char* text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  char total[64];

  snprintf(total, sizeof(total), "goroutine profile: total %d\n137 @ 0x",
           NWORLD + HOST_OWN);
  ASSERT_STARTS_WITH(text, total);
  ASSERT_CONTAINS(text, "# labels: {\"age\":\"<1m\", \"loop\":\"0x");
  ASSERT_CONTAINS(text,
                  "\"state\":\"active, ref\", \"type\":\"uv_timer_t\"}"
                  "\n#\t0x");
  ASSERT_CONTAINS(text, "\ttick_a+0x0\t");
  ASSERT_CONTAINS(text, "\n3 @ 0x");
  ASSERT_CONTAINS(text, "\"state\":\"inactive, ref\", \"type\":\"uv_idle_t\"");
  ASSERT_CONTAINS(text, "\ton_idle_a+0x0\t");
  ASSERT_EQ(count_of(text, "\n5 @ 0x"), 2);
  ASSERT_CONTAINS(text, "\ton_server_read+0x0\t");
  ASSERT_CONTAINS(text, "\ton_client_read+0x0\t");
  ASSERT_CONTAINS(text, "\ton_pipe_conn+0x0\t");
  /* uv_pprof's own handles (listener, this connection and its timer, the
   * worker's async) are not there. */
  ASSERT_NOT_CONTAINS(text, "on_connection");
  ASSERT_NOT_CONTAINS(text, "on_timeout");
  ASSERT_NOT_CONTAINS(text, "on_async");
  free(text);
}

/* debug=2: one block per handle, greppable by type and callback. Returns
 * the dump (malloc'd). */
static char* check_counts_debug2(test_host_t* h) {
  char* dump = fetch_body(h, "/debug/pprof/goroutine?debug=2");

  ASSERT_EQ(count_of(dump, "goroutine "), NWORLD + HOST_OWN);
  ASSERT_STARTS_WITH(dump, "goroutine ");
  ASSERT_EQ(count_of(dump, "\ntick_a(...)\n\t"), NTIMERS);
  ASSERT_EQ(count_of(dump, " [uv_timer_t, active, ref]:\n"), NTIMERS + 1);
  ASSERT_EQ(blocks_with(dump, "[uv_timer_t", "tick_a(...)", 5), NTIMERS);
  ASSERT_EQ(blocks_with(dump, "[uv_timer_t", "timer_cb, due in ", 5),
            NTIMERS + 1);
  ASSERT_EQ(blocks_with(dump, "[uv_timer_t", ", repeat 100000 ms, loop 0x", 5),
            NTIMERS);
  ASSERT_EQ(
      blocks_with(dump, "[uv_idle_t, inactive, ref]", "on_idle_a(...)", 5),
      NIDLES);
  ASSERT_EQ(
      blocks_with(dump, "[uv_tcp_t, active, ref]", "\tconnection_cb, fd ", 5),
      1);
  ASSERT_EQ(blocks_with(dump, "[uv_tcp_t", "on_server_read(...)", 5), NCLIENTS);
  ASSERT_EQ(blocks_with(dump, "[uv_tcp_t", ", local 127.0.0.1:", 5),
            1 + 2 * NCLIENTS);
  ASSERT_EQ(blocks_with(dump, "[uv_tcp_t", ", peer 127.0.0.1:", 5),
            2 * NCLIENTS);
  ASSERT_EQ(blocks_with(dump, "[uv_pipe_t", world.pipe_path, 5), 1);
  ASSERT_EQ(blocks_with(dump, "[uv_async_t", "on_call(...)", 5), 1);
  ASSERT_NOT_CONTAINS(dump, "created by"); /* no tracker loaded */
  ASSERT_NOT_CONTAINS(dump, "on_connection");
  ASSERT_NOT_CONTAINS(dump, "on_timeout");
  ASSERT_NOT_CONTAINS(dump, "on_async");
  return dump;
}

/* Ids stay with their handles from one snapshot (dump) to the next. */
static void check_ids_kept(test_host_t* h, char* dump) {
  char* again = fetch_body(h, "/debug/pprof/goroutine?debug=2");

  headers(dump);
  headers(again);
  ASSERT_STR_EQ(again, dump);
  free(again);
}

/* The index counts live handles. */
static void check_index_count(test_host_t* h) {
  char* text = fetch_body(h, "/debug/pprof/");
  char total[64];

  snprintf(total, sizeof(total),
           "<tr><td>%d</td><td><a href='goroutine?debug=1'>",
           NWORLD + HOST_OWN);
  ASSERT_CONTAINS(text, total);
  free(text);
}

TEST_IMPL(handles_counts) {
  test_host_t* h = start_world();
  char* dump;

  check_counts_proto(h);
  check_counts_debug1(h);
  dump = check_counts_debug2(h);
  check_ids_kept(h, dump);
  check_index_count(h);
  free(dump);
  stop_world(h);
  return 0;
}

static void leak_timers(uv_loop_t* loop, void* arg) {
  uv_timer_cb cb = *(uv_timer_cb*)arg;
  int i;

  for (i = 0; i < NLEAKED; i++) {
    uv_timer_t* t = &world.leaked[world.nleaked++];
    ASSERT_EQ(uv_timer_init(loop, t), 0);
    ASSERT_EQ(uv_timer_start(t, cb, 3600000, 0), 0);
  }
}

/* -base between two snapshots shows exactly the 50 leaked timers. */
TEST_IMPL(handles_pprof_base) {
  test_host_t* h = start_world();
  uv_timer_cb cb = tick_b;
  const char* args[] = {"-top", "-nodecount=100", "-base", NULL, NULL, NULL};
  const char* before;
  const char* after;
  const char* p;
  int rows = 0;
  run_result_t r;

  before = save(h, "/debug/pprof/goroutine", "before.pb.gz");
  host_call(h, leak_timers, &cb);
  after = save(h, "/debug/pprof/goroutine", "after.pb.gz");
  args[3] = before;
  args[4] = after;
  go_pprof(args, &r);
  expect_top(r.out, "tick_b", NLEAKED, NLEAKED);
  expect_top(r.out, "uv_timer_t", 0, NLEAKED);
  ASSERT_CONTAINS(r.out, "of 50 total");
  /* Nothing else: every row with a non-zero flat is tick_b's. */
  for (p = strstr(r.out, "flat%"); p != NULL; p = strchr(p + 1, '\n')) {
    long long flat;
    char fn[256];
    if (sscanf(p, " %lld %*s %*s %*s %*s %255s", &flat, fn) == 2 && flat != 0) {
      ASSERT_STR_EQ(fn, "tick_b");
      rows++;
    }
  }
  ASSERT_EQ(rows, 1);
  run_free(&r);
  stop_world(h);
  return 0;
}

static void tick_c(uv_timer_t* t) {
}

static void on_later_closed(uv_handle_t* handle) {
}

/* Mid-window: leaks 50 timers, closes two idle handles and itself. */
static void leak_later(uv_timer_t* later) {
  uv_timer_cb cb = tick_c;

  leak_timers(later->loop, &cb);
  uv_close((uv_handle_t*)&world.idles[0], NULL);
  uv_close((uv_handle_t*)&world.idles[1], NULL);
  uv_close((uv_handle_t*)later, on_later_closed);
}

static void arm_later(uv_loop_t* loop, void* arg) {
  ASSERT_EQ(uv_timer_init(loop, &world.later), 0);
  ASSERT_EQ(uv_timer_start(&world.later, leak_later, 1000, 0), 0);
}

/* ?seconds=N: created in the window and alive (+), gone (-). */
TEST_IMPL(handles_delta) {
  test_host_t* h = start_world();
  const char* args[] = {"-top", "-nodecount=100", NULL, NULL};
  run_result_t r;

  /* The leak happens 1 s into a 3 s window. */
  host_call(h, arm_later, NULL);
  args[2] = save(h, "/debug/pprof/goroutine?seconds=3", "delta.pb.gz");
  go_pprof(args, &r);
  expect_top(r.out, "tick_c", NLEAKED, NLEAKED);
  expect_top(r.out, "on_idle_a", -2, -2);
  expect_top(r.out, "leak_later", -1, -1);
  expect_top(r.out, "tick_a", 0, 0);
  expect_top(r.out, "on_tick", 0, 0);
  run_free(&r);

  curl_get(h, "/debug/pprof/goroutine?seconds=1", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Disposition"),
                "attachment; filename=\"goroutine-delta\"");
  run_free(&r);
  stop_world(h);
  return 0;
}

/* ---- two loops on two threads ------------------------------------------- */

typedef struct {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_timer_t timers[7];
  uv_async_t wake;
  uv_async_t stick; /* blocks the loop until `release` is posted */
  uv_sem_t release;
  uv_sem_t started;
  int close_rc;
} second_t;

static void tick_second(uv_timer_t* t) {
}

static void on_stuck(uv_async_t* a) {
  second_t* s = a->data;
  uv_sem_wait(&s->release);
}

static void on_wake(uv_async_t* a) {
  second_t* s = a->data;
  size_t i;

  ASSERT_EQ(uv_pprof_stop(&s->loop), 0);
  for (i = 0; i < 7; i++)
    uv_close((uv_handle_t*)&s->timers[i], NULL);
  uv_close((uv_handle_t*)&s->stick, NULL);
  uv_close((uv_handle_t*)&s->wake, NULL);
}

static void second_main(void* arg) {
  second_t* s = arg;
  uv_pprof_options_t o;
  size_t i;

  ASSERT_EQ(uv_loop_init(&s->loop), 0);
  for (i = 0; i < 7; i++) {
    ASSERT_EQ(uv_timer_init(&s->loop, &s->timers[i]), 0);
    ASSERT_EQ(uv_timer_start(&s->timers[i], tick_second, 100000, 0), 0);
  }
  ASSERT_EQ(uv_async_init(&s->loop, &s->stick, on_stuck), 0);
  s->stick.data = s;
  ASSERT_EQ(uv_async_init(&s->loop, &s->wake, on_wake), 0);
  s->wake.data = s;
  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  /* The server is on the first host's loop: this only registers. */
  ASSERT_EQ(uv_pprof_start_ex(&s->loop, &o), 0);
  ASSERT_EQ(uv_pprof_address(&s->loop, &(struct sockaddr_storage){0}),
            UV_ENOENT);
  uv_sem_post(&s->started);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  s->close_rc = uv_loop_close(&s->loop);
}

TEST_IMPL(handles_two_loops) {
  test_host_t* h = host_start(NULL);
  second_t* s = calloc(1, sizeof(*s));
  char loop_label[64];
  char* text;
  char* dump;

  ASSERT(s != NULL);
  ASSERT_EQ(uv_sem_init(&s->release, 0), 0);
  ASSERT_EQ(uv_sem_init(&s->started, 0), 0);
  ASSERT_EQ(uv_thread_create(&s->thread, second_main, s), 0);
  uv_sem_wait(&s->started);
  snprintf(loop_label, sizeof(loop_label), "\"loop\":\"%p\"", (void*)&s->loop);

  /* Both loops, each walked on its own thread, in one profile. */
  text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  ASSERT_STARTS_WITH(text, "goroutine profile: total 11\n");
  ASSERT_CONTAINS(text, "\n7 @ 0x");
  ASSERT_CONTAINS(text, loop_label);
  ASSERT_CONTAINS(text, "\ttick_second+0x0\t");
  ASSERT_CONTAINS(text, "\ton_tick+0x0\t");
  ASSERT_NOT_CONTAINS(text, "did not answer");
  free(text);
  dump = fetch_body(h, "/debug/pprof/goroutine?debug=2");
  ASSERT_EQ(count_of(dump, "goroutine "), 11);
  ASSERT_EQ(count_of(dump, "\ntick_second(...)\n"), 7);
  free(dump);

  /* A loop stuck in a callback cannot answer: the profile says so and
   * holds the other loop's handles. */
  ASSERT_EQ(uv_async_send(&s->stick), 0);
  usleep(50000);
  text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  ASSERT_STARTS_WITH(text, "goroutine profile: total 2\n");
  ASSERT_CONTAINS(text,
                  "did not answer within 2 s: its handles are "
                  "missing\n");
  free(text);
  uv_sem_post(&s->release);
  /* Its late answer is dropped; the next request sees it again. */
  text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  ASSERT_STARTS_WITH(text, "goroutine profile: total 11\n");
  free(text);

  /* Stopping the second loop lets it close. */
  ASSERT_EQ(uv_async_send(&s->wake), 0);
  ASSERT_EQ(uv_thread_join(&s->thread), 0);
  ASSERT_EQ(s->close_rc, 0);
  text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  ASSERT_STARTS_WITH(text, "goroutine profile: total 2\n");
  free(text);
  uv_sem_destroy(&s->release);
  uv_sem_destroy(&s->started);
  free(s);
  host_stop(h);
  return 0;
}

/* ---- walks in slices ---------------------------------------------------- */

/* A walk visits the loop's handles a slice per loop iteration. Here slices
 * are capped at 7 handles, and each iteration closes one of the churning
 * timers and opens another (malloc'd, so addresses are reused): handles
 * that leave the queue ahead of or behind the walk's place and handles
 * joining its tail must neither crash the walk (ASan checks) nor disturb
 * the count of the handles that live throughout. */
#define NSTABLE 120
#define NCHURN 40

typedef struct {
  uv_timer_t stable[NSTABLE];
  uv_timer_t* churn[NCHURN];
  uv_prepare_t churner;
  size_t replaced;
  size_t slices;
  int churning;
} sliced_t;

static sliced_t sliced;

static void tick_stable(uv_timer_t* t) {
}

static void tick_churn(uv_timer_t* t) {
}

static void free_closed(uv_handle_t* h) {
  free(h);
}

static uv_timer_t* churn_timer(uv_loop_t* loop) {
  uv_timer_t* t = malloc(sizeof(*t));

  ASSERT(t != NULL);
  ASSERT_EQ(uv_timer_init(loop, t), 0);
  ASSERT_EQ(uv_timer_start(t, tick_churn, 100000, 0), 0);
  return t;
}

static void on_churn(uv_prepare_t* p) {
  size_t k = sliced.replaced % NCHURN;

  if (!sliced.churning)
    return;
  uv_close((uv_handle_t*)sliced.churn[k], free_closed);
  sliced.churn[k] = churn_timer(p->loop);
  sliced.replaced++;
}

static void build_sliced(uv_loop_t* loop, void* arg) {
  size_t i;

  memset(&sliced, 0, sizeof(sliced));
  for (i = 0; i < NSTABLE; i++) {
    ASSERT_EQ(uv_timer_init(loop, &sliced.stable[i]), 0);
    ASSERT_EQ(uv_timer_start(&sliced.stable[i], tick_stable, 100000, 0), 0);
  }
  for (i = 0; i < NCHURN; i++)
    sliced.churn[i] = churn_timer(loop);
  ASSERT_EQ(uv_prepare_init(loop, &sliced.churner), 0);
  ASSERT_EQ(uv_prepare_start(&sliced.churner, on_churn), 0);
  atomic_store(&uv_pprof__handles_slice_cap, 7);
}

static void set_churning(uv_loop_t* loop, void* arg) {
  sliced.churning = *(int*)arg;
  sliced.slices = atomic_load(&uv_pprof__handles_slices);
}

static void read_slices(uv_loop_t* loop, void* arg) {
  *(size_t*)arg = atomic_load(&uv_pprof__handles_slices) - sliced.slices;
}

static void close_sliced(uv_loop_t* loop, void* arg) {
  size_t i;

  for (i = 0; i < NSTABLE; i++)
    uv_close((uv_handle_t*)&sliced.stable[i], NULL);
  for (i = 0; i < NCHURN; i++)
    uv_close((uv_handle_t*)sliced.churn[i], free_closed);
  uv_close((uv_handle_t*)&sliced.churner, NULL);
  atomic_store(&uv_pprof__handles_slice_cap, 0);
}

/* The goroutine profile of the sliced host's loop while it stands still:
 * exactly the handles there are. */
static void expect_still_count(test_host_t* h) {
  const int all = NSTABLE + NCHURN + 1 + HOST_OWN;
  char line[64];
  int off = 0;
  char* text;

  host_call(h, set_churning, &off);
  text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  snprintf(line, sizeof(line), "goroutine profile: total %d\n", all);
  ASSERT_STARTS_WITH(text, line);
  snprintf(line, sizeof(line), "\n%d @ 0x", NSTABLE);
  ASSERT_CONTAINS(text, line);
  snprintf(line, sizeof(line), "\n%d @ 0x", NCHURN);
  ASSERT_CONTAINS(text, line);
  /* The walk's marker is an idle handle: it must not show. */
  ASSERT_NOT_CONTAINS(text, "uv_idle_t");
  free(text);
}

TEST_IMPL(handles_sliced) {
  test_host_t* h = host_start(NULL);
  const int all = NSTABLE + NCHURN + 1 + HOST_OWN;
  size_t slices;
  int on = 1;
  int off = 0;
  char* text;

  host_call(h, build_sliced, NULL);

  /* A still loop: exactly what is there, over many slices. */
  expect_still_count(h);
  host_call(h, read_slices, &slices);
  ASSERT_GE(slices, (size_t)all / 7);

  /* Churn during the walk. */
  host_call(h, set_churning, &on);
  text = fetch_body(h, "/debug/pprof/goroutine?debug=2");
  host_call(h, set_churning, &off);
  ASSERT_EQ(count_of(text, "\ntick_stable(...)\n"), NSTABLE);
  ASSERT_NOT_CONTAINS(text, "uv_idle_t");
  free(text);
  ASSERT_GT(sliced.replaced, 0);

  host_call(h, close_sliced, NULL);
  host_stop(h);
  return 0;
}

/* Walks rely on libuv's private layout (src/libuv_internals.c). The check
 * made before a loop's first walk passes on this libuv and leaves nothing
 * behind on the loop: no handle for uv_walk, nothing for uv_loop_close. */
static void count_handle(uv_handle_t* h, void* arg) {
  (*(int*)arg)++;
}

TEST_IMPL(libuv_layout_probe) {
  uv_loop_t loop;
  int n = 0;

  ASSERT_EQ(uv_loop_init(&loop), 0);
  ASSERT_EQ(uv_pprof__uvi_layout_ok(&loop), 1);
  uv_walk(&loop, count_handle, &n);
  ASSERT_EQ(n, 0);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  return 0;
}

/* Where the layout is not the expected one, a walk is one uv_walk: no slice
 * runs, and the count is as exact as with slices. */
TEST_IMPL(handles_layout_fallback) {
  test_host_t* h;
  size_t slices;

  atomic_store(&uv_pprof__uvi_unknown_layout, 1);
  h = host_start(NULL);
  host_call(h, build_sliced, NULL);
  expect_still_count(h);
  host_call(h, read_slices, &slices);
  ASSERT_EQ(slices, 0);
  host_call(h, close_sliced, NULL);
  host_stop(h);
  return 0;
}

/* A walk that takes longer than the 2 s a loop has to answer, because the
 * loop is busy (50 ms per iteration) and the walk slow (one handle a
 * slice): it progresses, so it is waited for, and the count is whole. */
#define NSLOW 60

typedef struct {
  uv_timer_t timers[NSLOW];
  uv_prepare_t busy;
  int on;
} slow_t;

static slow_t slow;

static void tick_slow(uv_timer_t* t) {
}

static void on_busy(uv_prepare_t* p) {
  if (slow.on)
    usleep(50000);
}

static void build_slow(uv_loop_t* loop, void* arg) {
  size_t i;

  memset(&slow, 0, sizeof(slow));
  for (i = 0; i < NSLOW; i++) {
    ASSERT_EQ(uv_timer_init(loop, &slow.timers[i]), 0);
    ASSERT_EQ(uv_timer_start(&slow.timers[i], tick_slow, 100000, 0), 0);
  }
  ASSERT_EQ(uv_prepare_init(loop, &slow.busy), 0);
  ASSERT_EQ(uv_prepare_start(&slow.busy, on_busy), 0);
  atomic_store(&uv_pprof__handles_slice_cap, 1);
  slow.on = 1;
}

static void close_slow(uv_loop_t* loop, void* arg) {
  size_t i;

  slow.on = 0;
  for (i = 0; i < NSLOW; i++)
    uv_close((uv_handle_t*)&slow.timers[i], NULL);
  uv_close((uv_handle_t*)&slow.busy, NULL);
  atomic_store(&uv_pprof__handles_slice_cap, 0);
}

TEST_IMPL(handles_slow_walk) {
  test_host_t* h = host_start(NULL);
  char line[64];
  char* text;

  host_call(h, build_slow, NULL);
  text = fetch_body(h, "/debug/pprof/goroutine?debug=1");
  snprintf(line, sizeof(line), "goroutine profile: total %d\n",
           NSLOW + 1 + HOST_OWN);
  ASSERT_STARTS_WITH(text, line);
  ASSERT_NOT_CONTAINS(text, "did not answer");
  free(text);
  host_call(h, close_slow, NULL);
  host_stop(h);
  return 0;
}

/* An answer of several MB goes out in chunks (and its buffer is freed on
 * the worker): it must arrive whole, and the connection must serve the
 * next request after it. */
#define NBIG 9000

static uv_timer_t* big_timers;

static void tick_big(uv_timer_t* t) {
}

static void build_big(uv_loop_t* loop, void* arg) {
  size_t i;

  big_timers = calloc(NBIG, sizeof(*big_timers));
  ASSERT(big_timers != NULL);
  for (i = 0; i < NBIG; i++) {
    ASSERT_EQ(uv_timer_init(loop, &big_timers[i]), 0);
    ASSERT_EQ(uv_timer_start(&big_timers[i], tick_big, 100000, 0), 0);
  }
}

static void close_big(uv_loop_t* loop, void* arg) {
  size_t i;

  for (i = 0; i < NBIG; i++)
    uv_close((uv_handle_t*)&big_timers[i], NULL);
}

TEST_IMPL(handles_large_answer) {
  test_host_t* h = host_start(NULL);
  char url[256];
  const char* argv[] = {"curl", "-sS", "--fail", "-w", "\n%{num_connects}\n",
                        url,    url,   NULL};
  const char* tail;
  run_result_t r;

  host_call(h, build_big, NULL);
  snprintf(url, sizeof(url), "%s/debug/pprof/goroutine?debug=2", host_base(h));
  /* Two answers on one keep-alive connection: curl connects once. */
  run_cmd(argv, NULL, 60000, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_GT(r.out_len, 2 * 1024 * 1024);
  ASSERT_EQ(count_of(r.out, "\ntick_big(...)\n"), 2 * NBIG);
  /* After each answer curl writes how many connections it opened. */
  tail = r.out + r.out_len - 3;
  ASSERT_STR_EQ(tail, "\n0\n");
  ASSERT_CONTAINS(r.out, "\n1\ngoroutine ");
  run_free(&r);
  host_call(h, close_big, NULL);
  host_stop(h);
  free(big_timers);
  return 0;
}

/* ---- creation stacks: libuv_pprof_track --------------------------------- */

/* Runs a handlehost variant that fetches debug=2 and the proto, and checks
 * that both name make_timers, the function that called uv_timer_init. */
static void expect_tracked(const char* host, const char* preload) {
  char env_preload[512];
  /* In a sanitizer build the preloaded tracker comes before ASan's
   * runtime, which ASan accepts when told. */
  const char* env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TRACK=handles",
                       "ASAN_OPTIONS=verify_asan_link_order=0", NULL, NULL};
  const char* dir = test_tmpdir();
  char dump_file[512];
  char proto_file[512];
  const char* argv[] = {host,       "/debug/pprof/goroutine?debug=2",
                        dump_file,  "/debug/pprof/goroutine",
                        proto_file, NULL};
  const char* traces[] = {"-traces", proto_file, NULL};
  run_result_t r;
  run_result_t t;
  FILE* f;
  char dump[65536];
  size_t n;

  if (preload != NULL) {
    snprintf(env_preload, sizeof(env_preload), "LD_PRELOAD=%s", preload);
    env[3] = env_preload;
  }
  snprintf(dump_file, sizeof(dump_file), "%s/dump.txt", dir);
  snprintf(proto_file, sizeof(proto_file), "%s/g.pb.gz", dir);
  run_cmd(argv, env, 60000, &r);
  if (r.status != 0)
    fprintf(stderr, "%s: status %d\n%s\n%s\n", host, r.status, r.out, r.err);
  ASSERT_EQ(r.status, 0);
  ASSERT_NOT_CONTAINS(r.err, "needs libuv_pprof_track");
  f = fopen(dump_file, "r");
  ASSERT(f != NULL);
  n = fread(dump, 1, sizeof(dump) - 1, f);
  fclose(f);
  dump[n] = '\0';
  /* Five timers made by make_timers, each with its creation stack. */
  ASSERT_EQ(blocks_with(dump, "[uv_timer_t", "tick_tracked(...)", 5), 5);
  ASSERT_EQ(count_of(dump, "\ncreated by make_timers\n\t"), 5);
  ASSERT_EQ(count_of(dump, "\nmake_timers(...)\n\t"), 5);
  /* main made the sixth handle, the host's own async, directly. */
  ASSERT_EQ(count_of(dump, "\nmain(...)\n\t"), 6);
  ASSERT_EQ(count_of(dump, "\ncreated by main\n\t"), 1);
  go_pprof(traces, &t);
  ASSERT_CONTAINS(t.out,
                  "     5   tick_tracked\n"
                  "             uv_timer_t\n"
                  "             make_timers\n"
                  "             main\n");
  run_free(&t);
  run_free(&r);
}

TEST_IMPL(handles_track_preload) {
  char lib[512];
  const char* argv[] = {UV_PPROF_HANDLEHOST, "/debug/pprof/goroutine?debug=2",
                        NULL, NULL};
  const char* env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TRACK=handles", NULL};
  char out[512];
  run_result_t r;

  snprintf(lib, sizeof(lib), "%s/libuv_pprof_track.so", UV_PPROF_BINARY_DIR);
  expect_tracked(UV_PPROF_HANDLEHOST, lib);

  /* Asked for, but the tracker is not there: one line says so, and the
   * profile works without creation stacks. */
  snprintf(out, sizeof(out), "%s/untracked.txt", test_tmpdir());
  argv[2] = out;
  run_cmd(argv, env, 60000, &r);
  ASSERT_EQ(r.status, 0);
  ASSERT_CONTAINS(r.err, "uv_pprof: handle tracking needs libuv_pprof_track");
  run_free(&r);
  return 0;
}

TEST_IMPL(handles_track_linked) {
  expect_tracked(UV_PPROF_HANDLEHOST_LINKED, NULL);
  return 0;
}

TEST_IMPL(handles_track_wrap) {
  expect_tracked(UV_PPROF_HANDLEHOST_WRAP, NULL);
  return 0;
}
