/* The helpers of task.h: running real clients as child processes (always
 * reaped, killed with their process group on timeout), a host loop on its
 * own thread with uv_pprof started on it, parsing of `curl -i` answers, a
 * named thread, raw TCP clients, and per-test temporary directories. Assertions
 * abort the test process; the runner reports that as a failure. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <zlib.h>

#include "loop.h"
#include "profile.pb-c.h"
#include "task.h"

/* ---- assertions --------------------------------------------------------- */

assert_value_t assert_signed(intmax_t v) {
  return (assert_value_t){.kind = ASSERT_SIGNED, .i = v};
}

assert_value_t assert_unsigned(uintmax_t v) {
  return (assert_value_t){.kind = ASSERT_UNSIGNED, .u = v};
}

assert_value_t assert_floating(long double v) {
  return (assert_value_t){.kind = ASSERT_FLOATING, .f = v};
}

static long double as_floating(assert_value_t v) {
  if (v.kind == ASSERT_SIGNED)
    return (long double)v.i; /* exact: a 64-bit mantissa */
  if (v.kind == ASSERT_UNSIGNED)
    return (long double)v.u;
  return v.f;
}

/* -1, 0 or 1 as a is below, equal to or above b by value; 2 when they are
 * unordered (a NaN). */
static int order(assert_value_t a, assert_value_t b) {
  if (a.kind == ASSERT_FLOATING || b.kind == ASSERT_FLOATING) {
    long double x = as_floating(a);
    long double y = as_floating(b);
    if (x < y)
      return -1;
    if (x > y)
      return 1;
    return x == y ? 0 : 2;
  }
  if (a.kind == ASSERT_SIGNED && b.kind == ASSERT_SIGNED)
    return (a.i > b.i) - (a.i < b.i);
  if (a.kind == ASSERT_SIGNED) {
    if (a.i < 0)
      return -1;
    a.u = (uintmax_t)a.i;
  }
  if (b.kind == ASSERT_SIGNED) {
    if (b.i < 0)
      return 1;
    b.u = (uintmax_t)b.i;
  }
  return (a.u > b.u) - (a.u < b.u);
}

static void print_value(assert_value_t v) {
  if (v.kind == ASSERT_SIGNED)
    fprintf(stderr, "%jd", v.i);
  else if (v.kind == ASSERT_UNSIGNED && v.u > 0xffff)
    fprintf(stderr, "%ju (0x%jx)", v.u, v.u);
  else if (v.kind == ASSERT_UNSIGNED)
    fprintf(stderr, "%ju", v.u);
  else
    fprintf(stderr, "%.17Lg", v.f);
}

void assert_compare(assert_value_t a, assert_op_t op, assert_value_t b,
                    const char* file, int line, const char* a_expr,
                    const char* b_expr) {
  static const char* const names[] = {"==", "!=", "<", "<=", ">", ">="};
  int o = order(a, b);
  int holds;

  switch (op) {
    case ASSERT_OP_EQ:
      holds = o == 0;
      break;
    case ASSERT_OP_NE:
      holds = o != 0;
      break;
    case ASSERT_OP_LT:
      holds = o == -1;
      break;
    case ASSERT_OP_LE:
      holds = o == -1 || o == 0;
      break;
    case ASSERT_OP_GT:
      holds = o == 1;
      break;
    default:
      holds = o == 1 || o == 0;
      break;
  }
  if (holds)
    return;
  fprintf(stderr,
          "Assertion failed in %s on line %d: %s %s %s\n  left:  ", file, line,
          a_expr, names[op], b_expr);
  print_value(a);
  fprintf(stderr, "\n  right: ");
  print_value(b);
  fprintf(stderr, "\n");
  abort();
}

/* ---- child processes ---------------------------------------------------- */

typedef struct {
  char* base;
  size_t len;
  size_t cap;
} grow_t;

static void grow_reserve(grow_t* g, size_t extra) {
  size_t cap;
  char* p;

  if (g->len + extra + 1 <= g->cap)
    return;
  cap = g->cap ? g->cap : 4096;
  while (cap < g->len + extra + 1)
    cap *= 2;
  p = realloc(g->base, cap);
  ASSERT(p != NULL);
  g->base = p;
  g->cap = cap;
}

static void grow_finish(grow_t* g) {
  grow_reserve(g, 0);
  g->base[g->len] = '\0';
}

