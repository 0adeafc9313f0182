/* uv_pprof_idiomhost: a C host shutting down as real hosts do, checking
 * itself (exit 0: every check held; a failed check prints one line and
 * exits 1). Built linked with libuv_pprof, and again with libuv_pprof_track
 * ahead of libuv (which interposes uv_loop_close). Modes:
 *
 *   walkclose   the host's uv_walk sees only its own handles (and their
 *               data); it closes everything it sees, then uv_pprof_stop,
 *               uv_run, uv_loop_close == 0
 *   inflight    the README's order while a CPU window, a ?seconds= delta and
 *               a sliced walk of 100k handles are in flight: close == 0
 *   neverstop   no uv_pprof_stop: a plain uv_loop_close, the loop freed and
 *               scribbled over while a CPU window's job is still running
 *   neverstop-luv  the same with luv's "close until it succeeds" loop
 *   loops       200 loops in a row, created, served, fetched, stopped,
 *               closed; no descriptor or thread left
 *   loops-threads  the same on 4 threads at once (one serves, the others
 *               are registered, in turn)
 *   fork        a pre-fork server: the child (uv_loop_fork) runs its loop
 *               and never answers; the parent keeps serving; both close
 *   exit        exit() from a callback with requests in flight
 *   return      return from main with requests in flight
 *   shutdown    the README's order, then uv_library_shutdown()
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "uv_pprof.h"

#define CHECK(expr)                                                 \
  do {                                                              \
    if (!(expr)) {                                                  \
      fprintf(stderr, "idiomhost: line %d: %s\n", __LINE__, #expr); \
      exit(1);                                                      \
    }                                                               \
  } while (0)

static int marker; /* the host's handle->data */

static int count_dir(const char* path) {
  DIR* d = opendir(path);
  struct dirent* e;
  int n = 0;

  CHECK(d != NULL);
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static int port_of(uv_loop_t* loop) {
  struct sockaddr_storage ss;

  CHECK(uv_pprof_address(loop, &ss) == 0);
  return ntohs(((struct sockaddr_in*)&ss)->sin_port);
}

static uv_loop_t* new_loop(void) {
  uv_loop_t* loop = malloc(sizeof(*loop));
  uv_pprof_options_t o;

  CHECK(loop != NULL && uv_loop_init(loop) == 0);
  uv_pprof_options_init(&o);
  o.port = 0;
  o.quiet = 1;
  CHECK(uv_pprof_start_ex(loop, &o) == 0);
  return loop;
}

/* curl in the background: its pid. Output to `out` (or /dev/null). */
static pid_t curl(int port, const char* path, const char* out) {
  char url[256];
  pid_t pid;

  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    execlp("curl", "curl", "-s", "-m", "30", "-o",
           out != NULL ? out : "/dev/null", url, (char*)NULL);
    _exit(127);
  }
  return pid;
}

/* Runs the loop until pid exits. Returns its exit status. */
typedef struct {
  uv_timer_t timer;
  pid_t pid;
  int status;
} waiter_t;

static void on_poll_child(uv_timer_t* t) {
  waiter_t* w = (waiter_t*)t;
  int st;

  if (waitpid(w->pid, &st, WNOHANG) == w->pid) {
    w->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    uv_close((uv_handle_t*)t, NULL);
    uv_stop(t->loop);
  }
}

