/* Tests of the CPU profile: the seconds parameter, Go's proto, proportions
 * of a host burning CPU 3:1 on its loop thread and on another thread,
 * overlapping and abandoned windows, the cap, fork, the return to nothing
 * installed (signal dispositions, POSIX timers, threads) and soaks under
 * malloc, thread, dlopen and fork churn with jemalloc profiling on. Windows
 * are seconds long; nothing asserts a duration against a fixed limit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "profile.h"
#include "profile.pb-c.h"
#include "task.h"

typedef Perftools__Profiles__Profile profile_t;
typedef Perftools__Profiles__Sample sample_t;

#define OCTET "application/octet-stream"
#define RATIO_SECONDS 6

/* ---- the process's state ------------------------------------------------ */

typedef struct {
  void* handler[64];
  int siginfo[64];
} rt_state_t;

static void rt_read(rt_state_t* st) {
  int sig;

  for (sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
    struct sigaction sa;
    ASSERT_EQ(sigaction(sig, NULL, &sa), 0);
    st->handler[sig - SIGRTMIN] = (sa.sa_flags & SA_SIGINFO)
                                      ? (void*)sa.sa_sigaction
                                      : (void*)sa.sa_handler;
    st->siginfo[sig - SIGRTMIN] = (sa.sa_flags & SA_SIGINFO) != 0;
  }
}

/* Number of real-time signals whose disposition differs from `before`. */
static int rt_changed(const rt_state_t* before) {
  rt_state_t now;
  int n = 0;
  int i;

  rt_read(&now);
  for (i = 0; i <= SIGRTMAX - SIGRTMIN; i++)
    n += now.handler[i] != before->handler[i] ||
         now.siginfo[i] != before->siginfo[i];
  return n;
}

/* POSIX timers of this process (the "ID:" lines of /proc/self/timers). */
static int posix_timers(void) {
  char line[256];
  FILE* f = fopen("/proc/self/timers", "r");
  int n = 0;

  ASSERT(f != NULL);
  while (fgets(line, sizeof(line), f) != NULL)
    n += strncmp(line, "ID:", 3) == 0;
  fclose(f);
  return n;
}

static int thread_count(void) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  int n = 0;

  ASSERT(d != NULL);
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static int armed(void) {
  uv_pprof__sampler_stats_t st;

  uv_pprof__sampler_stats(&st);
  return st.signo != 0;
}

/* Waits (at most 60 s, then fails) until the sampler is armed or not. */
static void wait_armed(int want) {
  int i;

  for (i = 0; i < 6000 && armed() != want; i++)
    sleep_ms(10);
  if (armed() != want)
    fprintf(stderr, "the sampler never became %s\n",
            want ? "armed" : "disarmed");
  ASSERT_EQ(armed(), want);
}

/* ---- requests ----------------------------------------------------------- */

typedef struct {
  const char* url;
  run_result_t r;
  uint64_t elapsed_ns; /* of the whole request, as the client saw it */
  uv_thread_t thread;
} fetch_t;

static void fetch_run(void* arg) {
  fetch_t* f = arg;
  const char* argv[] = {"curl", "-s", "-i", "--max-time", "120", f->url, NULL};
  uint64_t start = uv_hrtime();

  run_cmd(argv, NULL, 130000, &f->r);
  f->elapsed_ns = uv_hrtime() - start;
}

static void fetch_start(fetch_t* f, const char* url) {
  memset(f, 0, sizeof(*f));
  f->url = url;
  ASSERT_EQ(uv_thread_create(&f->thread, fetch_run, f), 0);
}

static void fetch_wait(fetch_t* f) {
  ASSERT_EQ(uv_thread_join(&f->thread), 0);
  if (f->r.status != 0)
    fprintf(stderr, "curl %s: %d %s\n", f->url, f->r.status, f->r.err);
  ASSERT_EQ(f->r.status, 0);
}

static const char* url_of(const char* base, const char* path) {
  static char urls[16][256];
  static int next;
  char* u = urls[next++ % 16];

  snprintf(u, sizeof(urls[0]), "%s%s", base, path);
  return u;
}

/* Sends a GET on a new connection and leaves it open; the server closes it
 * after its answer. */