static size_t key_len(const char* kv) {
  const char* eq = strchr(kv, '=');
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Whether `add` names the variable of kv: "K=V" and "K" name K, "K*" every
 * variable whose name starts with K. */
static int env_overridden(const char* kv, const char* const add[]) {
  size_t n = key_len(kv);
  size_t i;

  for (i = 0; add != NULL && add[i] != NULL; i++) {
    size_t m = key_len(add[i]);
    if (add[i][m] == '\0' && m > 0 && add[i][m - 1] == '*') {
      if (m - 1 <= n && strncmp(kv, add[i], m - 1) == 0)
        return 1;
    } else if (m == n && strncmp(kv, add[i], n) == 0) {
      return 1;
    }
  }
  return 0;
}

/* environ minus the keys named in `add`, plus the "K=V" entries of `add`. */
static char** make_env(const char* const add[]) {
  size_t n = 0;
  size_t i;
  size_t k = 0;
  char** env;

  while (environ[n] != NULL)
    n++;
  for (i = 0; add != NULL && add[i] != NULL; i++)
    n++;
  env = calloc(n + 1, sizeof(*env));
  ASSERT(env != NULL);
  for (i = 0; environ[i] != NULL; i++)
    if (!env_overridden(environ[i], add))
      env[k++] = environ[i];
  for (i = 0; add != NULL && add[i] != NULL; i++)
    if (strchr(add[i], '=') != NULL)
      env[k++] = (char*)add[i];
  env[k] = NULL;
  return env;
}

static int remaining_ms(uint64_t deadline) {
  uint64_t now = uv_hrtime();
  return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

static void drain(int* fd, grow_t* g) {
  ssize_t n;

  grow_reserve(g, 65536);
  n = read(*fd, g->base + g->len, 65536);
  if (n > 0) {
    g->len += (size_t)n;
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    close(*fd);
    *fd = -1;
  }
}

static int decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

void run_cmd(const char* const argv[], const char* const env[], int timeout_ms,
             run_result_t* r) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none;
  sigset_t def;
  grow_t out = {NULL, 0, 0};
  grow_t err = {NULL, 0, 0};
  int po[2];
  int pe[2];
  char** envp;
  pid_t pid;
  uint64_t deadline;
  int status;
  int rc;

  memset(r, 0, sizeof(*r));
  ASSERT_EQ(pipe2(po, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(pe, O_CLOEXEC), 0);
  ASSERT_EQ(posix_spawn_file_actions_init(&fa), 0);
  ASSERT_EQ(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0),
            0);
  ASSERT_EQ(posix_spawn_file_actions_adddup2(&fa, po[1], 1), 0);
  ASSERT_EQ(posix_spawn_file_actions_adddup2(&fa, pe[1], 2), 0);
  /* The runner ignores SIGPIPE and host threads may block signals; the child
   * must start with the defaults, in a group of its own so that a timeout
   * kills whatever it started too. */
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  ASSERT_EQ(posix_spawnattr_init(&attr), 0);
  ASSERT_EQ(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                                POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF),
            0);
  ASSERT_EQ(posix_spawnattr_setpgroup(&attr, 0), 0);
  ASSERT_EQ(posix_spawnattr_setsigmask(&attr, &none), 0);
  ASSERT_EQ(posix_spawnattr_setsigdefault(&attr, &def), 0);
  envp = make_env(env);
  rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char* const*)argv, envp);
  free(envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(po[1]);
  close(pe[1]);
  if (rc != 0) {
    close(po[0]);
    close(pe[0]);
    grow_finish(&out);
    grow_reserve(&err, 256);
    err.len = (size_t)snprintf(err.base, 256, "spawn %s: %s\n", argv[0],
                               strerror(rc));
    r->out = out.base;
    r->err = err.base;
    r->status = 127;
    return;
  }

  deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000;
  r->status = -2;
  while (po[0] >= 0 || pe[0] >= 0) {
    struct pollfd p[2];
    int n = 0;
    int i;
    int ms = remaining_ms(deadline);

    if (ms == 0)
      break;
    if (po[0] >= 0)
      p[n++] = (struct pollfd){.fd = po[0], .events = POLLIN};
    if (pe[0] >= 0)
      p[n++] = (struct pollfd){.fd = pe[0], .events = POLLIN};
    if (poll(p, (nfds_t)n, ms) < 0) {
      ASSERT_EQ(errno, EINTR);
      continue;
    }
    for (i = 0; i < n; i++) {
      if (p[i].revents == 0)
        continue;
      if (p[i].fd == po[0])
        drain(&po[0], &out);
      else
        drain(&pe[0], &err);
    }
  }

  /* Both pipes closed (or time is up): wait for the exit itself. */
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r->status = decode_status(status);
      break;
    }
    ASSERT(w == 0 || errno == EINTR);
    if (remaining_ms(deadline) == 0) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0)
        ASSERT_EQ(errno, EINTR);
      r->status = -1;
      break;
    }
    nanosleep(&(struct timespec){0, 2000000}, NULL);
  }
  if (po[0] >= 0)
    close(po[0]);
  if (pe[0] >= 0)
    close(pe[0]);
  grow_finish(&out);
  grow_finish(&err);
  r->out = out.base;
  r->out_len = out.len;
  r->err = err.base;
}