static int run_until_exit(uv_loop_t* loop, pid_t pid) {
  waiter_t w;

  w.pid = pid;
  w.status = -1;
  CHECK(uv_timer_init(loop, &w.timer) == 0);
  w.timer.data = &marker;
  CHECK(uv_timer_start(&w.timer, on_poll_child, 5, 5) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_run(loop, UV_RUN_NOWAIT); /* the timer's close */
  return w.status;
}

static int refused(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int r;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  r = connect(fd, (struct sockaddr*)&a, sizeof(a));
  close(fd);
  return r != 0;
}

static void noop_timer(uv_timer_t* t) {
  (void)t;
}

static void add_timers(uv_loop_t* loop, uv_timer_t* timers, int n) {
  int i;

  for (i = 0; i < n; i++) {
    CHECK(uv_timer_init(loop, &timers[i]) == 0);
    timers[i].data = &marker;
    CHECK(uv_timer_start(&timers[i], noop_timer, 3600000, 0) == 0);
  }
}

/* ---- walkclose ---------------------------------------------------------- */

static void on_walk_count(uv_handle_t* h, void* arg) {
  /* A host reading handle->data as its own must only meet its own. */
  CHECK(h->data == &marker);
  (*(int*)arg)++;
}

static void on_walk_close(uv_handle_t* h, void* arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static int walkclose(void) {
  uv_loop_t* loop = new_loop();
  uv_timer_t timers[3];
  int n = 0;

  add_timers(loop, timers, 3);
  CHECK(run_until_exit(
            loop,
            curl(port_of(loop), "/debug/pprof/goroutine?debug=1", NULL)) == 0);
  uv_walk(loop, on_walk_count, &n);
  CHECK(n == 3);
  uv_walk(loop, on_walk_close, NULL);
  CHECK(uv_pprof_stop(loop) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
  free(loop);
  return 0;
}

/* ---- inflight ----------------------------------------------------------- */

#define MANY 100000

typedef struct {
  uv_timer_t timer;
  uv_timer_t* many;
  pid_t pids[4];
} inflight_t;

static void on_stop_now(uv_timer_t* t) {
  inflight_t* f = (inflight_t*)t;
  int i;

  CHECK(uv_pprof_stop(t->loop) == 0);
  for (i = 0; i < MANY; i++)
    uv_close((uv_handle_t*)&f->many[i], NULL);
  uv_close((uv_handle_t*)t, NULL);
}

static int inflight(void) {
  uv_loop_t* loop = new_loop();
  int port = port_of(loop);
  inflight_t f;
  int i;

  f.many = malloc(MANY * sizeof(*f.many));
  CHECK(f.many != NULL);
  add_timers(loop, f.many, MANY);
  f.pids[0] = curl(port, "/debug/pprof/profile?seconds=5", NULL);
  f.pids[1] = curl(port, "/debug/pprof/goroutine?seconds=5", NULL);
  f.pids[2] = curl(port, "/debug/pprof/goroutine?debug=2", NULL);
  f.pids[3] = curl(port, "/metrics", NULL);
  CHECK(uv_timer_init(loop, &f.timer) == 0);
  f.timer.data = &marker;
  /* Soon after the requests arrived: the window and the delta are open;
   * the debug=2 walk of 100k handles may still be slicing. */
  CHECK(uv_timer_start(&f.timer, on_stop_now, 300, 0) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
  for (i = 0; i < 4; i++)
    waitpid(f.pids[i], NULL, 0);
  free(f.many);
  free(loop);
  return 0;
}

/* ---- neverstop ---------------------------------------------------------- */

static void on_close_all(uv_timer_t* t) {
  uv_walk(t->loop, on_walk_close, NULL);
}

static int neverstop(int luv) {
  uv_loop_t* loop = new_loop();
  int port = port_of(loop);
  int tracker = dlsym(RTLD_DEFAULT, "uv_pprof_track_enable_v1") != NULL;
  uv_timer_t timers[2];
  uv_timer_t closer;
  pid_t pid;
  int tries = 0;

  add_timers(loop, timers, 2);
  /* A CPU window whose job ends after the loop is gone. */
  pid = curl(port, "/debug/pprof/profile?seconds=1", NULL);
  CHECK(uv_timer_init(loop, &closer) == 0);
  closer.data = &marker;
  CHECK(uv_timer_start(&closer, on_close_all, 400, 0) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  if (luv) {
    /* luv's teardown: spins for ever if close keeps failing. */
    while (uv_loop_close(loop) != 0) {
      CHECK(++tries < 1000);
      uv_run(loop, UV_RUN_DEFAULT);
    }
  } else {
    CHECK(uv_loop_close(loop) == 0);
  }
  memset(loop, 0xa5, sizeof(*loop));
  free(loop);
  /* With the tracker, uv_pprof left the loop before it closed: the socket
   * is gone. Linked alone, nothing tells uv_pprof (README). */
  CHECK(refused(port) == tracker);
  /* Linked alone, the window's answer never comes (its loop is gone):
   * curl is not waited for. */
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  sleep(1); /* the window's job finishes and wakes a loop that is gone */
  return 0;
}

/* ---- loops -------------------------------------------------------------- */

static void loop_once(int fetch) {
  uv_loop_t* loop = new_loop();
  uv_timer_t t;

  add_timers(loop, &t, 1);
  if (fetch && uv_pprof_address(loop, &(struct sockaddr_storage){0}) == 0)
    CHECK(run_until_exit(loop, curl(port_of(loop),
                                    "/debug/pprof/goroutine?debug=1", NULL)) ==
          0);
  uv_close((uv_handle_t*)&t, NULL);
  CHECK(uv_pprof_stop(loop) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
  free(loop);
}

static void loops_thread(void* arg) {
  int i;

  for (i = 0; i < 50; i++)
    loop_once(0);
  (void)arg;
}

static int loops(int threads) {
  uv_loop_t first;
  int fds;
  int tasks;
  int i;

  /* libuv's process-wide signal pipe comes with the first loop. */
  CHECK(uv_loop_init(&first) == 0 && uv_loop_close(&first) == 0);
  fds = count_dir("/proc/self/fd");
  tasks = count_dir("/proc/self/task");

  if (!threads) {
    for (i = 0; i < 200; i++)
      loop_once(i % 20 == 0);
  } else {
    uv_thread_t t[4];
    for (i = 0; i < 4; i++)
      CHECK(uv_thread_create(&t[i], loops_thread, NULL) == 0);
    for (i = 0; i < 4; i++)
      CHECK(uv_thread_join(&t[i]) == 0);
  }
  CHECK(count_dir("/proc/self/fd") == fds);
  CHECK(count_dir("/proc/self/task") == tasks);
  return 0;
}

/* ---- fork --------------------------------------------------------------- */

/* The goroutine total the server answering `port` reports: the parent's is
 * its 2 timers and run_until_exit's; the child's would be 5 more. */
#define PARENT_TOTAL 3
static int total_at(uv_loop_t* loop, int port) {
  char path[64];
  char line[128];
  FILE* f;
  int total = -1;

  snprintf(path, sizeof(path), "/tmp/idiomhost.%ld", (long)getpid());
  CHECK(run_until_exit(
            loop, curl(port, "/debug/pprof/goroutine?debug=1", path)) == 0);
  f = fopen(path, "r");
  CHECK(f != NULL);
  if (fgets(line, sizeof(line), f) != NULL)
    sscanf(line, "goroutine profile: total %d", &total);
  fclose(f);
  unlink(path);
  return total;
}

static void on_child_done(uv_timer_t* t) {
  uv_close((uv_handle_t*)t, NULL);
  uv_stop(t->loop);
}

static int forked(void) {
  uv_loop_t* loop = new_loop();
  int port = port_of(loop);
  uv_timer_t timers[2];
  uv_timer_t extra[5];
  uv_timer_t done;
  pid_t child;
  int st;
  int i;

  add_timers(loop, timers, 2);
  /* A job ran: the worker thread exists when the process forks. */
  CHECK(total_at(loop, port) == PARENT_TOTAL);
  child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    CHECK(uv_loop_fork(loop) == 0);
    /* The child has 5 more handles: any answer from it would say so. */
    add_timers(loop, extra, 5);
    CHECK(uv_timer_init(loop, &done) == 0);
    done.data = &marker;
    CHECK(uv_timer_start(&done, on_child_done, 1500, 0) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    for (i = 0; i < 5; i++)
      uv_close((uv_handle_t*)&extra[i], NULL);
    for (i = 0; i < 2; i++)
      uv_close((uv_handle_t*)&timers[i], NULL);
    CHECK(uv_pprof_stop(loop) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(loop) == 0);
    free(loop);
    exit(0);
  }
  /* Meanwhile every answer is the parent's. */
  for (i = 0; i < 10; i++) {
    CHECK(total_at(loop, port) == PARENT_TOTAL);
    usleep(100000);
  }
  CHECK(waitpid(child, &st, 0) == child);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(total_at(loop, port) == PARENT_TOTAL);
  for (i = 0; i < 2; i++)
    uv_close((uv_handle_t*)&timers[i], NULL);
  CHECK(uv_pprof_stop(loop) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
  free(loop);
  return 0;
}

/* ---- exit, return, shutdown --------------------------------------------- */

static void on_exit_now(uv_timer_t* t) {
  (void)t;
  exit(0);
}

static void on_return_now(uv_timer_t* t) {
  uv_stop(t->loop);
}

static int leave(int how) {
  uv_loop_t* loop = new_loop();
  int port = port_of(loop);
  uv_timer_t timers[3];
  uv_timer_t t;

  add_timers(loop, timers, 3);
  curl(port, "/debug/pprof/profile?seconds=5", NULL);
  curl(port, "/debug/pprof/goroutine?seconds=5", NULL);
  curl(port, "/debug/pprof/heap", NULL);
  CHECK(uv_timer_init(loop, &t) == 0);
  t.data = &marker;
  CHECK(uv_timer_start(&t, how ? on_exit_now : on_return_now, 400, 0) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0; /* from main, with everything still open */
}

static int shutdown_all(void) {
  uv_loop_t* loop = new_loop();
  uv_timer_t t;

  add_timers(loop, &t, 1);
  CHECK(run_until_exit(
            loop, curl(port_of(loop), "/debug/pprof/goroutine", NULL)) == 0);
  uv_close((uv_handle_t*)&t, NULL);
  CHECK(uv_pprof_stop(loop) == 0);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
  free(loop);
  uv_library_shutdown();
  return 0;
}

int main(int argc, char** argv) {
  const char* m = argc > 1 ? argv[1] : "";

  signal(SIGPIPE, SIG_IGN);
  if (strcmp(m, "walkclose") == 0)
    return walkclose();
  if (strcmp(m, "inflight") == 0)
    return inflight();
  if (strcmp(m, "neverstop") == 0)
    return neverstop(0);
  if (strcmp(m, "neverstop-luv") == 0)
    return neverstop(1);
  if (strcmp(m, "loops") == 0)
    return loops(0);
  if (strcmp(m, "loops-threads") == 0)
    return loops(1);
  if (strcmp(m, "fork") == 0)
    return forked();
  if (strcmp(m, "exit") == 0)
    return leave(1);
  if (strcmp(m, "return") == 0)
    return leave(0);
  if (strcmp(m, "shutdown") == 0)
    return shutdown_all();
  fprintf(stderr, "usage: %s MODE (see the source)\n", argv[0]);
  return 2;
}