static int raw_get(int port, const char* path) {
  char req[512];
  int fd = tcp_connect(port);

  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           path);
  ASSERT_EQ(tcp_send(fd, req, strlen(req)), 0);
  return fd;
}

static int readable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};

  return poll(&p, 1, timeout_ms) == 1;
}

/* ---- profiles ----------------------------------------------------------- */

/* The CPU answer's headers, then its profile. */
static profile_t* decode(const run_result_t* r) {
  size_t len;
  const char* body = http_body(r, &len);

  ASSERT_EQ(http_status(r), 200);
  ASSERT_STR_EQ(http_header(r, "Content-Type"), OCTET);
  ASSERT_STR_EQ(http_header(r, "Content-Disposition"),
                "attachment; filename=\"profile\"");
  return profile_decode(body, len);
}

/* Go's CPU profile: sample and period types, period, duration. */
static void check_cpu_profile(const profile_t* p) {
  size_t i;

  ASSERT_EQ(p->n_sample_type, 2);
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->type), "samples");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->unit), "count");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[1]->type), "cpu");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[1]->unit), "nanoseconds");
  ASSERT(p->period_type != NULL);
  ASSERT_STR_EQ(profile_str(p, p->period_type->type), "cpu");
  ASSERT_STR_EQ(profile_str(p, p->period_type->unit), "nanoseconds");
  ASSERT_EQ(p->period, 10000000);
  ASSERT_EQ(p->default_sample_type, 0);
  ASSERT_GT(p->duration_nanos, 0);
  ASSERT_GT(p->time_nanos, 0);
  for (i = 0; i < p->n_sample; i++) {
    const sample_t* s = p->sample[i];
    ASSERT_EQ(s->n_value, 2);
    ASSERT_GT(s->value[0], 0);
    ASSERT_EQ(s->value[1], s->value[0] * 10000000);
    ASSERT_GT(s->n_location_id, 0);
  }
}

static const char* label(const profile_t* p, const sample_t* s,
                         const char* key) {
  size_t i;

  for (i = 0; i < s->n_label; i++)
    if (strcmp(profile_str(p, s->label[i]->key), key) == 0)
      return profile_str(p, s->label[i]->str);
  return NULL;
}

static int64_t samples_with_label(const profile_t* p, const char* key,
                                  const char* value) {
  int64_t n = 0;
  size_t i;

  for (i = 0; i < p->n_sample; i++) {
    const char* v = label(p, p->sample[i], key);
    if (v != NULL && strcmp(v, value) == 0)
      n += p->sample[i]->value[0];
  }
  return n;
}

static const char* function_name(const profile_t* p, uint64_t id) {
  size_t i;

  for (i = 0; i < p->n_function; i++)
    if (p->function[i]->id == id)
      return profile_str(p, p->function[i]->name);
  return NULL;
}

static int location_calls(const profile_t* p, uint64_t id, const char* name) {
  size_t i;
  size_t j;

  for (i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location* l = p->location[i];
    if (l->id != id)
      continue;
    for (j = 0; j < l->n_line; j++) {
      const char* f = function_name(p, l->line[j]->function_id);
      if (f != NULL && strcmp(f, name) == 0)
        return 1;
    }
  }
  return 0;
}

/* Samples whose stack runs through function `name`. */
static int64_t samples_in(const profile_t* p, const char* name) {
  int64_t n = 0;
  size_t i;
  size_t j;

  for (i = 0; i < p->n_sample; i++)
    for (j = 0; j < p->sample[i]->n_location_id; j++)
      if (location_calls(p, p->sample[i]->location_id[j], name)) {
        n += p->sample[i]->value[0];
        break;
      }
  return n;
}

static int64_t total_samples(const profile_t* p) {
  int64_t n = 0;
  size_t i;

  for (i = 0; i < p->n_sample; i++)
    n += p->sample[i]->value[0];
  return n;
}

/* ---- the burners: 3:1 of CPU time, loop thread : second thread --------- */

static volatile double sink_loop;
static volatile double sink_thread;
/* Read at run time, so that GCC makes no constant-propagated clone (named
 * "cpu_burn_loop.constprop.0") of the burners. */