void run_sh(const char* script, int timeout_ms, run_result_t* r) {
  const char* argv[] = {"sh", "-c", script, NULL};
  run_cmd(argv, NULL, timeout_ms, r);
}

void run_free(run_result_t* r) {
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof(*r));
}

/* ---- children beside the test ------------------------------------------- */

void child_start(child_t* c, const char* name, const char* const argv[],
                 const char* const env[]) {
  static const char* dir;
  static int started;
  pid_t parent = getpid();
  char** envp;
  int in[2];
  int out[2];
  int report[2]; /* the exec's errno, if it fails */
  struct sigaction dfl;
  sigset_t none;
  int log;
  int err = 0;
  ssize_t n;

  if (dir == NULL)
    dir = test_tmpdir();
  /* As run_cmd's children: the runner ignores SIGPIPE (an ignored signal
   * stays ignored across exec) and host threads may block signals, but a
   * host starts with the defaults, SIGPIPE's killing it. */
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&none);
  memset(c, 0, sizeof(*c));
  snprintf(c->log, sizeof(c->log), "%s/%s-%d.log", dir, name, ++started);
  log = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(log, 0);
  ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  envp = make_env(env);
  c->pid = fork();
  ASSERT_GE(c->pid, 0);
  if (c->pid == 0) {
    /* Async-signal-safe calls only: the test may have threads. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    setpgid(0, 0);
    sigaction(SIGPIPE, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in[0], 0) >= 0 && dup2(out[1], 1) >= 0 && dup2(log, 2) >= 0)
      execve(argv[0], (char* const*)argv, envp);
    err = errno;
    (void)!write(report[1], &err, sizeof(err));
    _exit(127);
  }
  setpgid(c->pid, c->pid); /* whichever of the two runs first */
  free(envp);
  close(in[0]);
  close(out[1]);
  close(report[1]);
  close(log);
  do
    n = read(report[0], &err, sizeof(err));
  while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n > 0)
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(err));
  ASSERT_EQ(n, 0);
  c->in = in[1];
  c->out = out[0];
}

void child_line(child_t* c, char* line, size_t size, int timeout_ms) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000;
  size_t n = 0;

  for (;;) {
    struct pollfd p = {.fd = c->out, .events = POLLIN};
    ssize_t got;
    char ch;
    int rc = poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc != 1)
      fprintf(stderr, "%s: no line within %d ms\n", c->log, timeout_ms);
    ASSERT_EQ(rc, 1);
    got = read(c->out, &ch, 1);
    if (got < 0 && errno == EINTR)
      continue;
    if (got != 1) {
      fprintf(stderr, "%s: the child closed its stdout\n", c->log);
      child_dump_log(c);
    }
    ASSERT_EQ(got, 1);
    if (ch == '\n')
      break;
    ASSERT_LT(n + 1, size);
    line[n++] = ch;
  }
  line[n] = '\0';
}

/* Reaps c by the deadline, killing its group when time is up. */
static int reap(child_t* c, uint64_t deadline) {
  int status;

  for (;;) {
    pid_t w = waitpid(c->pid, &status, WNOHANG);
    if (w == c->pid)
      return decode_status(status);
    ASSERT(w == 0 || errno == EINTR);
    if (remaining_ms(deadline) == 0) {
      kill(-c->pid, SIGKILL);
      kill(c->pid, SIGKILL);
      while (waitpid(c->pid, &status, 0) < 0)
        ASSERT_EQ(errno, EINTR);
      return -1;
    }
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  }
}

int child_end(child_t* c, int timeout_ms, char** out) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000;
  grow_t g = {NULL, 0, 0};
  int status;

  close(c->in);
  while (c->out >= 0) {
    struct pollfd p = {.fd = c->out, .events = POLLIN};
    int ms = remaining_ms(deadline);
    int rc;
    if (ms == 0)
      break;
    rc = poll(&p, 1, ms);
    if (rc < 0 && errno != EINTR)
      break;
    if (rc > 0)
      drain(&c->out, &g);
  }
  if (c->out >= 0)
    close(c->out);
  status = reap(c, deadline);
  grow_finish(&g);
  if (out != NULL)
    *out = g.base;
  else
    free(g.base);
  return status;
}

void child_stop(child_t* c) {
  kill(c->pid, SIGTERM);
  reap(c, uv_hrtime() + 10000000000ULL);
  close(c->in);
  close(c->out);
}

void child_dump_log(const child_t* c) {
  const char* argv[] = {"tail", "-20", c->log, NULL};
  run_result_t r;

  run_cmd(argv, NULL, 5000, &r);
  fprintf(stderr, "%s:\n%s\n", c->log, r.out);
  run_free(&r);
}

/* ---- the host ----------------------------------------------------------- */

struct test_host_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_timer_t timer;
  uv_async_t async;
  uv_sem_t sem;
  uv_mutex_t lock; /* one host_call at a time */
  void (*fn)(uv_loop_t*, void*);
  void* arg;
  uv_pprof_options_t options;
  int start_rc;
  int close_rc;
  int port;
  char base[64];
  uint64_t last_tick;
  atomic_uint_fast64_t ticks;
  atomic_uint_fast64_t max_late_ns;
};

static void on_tick(uv_timer_t* t) {
  test_host_t* h = t->data;
  uint64_t now = uv_hrtime();

  if (h->last_tick != 0 && now - h->last_tick > 1000000) {
    uint64_t late = now - h->last_tick - 1000000;
    if (late > atomic_load(&h->max_late_ns))
      atomic_store(&h->max_late_ns, late);
  }
  h->last_tick = now;
  atomic_fetch_add(&h->ticks, 1);
}

static void on_call(uv_async_t* a) {
  test_host_t* h = a->data;
  void (*fn)(uv_loop_t*, void*) = h->fn;

  if (fn == NULL)
    return;
  h->fn = NULL;
  fn(&h->loop, h->arg);
  uv_sem_post(&h->sem);
}

static void host_main(void* arg) {
  test_host_t* h = arg;
  struct sockaddr_storage ss;

  ASSERT_EQ(uv_loop_init(&h->loop), 0);
  ASSERT_EQ(uv_timer_init(&h->loop, &h->timer), 0);
  h->timer.data = h;
  ASSERT_EQ(uv_timer_start(&h->timer, on_tick, 1, 1), 0);
  ASSERT_EQ(uv_async_init(&h->loop, &h->async, on_call), 0);
  h->async.data = h;
  h->start_rc = uv_pprof_start_ex(&h->loop, &h->options);
  if (h->start_rc == 0) {
    ASSERT_EQ(uv_pprof_address(&h->loop, &ss), 0);
    if (ss.ss_family == AF_INET)
      h->port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
    else
      h->port = ntohs(((struct sockaddr_in6*)&ss)->sin6_port);
  }
  uv_sem_post(&h->sem);
  if (h->start_rc != 0)
    return; /* host_start aborts the test */
  uv_run(&h->loop, UV_RUN_DEFAULT);
  h->close_rc = uv_loop_close(&h->loop);
}

static int live_hosts; /* started and not stopped, on the test's thread */

/* After the last host stopped: uv_pprof's worker threads finish on their
 * own (uv_pprof_stop never waits for them); the test's process must not
 * end under them, which would cut their freeing short (and a library's
 * thread-local memory would then show as leaked). 30 s at most. */
static void workers_gone(void) {
  int i;

  for (i = 0; i < 3000 && uv_pprof__worker_threads() != 0; i++)
    usleep(10000);
  ASSERT_EQ(uv_pprof__worker_threads(), 0);
}