static volatile int chunk = 200000;
static atomic_llong loop_cpu_ns; /* the loop thread's CPU since it began */
static atomic_int burning;

static int64_t thread_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

__attribute__((noinline)) static void cpu_burn_loop(int n) {
  double x = sink_loop;
  int i;

  for (i = 0; i < n; i++)
    x = x * 1.0000001 + 0.5;
  sink_loop = x;
}

__attribute__((noinline)) static void cpu_burn_thread(int n) {
  double x = sink_thread;
  int i;

  for (i = 0; i < n; i++)
    x = x * 0.9999999 + 0.25;
  sink_thread = x;
}

typedef struct {
  uv_idle_t idle;
  int64_t start;
} loop_burner_t;

static void on_burn(uv_idle_t* idle) {
  loop_burner_t* b = idle->data;

  cpu_burn_loop(chunk);
  atomic_store(&loop_cpu_ns, thread_cpu_ns() - b->start);
}

static void start_loop_burner(uv_loop_t* loop, void* arg) {
  loop_burner_t* b = arg;

  pthread_setname_np(pthread_self(), "cpu-loop");
  b->start = thread_cpu_ns();
  ASSERT_EQ(uv_idle_init(loop, &b->idle), 0);
  b->idle.data = b;
  ASSERT_EQ(uv_idle_start(&b->idle, on_burn), 0);
}

static void stop_loop_burner(uv_loop_t* loop, void* arg) {
  loop_burner_t* b = arg;

  uv_close((uv_handle_t*)&b->idle, NULL);
}

/* Burns only while its CPU time is below a third of the loop thread's. */
static void thread_burner(void* arg) {
  int64_t start = thread_cpu_ns();

  pthread_setname_np(pthread_self(), "cpu-burner");
  while (atomic_load(&burning)) {
    if ((thread_cpu_ns() - start) * 3 < atomic_load(&loop_cpu_ns))
      cpu_burn_thread(chunk);
    else
      sleep_ms(1);
  }
}

/* ---- tests -------------------------------------------------------------- */

TEST_IMPL(cpu_seconds_parse) {
  static const struct {
    const char* query;
    long long seconds;
  } cases[] = {
      {"", 30},
      {"seconds=5", 5},
      {"seconds=%2B7", 7},
      {"seconds=+7", 30}, /* a query's '+' is a space */
      {"seconds=0", 30},
      {"seconds=-5", 30},
      {"seconds=abc", 30},
      {"seconds=", 30},
      {"seconds=5s", 30},
      {"seconds=%205", 30},
      {"seconds=0x10", 30},
      {"seconds=1e3", 30},
      {"seconds=3601", 3601},
      {"seconds=99999999999999999999", 30},
      {"seconds=0000000000000000000000000000000000000012", 12},
      {"debug=1&seconds=2", 2},
      {"seconds=2&seconds=9", 2},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    long long got = uv_pprof__cpu_seconds(cases[i].query);
    if (got != cases[i].seconds)
      fprintf(stderr, "query \"%s\": %lld, expected %lld\n", cases[i].query,
              got, cases[i].seconds);
    ASSERT_EQ(got, cases[i].seconds);
  }
  return 0;
}