test_host_t* host_start(const uv_pprof_options_t* options) {
  test_host_t* h = calloc(1, sizeof(*h));

  ASSERT(h != NULL);
  if (options != NULL) {
    h->options = *options;
  } else {
    uv_pprof_options_init(&h->options);
    h->options.host = "127.0.0.1";
    h->options.port = 0;
    h->options.quiet = 1;
  }
  ASSERT_EQ(uv_sem_init(&h->sem, 0), 0);
  ASSERT_EQ(uv_mutex_init(&h->lock), 0);
  ASSERT_EQ(uv_thread_create(&h->thread, host_main, h), 0);
  uv_sem_wait(&h->sem);
  if (h->start_rc != 0)
    fprintf(stderr, "uv_pprof_start_ex: %s\n", uv_err_name(h->start_rc));
  ASSERT_EQ(h->start_rc, 0);
  ASSERT_GT(h->port, 0);
  snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", h->port);
  live_hosts++;
  return h;
}

void host_call(test_host_t* h, void (*fn)(uv_loop_t*, void*), void* arg) {
  uv_mutex_lock(&h->lock);
  h->fn = fn;
  h->arg = arg;
  ASSERT_EQ(uv_async_send(&h->async), 0);
  uv_sem_wait(&h->sem);
  uv_mutex_unlock(&h->lock);
}

int host_port(test_host_t* h) {
  return h->port;
}

const char* host_base(test_host_t* h) {
  return h->base;
}

double host_max_lateness_ms(test_host_t* h) {
  return (double)atomic_load(&h->max_late_ns) / 1e6;
}

uint64_t host_ticks(test_host_t* h) {
  return atomic_load(&h->ticks);
}

static void stop_on_loop(uv_loop_t* loop, void* arg) {
  test_host_t* h = arg;

  ASSERT_EQ(uv_pprof_stop(loop), 0);
  uv_close((uv_handle_t*)&h->timer, NULL);
  uv_close((uv_handle_t*)&h->async, NULL);
}

void host_stop(test_host_t* h) {
  host_call(h, stop_on_loop, h);
  ASSERT_EQ(uv_thread_join(&h->thread), 0);
  ASSERT_EQ(h->close_rc, 0);
  uv_sem_destroy(&h->sem);
  uv_mutex_destroy(&h->lock);
  free(h);
  if (--live_hosts == 0)
    workers_gone();
}

/* ---- curl and its answers ----------------------------------------------- */

void curl_get(test_host_t* h, const char* path, const char* const extra[],
              run_result_t* r) {
  const char* argv[48];
  char url[4096 + 128];
  size_t n = 0;
  size_t i;

  argv[n++] = "curl";
  argv[n++] = "-s";
  argv[n++] = "-i";
  argv[n++] = "--max-time";
  argv[n++] = "20";
  for (i = 0; extra != NULL && extra[i] != NULL; i++) {
    ASSERT_LT(n, 45);
    argv[n++] = extra[i];
  }
  ASSERT_LT((size_t)snprintf(url, sizeof(url), "%s%s", h->base, path),
            sizeof(url));
  argv[n++] = url;
  argv[n] = NULL;
  run_cmd(argv, NULL, 30000, r);
  if (r->status != 0)
    fprintf(stderr, "curl %s: status %d, stderr: %s\n", url, r->status, r->err);
}

/* The final header block of an answer: "HTTP/1.1 100 Continue" blocks are
 * skipped. Sets *end to just past its "\r\n\r\n" (or the end of output). */
static const char* final_head(const run_result_t* r, const char** end) {
  const char* p = r->out;
  const char* stop = r->out + r->out_len;

  for (;;) {
    const char* e = memmem(p, (size_t)(stop - p), "\r\n\r\n", 4);
    const char* sp = memchr(p, ' ', (size_t)(stop - p));
    if (e == NULL) {
      *end = stop;
      return p;
    }
    if (strncmp(p, "HTTP/", 5) == 0 && sp != NULL && sp + 1 < stop &&
        sp[1] == '1' && e + 4 < stop && strncmp(e + 4, "HTTP/", 5) == 0) {
      p = e + 4;
      continue;
    }
    *end = e + 4;
    return p;
  }
}

int http_status(const run_result_t* r) {
  const char* end;
  const char* p;

  if (r->out == NULL || r->out_len == 0)
    return -1;
  p = final_head(r, &end);
  if (strncmp(p, "HTTP/", 5) != 0 || (p = strchr(p, ' ')) == NULL)
    return -1;
  return atoi(p + 1);
}

const char* http_header(const run_result_t* r, const char* name) {
  static char value[8192];
  size_t nlen = strlen(name);
  const char* end;
  const char* p;

  if (r->out == NULL)
    return NULL;
  p = final_head(r, &end);
  while (p < end) {
    const char* eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL || eol == p)
      break;
    if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
        strncasecmp(p, name, nlen) == 0) {
      const char* v = p + nlen + 1;
      size_t len;
      while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
      len = (size_t)(eol - v);
      while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
      if (len >= sizeof(value))
        len = sizeof(value) - 1;
      memcpy(value, v, len);
      value[len] = '\0';
      return value;
    }
    p = eol + 2;
  }
  return NULL;
}

const char* http_body(const run_result_t* r, size_t* len) {
  const char* end;

  if (r->out == NULL) {
    *len = 0;
    return "";
  }
  final_head(r, &end);
  *len = (size_t)(r->out + r->out_len - end);
  return end;
}

/* ---- a named thread ----------------------------------------------------- */

static void* helper_main(void* arg) {
  helper_thread_t* h = arg;

  ASSERT_EQ(pthread_setname_np(pthread_self(), "uvpp-helper"), 0);
  h->tid = gettid();
  pthread_barrier_wait(&h->ready);
  pthread_barrier_wait(&h->done);
  return NULL;
}

void helper_thread_start(helper_thread_t* h) {
  ASSERT_EQ(pthread_barrier_init(&h->ready, NULL, 2), 0);
  ASSERT_EQ(pthread_barrier_init(&h->done, NULL, 2), 0);
  ASSERT_EQ(pthread_create(&h->thread, NULL, helper_main, h), 0);
  pthread_barrier_wait(&h->ready);
}

void helper_thread_stop(helper_thread_t* h) {
  pthread_barrier_wait(&h->done);
  ASSERT_EQ(pthread_join(h->thread, NULL), 0);
  pthread_barrier_destroy(&h->ready);
  pthread_barrier_destroy(&h->done);
}

/* ---- raw TCP ------------------------------------------------------------ */