/* The index lists `profile` with count 0 and Go's description. */
TEST_IMPL(cpu_index_row) {
  static const char row[] =
      "<tr><td>0</td><td><a href='profile?debug=1'>profile</a></td></tr>\n";
  static const char li[] =
      "<li><div class=profile-name>profile: </div> CPU profile. You can "
      "specify the duration in the seconds GET parameter. After you get the "
      "profile file, use the go tool pprof command to investigate the "
      "profile.</li>\n";
  test_host_t* h = host_start(NULL);
  run_result_t r;

  curl_get(h, "/debug/pprof/", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_CONTAINS(r.out, row);
  ASSERT_CONTAINS(r.out, li);
  run_free(&r);
  host_stop(h);
  return 0;
}

/* Over the bound: 400 with the reason. Anything Go reads as "no value"
 * starts a 30 s window, which must be open and unanswered until the client
 * leaves; the window then closes. */
TEST_IMPL(cpu_bad_seconds) {
  static const char* const defaulted[] = {"seconds=abc",
                                          "seconds=0",
                                          "seconds=-3",
                                          "seconds=",
                                          "seconds=99999999999999999999",
                                          "debug=1"};
  test_host_t* h = host_start(NULL);
  run_result_t r;
  size_t i;
  size_t len;

  curl_get(h, "/debug/pprof/profile?seconds=3601", NULL, &r);
  ASSERT_EQ(http_status(&r), 400);
  ASSERT_STR_EQ(http_header(&r, "X-Go-Pprof"), "1");
  ASSERT_STR_EQ(http_header(&r, "Content-Type"), "text/plain; charset=utf-8");
  ASSERT(http_header(&r, "Content-Disposition") == NULL);
  ASSERT_STR_EQ(http_body(&r, &len),
                "profile duration exceeds the limit of 3600 seconds\n");
  run_free(&r);
  ASSERT_EQ(armed(), 0);

  for (i = 0; i < sizeof(defaulted) / sizeof(defaulted[0]); i++) {
    char path[128];
    int fd;
    snprintf(path, sizeof(path), "/debug/pprof/profile?%s", defaulted[i]);
    fd = raw_get(host_port(h), path);
    wait_armed(1);
    ASSERT(!readable(fd, 200));
    close(fd);
    wait_armed(0);
  }
  host_stop(h);
  return 0;
}

/* Two named functions burn CPU 3:1, one on the loop thread, one on another
 * thread: the profile's samples split 75:25 (within 5 points) by thread and
 * by function. */
TEST_IMPL(cpu_ratio) {
  test_host_t* h = host_start(NULL);
  loop_burner_t lb;
  uv_thread_t burner;
  fetch_t f;
  profile_t* p;
  int64_t loop_n;
  int64_t thread_n;
  double share;
  char path[64];

  atomic_store(&burning, 1);
  host_call(h, start_loop_burner, &lb);
  ASSERT_EQ(uv_thread_create(&burner, thread_burner, NULL), 0);
  snprintf(path, sizeof(path), "/debug/pprof/profile?seconds=%d",
           RATIO_SECONDS);
  fetch_start(&f, url_of(host_base(h), path));
  fetch_wait(&f);
  atomic_store(&burning, 0);
  ASSERT_EQ(uv_thread_join(&burner), 0);
  host_call(h, stop_loop_burner, &lb);

  p = decode(&f.r);
  check_cpu_profile(p);
  ASSERT_GE(p->duration_nanos, RATIO_SECONDS * 1000000000LL);
  loop_n = samples_with_label(p, "thread", "cpu-loop");
  thread_n = samples_with_label(p, "thread", "cpu-burner");
  fprintf(stderr, "by thread: loop %lld, other %lld of %lld\n",
          (long long)loop_n, (long long)thread_n, (long long)total_samples(p));
  ASSERT_GE(loop_n + thread_n, 100);
  share = (double)loop_n / (double)(loop_n + thread_n);
  ASSERT_GT(share, 0.70);
  ASSERT_LT(share, 0.80);

  loop_n = samples_in(p, "cpu_burn_loop");
  thread_n = samples_in(p, "cpu_burn_thread");
  fprintf(stderr, "by function: cpu_burn_loop %lld, cpu_burn_thread %lld\n",
          (long long)loop_n, (long long)thread_n);
  ASSERT_GE(loop_n + thread_n, 100);
  share = (double)loop_n / (double)(loop_n + thread_n);
  ASSERT_GT(share, 0.70);
  ASSERT_LT(share, 0.80);
  /* Whole stacks, through libuv (built without frame pointers) to each
   * thread's own start. */
  ASSERT_GE(samples_in(p, "uv_run"), loop_n * 9 / 10);
  ASSERT_GE(samples_in(p, "thread_burner"), thread_n * 9 / 10);
  perftools__profiles__profile__free_unpacked(p, NULL);
  run_free(&f.r);
  host_stop(h);
  return 0;
}

/* The burner's CPU time against the wall clock, logged after every chunk
 * of work, so that a test knows how much CPU it burnt within a window. */
#define BURN_LOG 400000
static int64_t burn_wall[BURN_LOG];
static int64_t burn_cpu[BURN_LOG];
static atomic_size_t burn_logged;

static int64_t wall_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void* burn_until_stopped(void* arg) {
  pthread_setname_np(pthread_self(), "cpu-burner");
  atomic_store(&burn_logged, 0);
  while (atomic_load(&burning)) {
    size_t n = atomic_load(&burn_logged);
    cpu_burn_thread(chunk / 2);
    if (n < BURN_LOG) {
      burn_wall[n] = wall_ns();
      burn_cpu[n] = thread_cpu_ns();
      atomic_store(&burn_logged, n + 1);
    }
  }
  return NULL;
}

/* The burner's CPU time at wall time t (the last log entry before it). */
static int64_t burn_cpu_at(int64_t t) {
  size_t n = atomic_load(&burn_logged);
  size_t lo = 0;
  size_t hi = n;

  ASSERT_GT(n, 0);
  ASSERT_LE(burn_wall[0], t);
  ASSERT_LE(t, burn_wall[n - 1]);
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (burn_wall[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return burn_cpu[lo];
}

/* The window's burner samples are the burner's CPU time within the window
 * (from time_nanos for duration_nanos) in 10 ms periods: each window has
 * its own samples, not another's. */
static void expect_own_samples(const profile_t* p) {
  int64_t got = samples_with_label(p, "thread", "cpu-burner");
  int64_t cpu = burn_cpu_at(p->time_nanos + p->duration_nanos) -
                burn_cpu_at(p->time_nanos);
  int64_t want = cpu / 10000000;

  fprintf(stderr, "window of %.2f s: burner samples %lld, CPU %.2f s\n",
          (double)p->duration_nanos / 1e9, (long long)got, (double)cpu / 1e9);
  ASSERT_GE(want, 20);
  ASSERT_GE(got, want - want / 10 - 3);
  ASSERT_LE(got, want + want / 10 + 3);
}

/* A 10 s and a 3 s window overlap: both succeed, each as long as asked
 * (and no longer than its request took), each with the samples of its own
 * time. */
TEST_IMPL(cpu_overlap) {
  test_host_t* h = host_start(NULL);
  pthread_t burner;
  fetch_t f10;
  fetch_t f3;
  profile_t* p10;
  profile_t* p3;

  atomic_store(&burning, 1);
  ASSERT_EQ(pthread_create(&burner, NULL, burn_until_stopped, NULL), 0);
  fetch_start(&f10, url_of(host_base(h), "/debug/pprof/profile?seconds=10"));
  wait_armed(1);
  sleep_ms(2000);
  fetch_start(&f3, url_of(host_base(h), "/debug/pprof/profile?seconds=3"));
  fetch_wait(&f3);
  fetch_wait(&f10);
  atomic_store(&burning, 0);
  ASSERT_EQ(pthread_join(burner, NULL), 0);

  p10 = decode(&f10.r);
  p3 = decode(&f3.r);
  check_cpu_profile(p10);
  check_cpu_profile(p3);
  ASSERT_GE(p10->duration_nanos, 10000000000LL);
  ASSERT_LE((uint64_t)p10->duration_nanos, f10.elapsed_ns);
  ASSERT_GE(p3->duration_nanos, 3000000000LL);
  ASSERT_LE((uint64_t)p3->duration_nanos, f3.elapsed_ns);
  expect_own_samples(p10);
  expect_own_samples(p3);
  perftools__profiles__profile__free_unpacked(p10, NULL);
  perftools__profiles__profile__free_unpacked(p3, NULL);
  run_free(&f10.r);
  run_free(&f3.r);
  wait_armed(0);
  host_stop(h);
  return 0;
}

/* A client that leaves a 60 s window closes only its own: a 3 s window
 * beside it completes, and then nothing is left armed, long before the
 * 60 s are up. */
TEST_IMPL(cpu_disconnect) {
  test_host_t* h = host_start(NULL);
  rt_state_t before;
  fetch_t f;
  profile_t* p;
  int fd;

  rt_read(&before);
  fd = raw_get(host_port(h), "/debug/pprof/profile?seconds=60");
  wait_armed(1);
  fetch_start(&f, url_of(host_base(h), "/debug/pprof/profile?seconds=3"));
  sleep_ms(1000);
  close(fd);
  fetch_wait(&f);
  p = decode(&f.r);
  check_cpu_profile(p);
  perftools__profiles__profile__free_unpacked(p, NULL);
  run_free(&f.r);
  wait_armed(0);
  ASSERT_EQ(rt_changed(&before), 0);
  ASSERT_EQ(posix_timers(), 0);
  host_stop(h);
  return 0;
}

/* Nothing is installed before the first request, exactly one real-time
 * signal handler and a timer per thread during the window (while the host's
 * 1 ms timer keeps firing), and after it the old dispositions, no timer and
 * no thread more than before. */
TEST_IMPL(cpu_back_to_zero) {
  test_host_t* h = host_start(NULL);
  rt_state_t before;
  run_result_t r;
  fetch_t f;
  profile_t* p;
  uint64_t ticks;
  int threads;

  /* uv_pprof's worker thread is started by the first request: start it. */
  curl_get(h, "/debug/pprof/threadcreate", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  rt_read(&before);
  threads = thread_count();
  ASSERT_EQ(posix_timers(), 0);
  ASSERT_EQ(armed(), 0);

  fetch_start(&f, url_of(host_base(h), "/debug/pprof/profile?seconds=3"));
  wait_armed(1);
  ASSERT_EQ(rt_changed(&before), 1);
  ASSERT_GE(posix_timers(), 1);
  ASSERT_LE(posix_timers(), thread_count() + 2);
  ticks = host_ticks(h);
  sleep_ms(500);
  ASSERT_GT(host_ticks(h), ticks);
  ticks = host_ticks(h);
  sleep_ms(500);
  ASSERT_GT(host_ticks(h), ticks);
  fetch_wait(&f);
  p = decode(&f.r);
  check_cpu_profile(p);
  perftools__profiles__profile__free_unpacked(p, NULL);
  run_free(&f.r);

  ASSERT_EQ(armed(), 0);
  ASSERT_EQ(rt_changed(&before), 0);
  ASSERT_EQ(posix_timers(), 0);
  ASSERT_EQ(thread_count(), threads);
  host_stop(h);
  return 0;
}

/* UV_PPROF__CPU_MAX_WINDOWS windows at once succeed; one more gets 503
 * with the reason. */
TEST_IMPL(cpu_cap) {
  test_host_t* h = host_start(NULL);
  int fds[UV_PPROF__CPU_MAX_WINDOWS];
  char* answer = NULL;
  size_t len;
  int i;

  for (i = 0; i < UV_PPROF__CPU_MAX_WINDOWS; i++)
    fds[i] = raw_get(host_port(h), "/debug/pprof/profile?seconds=5");
  wait_armed(1);
  /* Until all of them have been routed, an extra request may still get a
   * window: it is closed again (abandoned) and retried. */
  for (i = 0; i < 100 && answer == NULL; i++) {
    int fd = raw_get(host_port(h), "/debug/pprof/profile?seconds=5");
    if (readable(fd, 100))
      answer = tcp_read_all(fd, 5000, &len);
    close(fd);
  }
  ASSERT(answer != NULL);
  ASSERT_STARTS_WITH(answer, "HTTP/1.1 503 ");
  ASSERT_CONTAINS(answer, "X-Go-Pprof: 1\r\n");
  ASSERT_CONTAINS(answer,
                  "\r\n\r\nCould not enable CPU profiling: 8 CPU "
                  "profiles are already running, the most uv_pprof "
                  "takes at once\n");
  free(answer);
  for (i = 0; i < UV_PPROF__CPU_MAX_WINDOWS; i++) {
    answer = tcp_read_all(fds[i], 30000, &len);
    ASSERT_STARTS_WITH(answer, "HTTP/1.1 200 ");
    free(answer);
    close(fds[i]);
  }
  wait_armed(0);
  host_stop(h);
  return 0;
}

/* A child forked during a window inherits nothing armed: the dispositions
 * of before the window, no timer, and it survives burning CPU. */
TEST_IMPL(cpu_fork) {
  test_host_t* h = host_start(NULL);
  rt_state_t before;
  fetch_t f;
  pid_t pid;
  int status;

  rt_read(&before);
  fetch_start(&f, url_of(host_base(h), "/debug/pprof/profile?seconds=2"));
  wait_armed(1);
  pid = fork();
  if (pid == 0) {
    int64_t start = thread_cpu_ns();
    if (rt_changed(&before) != 0)
      _exit(2);
    if (posix_timers() != 0)
      _exit(3);
    while (thread_cpu_ns() - start < 300000000)
      cpu_burn_thread(chunk / 2);
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "child status %d\n", status);
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  fetch_wait(&f);
  ASSERT_EQ(http_status(&f.r), 200);
  run_free(&f.r);
  host_stop(h);
  return 0;
}

/* uv_pprof_stop with a window open: the window closes, the loop closes
 * cleanly (host_stop asserts uv_loop_close() == 0) and nothing stays
 * installed. */
TEST_IMPL(cpu_stop_in_flight) {
  test_host_t* h = host_start(NULL);
  rt_state_t before;
  int fd;

  rt_read(&before);
  fd = raw_get(host_port(h), "/debug/pprof/profile?seconds=60");
  wait_armed(1);
  host_stop(h);
  /* uv_pprof_stop does not wait for the worker: the window's close job,
   * if it was running then, disarms the sampler when it ends. */
  wait_armed(0);
  ASSERT_EQ(rt_changed(&before), 0);
  ASSERT_EQ(posix_timers(), 0);
  close(fd);
  return 0;
}

static atomic_int sigprof_ticks;

static void on_sigprof(int sig) {
  atomic_fetch_add(&sigprof_ticks, 1);
}

/* V8 samples with SIGPROF (an interval timer and its own handler) while
 * --cpu-prof or the inspector profiles: both samplers run side by side and
 * the window leaves V8's handler alone. */
TEST_IMPL(cpu_sigprof_coexists) {
  test_host_t* h = host_start(NULL);
  struct itimerval every_ms = {{0, 1000}, {0, 1000}};
  struct itimerval off = {{0, 0}, {0, 0}};
  struct sigaction sa;
  struct sigaction now;
  pthread_t burner;
  fetch_t f;
  profile_t* p;
  int ticks;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigprof;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGPROF, &sa, NULL), 0);
  ASSERT_EQ(setitimer(ITIMER_PROF, &every_ms, NULL), 0);
  atomic_store(&burning, 1);
  ASSERT_EQ(pthread_create(&burner, NULL, burn_until_stopped, NULL), 0);
  fetch_start(&f, url_of(host_base(h), "/debug/pprof/profile?seconds=2"));
  wait_armed(1);
  ticks = atomic_load(&sigprof_ticks);
  fetch_wait(&f);
  ASSERT_GT(atomic_load(&sigprof_ticks), ticks);
  atomic_store(&burning, 0);
  ASSERT_EQ(pthread_join(burner, NULL), 0);
  ASSERT_EQ(setitimer(ITIMER_PROF, &off, NULL), 0);
  ASSERT_EQ(sigaction(SIGPROF, NULL, &now), 0);
  ASSERT(now.sa_handler == on_sigprof);
  p = decode(&f.r);
  check_cpu_profile(p);
  expect_own_samples(p);
  perftools__profiles__profile__free_unpacked(p, NULL);
  run_free(&f.r);
  signal(SIGPROF, SIG_DFL);
  host_stop(h);
  return 0;
}

/* `go tool pprof` reads a live CPU profile and lists the burning function
 * by name. */
TEST_IMPL(cpu_pprof_top) {
  static char home[128];
  static char tmp[128];
  test_host_t* h = host_start(NULL);
  const char* env[] = {home, tmp, NULL};
  const char* argv[] = {"go",
                        "tool",
                        "pprof",
                        "-top",
                        "-sample_index=samples",
                        url_of(host_base(h), "/debug/pprof/profile?seconds=2"),
                        NULL};
  const char* dir = test_tmpdir();
  pthread_t burner;
  run_result_t r;

  snprintf(home, sizeof(home), "HOME=%s", dir);
  snprintf(tmp, sizeof(tmp), "PPROF_TMPDIR=%s", dir);
  atomic_store(&burning, 1);
  ASSERT_EQ(pthread_create(&burner, NULL, burn_until_stopped, NULL), 0);
  run_cmd(argv, env, 120000, &r);
  atomic_store(&burning, 0);
  ASSERT_EQ(pthread_join(burner, NULL), 0);
  if (r.status != 0)
    fprintf(stderr, "go tool pprof: %d\n%s\n%s\n", r.status, r.out, r.err);
  ASSERT_EQ(r.status, 0);
  ASSERT_CONTAINS(r.out, "Type: samples");
  ASSERT_CONTAINS(r.out, " cpu_burn_thread\n");
  run_free(&r);
  host_stop(h);
  return 0;
}

/* ---- soaks: a stressed host in its own process -------------------------- */

typedef struct {
  child_t child; /* closing its stdin stops the host */
  char base[64];
} cpuhost_t;

static void cpuhost_start(cpuhost_t* c) {
  const char* argv[] = {UV_PPROF_CPUHOST, UV_PPROF_CPUMOD, NULL};
#ifndef __SANITIZE_ADDRESS__
  /* jemalloc profiling every allocation: it unwinds (with libgcc) on every
   * malloc while the sampler interrupts it. ASan replaces malloc itself. */
  const char* env[] = {
      "LD_PRELOAD=" UV_PPROF_JEMALLOC_SO,
      "MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:0", NULL};
#else
  const char* env[] = {"LD_PRELOAD", "MALLOC_CONF", NULL};
#endif
  char line[64];

  child_start(&c->child, "cpuhost", argv, env);
  child_line(&c->child, line, sizeof(line), 60000);
  ASSERT_STARTS_WITH(line, "port=");
  snprintf(c->base, sizeof(c->base), "http://127.0.0.1:%d", atoi(line + 5));
}

/* Stops the host; returns its report line. */
static char* cpuhost_stop(cpuhost_t* c) {
  char* report;
  int status = child_end(&c->child, 120000, &report);

  if (status != 0) {
    fprintf(stderr, "cpuhost: status %d, report: %s\n", status, report);
    child_dump_log(&c->child);
  }
  ASSERT_EQ(status, 0);
  return report;
}

static long report_value(const char* report, const char* key) {
  const char* p = strstr(report, key);

  ASSERT(p != NULL);
  return strtol(p + strlen(key), NULL, 10);
}

/* Windows back to back (and a second one beside each) for `seconds` in
 * all; every answer is a valid CPU profile with samples of the churning
 * threads; the host ends cleanly with nothing left installed. */
static void soak(int seconds) {
  cpuhost_t c;
  int64_t churn = 0;
  char* report;
  int elapsed = 0;

  cpuhost_start(&c);
  while (elapsed < seconds) {
    int window = seconds - elapsed < 5 ? seconds - elapsed : 5;
    char path[64];
    fetch_t f;
    fetch_t g;
    profile_t* p;

    snprintf(path, sizeof(path), "/debug/pprof/profile?seconds=%d", window);
    fetch_start(&f, url_of(c.base, path));
    fetch_start(&g, url_of(c.base, "/debug/pprof/profile?seconds=1"));
    fetch_wait(&g);
    fetch_wait(&f);
    p = decode(&f.r);
    check_cpu_profile(p);
    churn += samples_with_label(p, "thread", "malloc-churn");
    perftools__profiles__profile__free_unpacked(p, NULL);
    p = decode(&g.r);
    check_cpu_profile(p);
    perftools__profiles__profile__free_unpacked(p, NULL);
    run_free(&f.r);
    run_free(&g.r);
    elapsed += window;
  }
  report = cpuhost_stop(&c);
  fprintf(stderr, "malloc-churn samples: %lld; host: %s", (long long)churn,
          report);
  ASSERT_GT(churn, 0);
  ASSERT_GT(report_value(report, "forks="), 0);
  ASSERT_EQ(report_value(report, "fork_failures="), 0);
  ASSERT_GT(report_value(report, "threads="), 0);
  ASSERT_GT(report_value(report, "dlopens="), 0);
  ASSERT_GT(report_value(report, "ticks="), 0);
  ASSERT_EQ(report_value(report, "loop_close="), 0);
  ASSERT_EQ(report_value(report, "clean="), 1);
  free(report);
}

TEST_IMPL(cpu_soak_short) {
  soak(5);
  return 0;
}

TEST_IMPL(cpu_soak_60s) {
  soak(60);
  return 0;
}