int tcp_connect(int port) {
  struct sockaddr_in sin;
  struct timeval tv = {5, 0};
  int fd;
  int rc;

  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    fprintf(stderr, "socket: %s\n", strerror(errno));
  ASSERT_GE(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  do
    rc = connect(fd, (struct sockaddr*)&sin, sizeof(sin));
  while (rc != 0 && errno == EINTR);
  if (rc != 0)
    fprintf(stderr, "connect 127.0.0.1:%d: %s\n", port, strerror(errno));
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  return fd;
}

int tcp_send(int fd, const void* data, size_t len) {
  const char* p = data;

  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

char* tcp_read_all(int fd, int timeout_ms, size_t* len) {
  grow_t g = {NULL, 0, 0};
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000;

  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ms = remaining_ms(deadline);
    ssize_t n;

    if (ms == 0)
      break;
    n = poll(&p, 1, ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    grow_reserve(&g, 65536);
    n = recv(fd, g.base + g.len, 65536, MSG_DONTWAIT);
    if (n > 0) {
      g.len += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    break; /* EOF, or a reset: either way nothing more will come */
  }
  grow_finish(&g);
  if (len != NULL)
    *len = g.len;
  return g.base;
}

/* ---- files -------------------------------------------------------------- */

void read_exe(char* exe, size_t size) {
  ssize_t n = readlink("/proc/self/exe", exe, size - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
}

void read_comm(char* name, size_t size) {
  FILE* f = fopen("/proc/self/comm", "r");

  ASSERT(f != NULL);
  ASSERT(fgets(name, (int)size, f) != NULL);
  name[strcspn(name, "\n")] = '\0';
  fclose(f);
}

#define MAX_TMPDIRS 16

static char tmpdirs[MAX_TMPDIRS][64];
static int ntmpdirs;
static pid_t tmpdir_owner;

static void remove_tmpdirs(void) {
  int i;

  if (getpid() != tmpdir_owner)
    return;
  for (i = 0; i < ntmpdirs; i++) {
    const char* argv[] = {"rm", "-rf", tmpdirs[i], NULL};
    run_result_t r;
    run_cmd(argv, NULL, 30000, &r);
    run_free(&r);
  }
  ntmpdirs = 0;
}

/* A failed assertion aborts, which skips atexit: clean up, then die. */
static void on_abort(int sig) {
  remove_tmpdirs();
  raise(sig);
}

const char* test_tmpdir(void) {
  char* dir;

  ASSERT_LT(ntmpdirs, MAX_TMPDIRS);
  dir = tmpdirs[ntmpdirs];
  snprintf(dir, sizeof(tmpdirs[0]), "/tmp/uv_pprof_test.XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
  if (ntmpdirs++ == 0 && tmpdir_owner == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_abort;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    tmpdir_owner = getpid();
    ASSERT_EQ(atexit(remove_tmpdirs), 0);
    ASSERT_EQ(sigaction(SIGABRT, &sa, NULL), 0);
  }
  return dir;
}

const char* fixture_path(const char* name) {
  static char path[4096];

  ASSERT_LT((size_t)snprintf(path, sizeof(path), "%s/test/fixtures/%s",
                             UV_PPROF_SOURCE_DIR, name),
            sizeof(path));
  return path;
}

/* ---- profiles ----------------------------------------------------------- */

void profile_gunzip(const void* gz, size_t len, uv_pprof__buf_t* raw) {
  unsigned char chunk[65536];
  z_stream zs;
  int rc;

  ASSERT_GT(len, 10);
  ASSERT_EQ(((const unsigned char*)gz)[0], 0x1f);
  ASSERT_EQ(((const unsigned char*)gz)[1], 0x8b);
  memset(&zs, 0, sizeof(zs));
  ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = (Bytef*)gz;
  zs.avail_in = (uInt)len;
  do {
    zs.next_out = chunk;
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    ASSERT(rc == Z_OK || rc == Z_STREAM_END);
    ASSERT_EQ(uv_pprof__buf_append(raw, chunk, sizeof(chunk) - zs.avail_out),
              0);
  } while (rc != Z_STREAM_END);
  ASSERT_EQ(zs.avail_in, 0); /* one gzip member, nothing after it */
  inflateEnd(&zs);
}

Perftools__Profiles__Profile* profile_decode(const void* gz, size_t len) {
  Perftools__Profiles__Profile* p;
  uv_pprof__buf_t raw;

  uv_pprof__buf_init(&raw);
  profile_gunzip(gz, len, &raw);
  p = perftools__profiles__profile__unpack(NULL, raw.len,
                                           (const uint8_t*)raw.base);
  ASSERT(p != NULL);
  uv_pprof__buf_free(&raw);
  return p;
}

const char* profile_str(const Perftools__Profiles__Profile* p, int64_t i) {
  ASSERT_GE(i, 0);
  ASSERT_LT((uint64_t)i, p->n_string_table);
  return p->string_table[i];
}

const Perftools__Profiles__Location* profile_location(
    const Perftools__Profiles__Profile* p, uint64_t id) {
  size_t i;

  for (i = 0; i < p->n_location; i++)
    if (p->location[i]->id == id)
      return p->location[i];
  ASSERT(0 && "no such location");
  return NULL;
}

const Perftools__Profiles__Function* profile_function(
    const Perftools__Profiles__Profile* p, uint64_t id) {
  size_t i;

  for (i = 0; i < p->n_function; i++)
    if (p->function[i]->id == id)
      return p->function[i];
  ASSERT(0 && "no such function");
  return NULL;
}

const Perftools__Profiles__Mapping* profile_mapping(
    const Perftools__Profiles__Profile* p, uint64_t id) {
  size_t i;

  for (i = 0; i < p->n_mapping; i++)
    if (p->mapping[i]->id == id)
      return p->mapping[i];
  return NULL;
}

void go_pprof(const char* const args[], run_result_t* r) {
  static char home[128];
  static char tmp[128];
  const char* argv[32] = {"go", "tool", "pprof"};
  const char* env[] = {home, tmp, NULL};
  const char* dir = test_tmpdir();
  size_t n = 3;
  size_t i;

  for (i = 0; args[i] != NULL; i++) {
    ASSERT_LT(n, 31);
    argv[n++] = args[i];
  }
  argv[n] = NULL;
  snprintf(home, sizeof(home), "HOME=%s", dir);
  snprintf(tmp, sizeof(tmp), "PPROF_TMPDIR=%s", dir);
  run_cmd(argv, env, 120000, r);
  if (r->status != 0)
    fprintf(stderr, "go tool pprof: status %d\n%s\n%s\n", r->status, r->out,
            r->err);
  ASSERT_EQ(r->status, 0);
}
