/* Loop stalls and lock contention through their real clients: curl and
 * go tool pprof against uv_pprof_stallhost, whose loops are held on purpose
 * (spinning, asleep, stuck on a mutex) by functions with known names and
 * for known times; and the parts in-process (the /proc reader, the record
 * of stalls and its split, the phase of a stack). No assertion on timing:
 * what the host did is what it reports. Every process started here is
 * stopped by its pid, and dies with the test if an assertion aborts it. */
#include <fcntl.h>
#include <unistd.h>

#include "profile.h"
#include "profile.pb-c.h"
#include "task.h"

/* ---- the host ------------------------------------------------------------ */

typedef struct {
  child_t c;
  int port;
  char loop[32];
} host_t;

/* Starts the stall host in `mode` (plus arg) with UV_PPROF on a free port
 * and `add` ("K=V") in its environment, none of ours; reads its "port=N
 * loop=0x.." line. */
static void start(host_t* h, const char* mode, const char* arg,
                  const char* const add[]) {
  const char* argv[] = {UV_PPROF_STALLHOST, mode, arg, NULL};
  const char* env[16] = {"UV_PPROF*", "LD_PRELOAD", "UV_PPROF=127.0.0.1:0"};
  char line[256];
  size_t n = 3;
  size_t i;

  for (i = 0; add != NULL && add[i] != NULL && n < 15; i++)
    env[n++] = add[i];
  env[n] = NULL;
  child_start(&h->c, mode, argv, env);
  do
    child_line(&h->c, line, sizeof(line), 30000);
  while (strncmp(line, "port=", 5) != 0);
  ASSERT_EQ(sscanf(line, "port=%d loop=%31s", &h->port, h->loop), 2);
}

/* Waits for the line that starts with `prefix`, skipping others. */
static void wait_line(host_t* h, const char* prefix, char* line, size_t size) {
  do
    child_line(&h->c, line, size, 60000);
  while (strncmp(line, prefix, strlen(prefix)) != 0);
}

/* Closes its stdin (it stops uv_pprof and exits) and returns its status;
 * its remaining stdout in *out unless out is NULL. */
static int finish(host_t* h, char** out) {
  return child_end(&h->c, 30000, out);
}

static char* read_file(const char* path, size_t* size) {
  char* text = NULL;
  size_t len = 0;
  size_t cap = 0;
  char chunk[4096];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  ASSERT(fd >= 0);
  while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
    if (len + (size_t)n + 1 > cap) {
      cap = (len + (size_t)n + 1) * 2;
      text = realloc(text, cap);
      ASSERT(text != NULL);
    }
    memcpy(text + len, chunk, (size_t)n);
    len += (size_t)n;
  }
  close(fd);
  if (text == NULL)
    text = calloc(1, 1);
  text[len] = '\0';
  if (size != NULL)
    *size = len;
  return text;
}

/* curl's body of `path` into r->out (status checked: 200). */
static void get(const host_t* h, const char* path, run_result_t* r) {
  char url[256];
  const char* argv[] = {"curl", "-s", "-f", "--max-time", "60", url, NULL};

  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h->port, path);
  run_cmd(argv, NULL, 90000, r);
  if (r->status != 0)
    fprintf(stderr, "curl %s: status %d\n", url, r->status);
  ASSERT_EQ(r->status, 0);
}

/* curl's body of `path` into a file of the test's directory. */
static const char* save(const host_t* h, const char* path, const char* name) {
  static char file[512];
  char url[256];
  const char* argv[] = {"curl", "-s", "-f", "--max-time", "60",
                        "-o",   file, url,  NULL};
  run_result_t r;

  snprintf(file, sizeof(file), "%s/%s", test_tmpdir(), name);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h->port, path);
  run_cmd(argv, NULL, 90000, &r);
  ASSERT_EQ(r.status, 0);
  run_free(&r);
  return file;
}

/* The cum column of `func` in `go tool pprof -top` output (-unit=ms for
 * the delay), or -1 when it is not listed. */
static double top_cum(const char* out, const char* func) {
  const char* line = out;

  while (line != NULL && *line != '\0') {
    const char* eol = strchr(line, '\n');
    size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
    size_t flen = strlen(func);
    if (len > flen && memcmp(line + len - flen, func, flen) == 0 &&
        line[len - flen - 1] == ' ') {
      /* flat flat% sum% cum cum% name: the fourth field */
      char cum[32];
      if (sscanf(line, "%*s %*s %*s %31s", cum) == 1)
        return strtod(cum, NULL);
    }
    line = eol != NULL ? eol + 1 : NULL;
  }
  return -1;
}

/* go tool pprof -top of a saved profile, one sample type (delays in ms). */
static void top(const char* file, const char* index, run_result_t* r) {
  char si[64];
  const char* args[] = {"-top", "-nodecount=200", si, file, NULL, NULL};

  snprintf(si, sizeof(si), "-sample_index=%s", index);
  if (strcmp(index, "delay") == 0) {
    args[3] = "-unit=ms";
    args[4] = file;
  }
  go_pprof(args, r);
}

/* The value of the /metrics sample that starts with `prefix`; -1 if none. */
static double metric(const char* text, const char* prefix) {
  const char* p = strstr(text, prefix);

  return p != NULL ? strtod(p + strlen(prefix), NULL) : -1;
}

static void within(double got, double want, double tolerance,
                   const char* what) {
  if (got < want * (1 - tolerance) || got > want * (1 + tolerance)) {
    fprintf(stderr, "%s: %.1f, expected %.1f within %.0f%%\n", what, got, want,
            tolerance * 100);
    ASSERT(0);
  }
}

/* ---- a host whose callbacks spin 150 ms and 20 ms every second --------------
 */

TEST_IMPL(stall_block_profile) {
  host_t h;
  run_result_t r;
  char line[256];
  char prefix[128];
  const char* file;
  int longs;
  int shorts;
  unsigned long long long_ms;

  start(&h, "spin", "6", NULL);
  wait_line(&h, "done", line, sizeof(line));
  ASSERT_EQ(sscanf(line, "done long=%d short=%d long_ms=%llu", &longs, &shorts,
                   &long_ms),
            3);
  ASSERT_EQ(longs, 6);

  file = save(&h, "/debug/pprof/block", "block.pb.gz");
  top(file, "delay", &r);
  within(top_cum(r.out, "spin_long"), (double)long_ms, 0.2, "spin_long delay");
  ASSERT(top_cum(r.out, "spin_short") < 0);
  run_free(&r);
  top(file, "contentions", &r);
  within(top_cum(r.out, "spin_long"), longs, 0.2, "spin_long contentions");
  ASSERT(top_cum(r.out, "spin_short") < 0);
  run_free(&r);
  {
    const char* args[] = {"-tags", file, NULL};
    go_pprof(args, &r);
    ASSERT_CONTAINS(r.out, "phase: Total");
    ASSERT_CONTAINS(r.out, "timers");
    ASSERT_CONTAINS(r.out, "uv_timer_t");
    run_free(&r);
  }

  /* Go's text: the contention header, the stall's frames and labels. */
  get(&h, "/debug/pprof/block?debug=1", &r);
  ASSERT(strncmp(r.out, "--- contention:\ncycles/second=1000000000\n", 41) ==
         0);
  ASSERT_CONTAINS(r.out, "\tspin_long+0x");
  snprintf(prefix, sizeof(prefix),
           "# labels: {\"loop\":\"%s\", \"phase\":\"timers\", "
           "\"type\":\"uv_timer_t\"}",
           h.loop);
  ASSERT_CONTAINS(r.out, prefix);
  ASSERT(strstr(r.out, "spin_short") == NULL);
  run_free(&r);

  /* /metrics: the stalls, their time, and the iterations' histogram. The
   * counters count every iteration past the threshold: on a loaded
   * machine a 20 ms callback preempted for 30 ms more holds the loop too. */
  get(&h, "/metrics", &r);
  snprintf(prefix, sizeof(prefix), "uv_pprof_loop_stalls_total{loop=\"%s\"} ",
           h.loop);
  ASSERT_GE(metric(r.out, prefix), longs);
  snprintf(prefix, sizeof(prefix),
           "uv_pprof_loop_stall_seconds_total{loop=\"%s\"} ", h.loop);
  ASSERT_GE(metric(r.out, prefix) * 1000, (double)long_ms * 0.8);
  snprintf(prefix, sizeof(prefix),
           "uv_pprof_loop_iteration_busy_seconds_bucket{loop=\"%s\","
           "le=\"0.1\"} ",
           h.loop);
  ASSERT(metric(r.out, prefix) >= shorts);
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);
  return 0;
}

/* ?seconds=N deltas, for block and mutex, read as the person whose service
 * stutters reads them: go tool pprof -top on the URL names the function
 * that held the loop in the window, how long and how often. */
TEST_IMPL(stall_block_delta) {
  host_t h;
  run_result_t r;
  char url[128];
  char saved[512];
  const char* at;
  double ms;

  start(&h, "spin", "4", NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/debug/pprof/block?seconds=3",
           h.port);
  {
    const char* args[] = {"-top", "-unit=ms", url, NULL};
    go_pprof(args, &r);
  }
  ASSERT_CONTAINS(r.out, "Type: delay\n");
  ASSERT_CONTAINS(r.out, "Duration: 3");
  /* 1 to 4 of the host's 150 ms stalls fall in 3 s. */
  ms = top_cum(r.out, "spin_long");
  ASSERT(ms >= 150 * 0.8 && ms <= 4 * 150 * 1.2);
  ASSERT(top_cum(r.out, "spin_short") < 0);
  at = strstr(r.err, "Saved profile in ");
  ASSERT(at != NULL);
  ASSERT_EQ(sscanf(at + strlen("Saved profile in "), "%511s", saved), 1);
  run_free(&r);
  top(saved, "contentions", &r);
  ASSERT(top_cum(r.out, "spin_long") >= 1);
  ASSERT(top_cum(r.out, "spin_long") <= 4);
  run_free(&r);

  snprintf(url, sizeof(url), "http://127.0.0.1:%d/debug/pprof/mutex?seconds=1",
           h.port);
  {
    const char* args[] = {"-top", url, NULL};
    go_pprof(args, &r);
  }
  ASSERT_CONTAINS(r.out, "Type: delay\n");
  ASSERT_CONTAINS(r.out, "Duration: 1");
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);
  return 0;
}

/* A second loop held for 3 s (2 s asleep, 1 s spinning) shows while it is
 * held, served by the first loop, and then as one finished stall split
 * between the two. */
TEST_IMPL(stall_second_loop) {
  host_t h;
  run_result_t r;
  char line[256];
  const char* file;

  start(&h, "two", NULL, NULL);
  wait_line(&h, "holding", line, sizeof(line));
  usleep(700000);
  get(&h, "/debug/pprof/block?debug=1", &r);
  ASSERT_CONTAINS(r.out, "\thold_sleeping+0x");
  ASSERT_CONTAINS(r.out, "\"in_progress\":\"true\"");
  ASSERT(strstr(r.out, h.loop) == NULL); /* the serving loop is not held */
  run_free(&r);
  file = save(&h, "/debug/pprof/block", "held.pb.gz");
  top(file, "delay", &r);
  ASSERT(top_cum(r.out, "hold_loop_b") >= 500);
  run_free(&r);

  wait_line(&h, "released", line, sizeof(line));
  usleep(300000);
  file = save(&h, "/debug/pprof/block", "released.pb.gz");
  top(file, "delay", &r);
  within(top_cum(r.out, "hold_loop_b"), 3000, 0.2, "hold_loop_b delay");
  within(top_cum(r.out, "hold_sleeping"), 2000, 0.25, "hold_sleeping delay");
  within(top_cum(r.out, "hold_spinning"), 1000, 0.5, "hold_spinning delay");
  run_free(&r);
  top(file, "contentions", &r);
  ASSERT_EQ(top_cum(r.out, "hold_loop_b"), 1);
  run_free(&r);
  get(&h, "/debug/pprof/block?debug=1", &r);
  ASSERT(strstr(r.out, "in_progress") == NULL);
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);
  return 0;
}

/* A loop stuck for good: the report comes on stderr after
 * UV_PPROF_STALL_REPORT_S (10 s by default), once, and the other loop
 * still stops. */
TEST_IMPL(stall_report_stuck_loop) {
  host_t h;
  char line[256];
  char* err = NULL;
  char* out;
  int i;

  start(&h, "stuck", NULL, NULL);
  wait_line(&h, "stuck", line, sizeof(line));
  for (i = 0; i < 300; i++) {
    free(err);
    err = read_file(h.c.log, NULL);
    if (strstr(err, "stuck_forever") != NULL)
      break;
    usleep(100000);
  }
  ASSERT_CONTAINS(err, "uv_pprof: loop 0x");
  ASSERT_CONTAINS(err, "has been held by its callbacks for 1");
  ASSERT_CONTAINS(err, "(stall threshold 50 ms), on thread ");
  ASSERT_CONTAINS(err, ", in a uv_timer_t callback (phase timers)");
  ASSERT_CONTAINS(err, "\tstuck_forever (");
  ASSERT_CONTAINS(err, "stallhost.c:");
  ASSERT_CONTAINS(err, "\ton_hold (");
  free(err);
  usleep(1500000);
  err = read_file(h.c.log, NULL);
  ASSERT(strstr(strstr(err, "stuck_forever") + 1, "has been held") == NULL);
  free(err);
  /* uv_pprof_stop of the serving loop, its process then exits. */
  ASSERT_EQ(finish(&h, &out), 0);
  ASSERT_STR_EQ(out, "stopped\n");
  free(out);
  return 0;
}

/* Busy outside uv_run (before it, here): the loop's thread is held, but
 * not by a callback: no stall. The callbacks' stalls that follow are. */
TEST_IMPL(stall_outside_loop) {
  host_t h;
  run_result_t r;
  char line[256];
  char prefix[128];

  start(&h, "outside", "2", NULL);
  wait_line(&h, "done", line, sizeof(line));
  get(&h, "/debug/pprof/block?debug=1", &r);
  ASSERT(strstr(r.out, "outside_work") == NULL);
  ASSERT_CONTAINS(r.out, "\tspin_long+0x");
  run_free(&r);
  get(&h, "/metrics", &r);
  snprintf(prefix, sizeof(prefix), "uv_pprof_loop_stalls_total{loop=\"%s\"} ",
           h.loop);
  ASSERT_EQ(metric(r.out, prefix), 2);
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);
  return 0;
}

/* Bad values of the environment: one line each, the defaults kept. */
TEST_IMPL(stall_bad_env) {
  const char* const env[] = {"UV_PPROF_STALL_MS=fast",
                             "UV_PPROF_STALL_REPORT_S=-1", "UV_PPROF_MUTEX=1e3",
                             NULL};
  const char* const low[] = {"UV_PPROF_STALL_MS=5", NULL};
  const char* const off[] = {"UV_PPROF_STALL_MS=0", NULL};
  host_t h;
  run_result_t r;
  char line[256];
  char prefix[128];
  char* err;

  start(&h, "spin", "1", env);
  wait_line(&h, "done", line, sizeof(line));
  err = read_file(h.c.log, NULL);
  ASSERT_CONTAINS(err,
                  "uv_pprof: UV_PPROF_STALL_MS=\"fast\" is not valid: "
                  "expected milliseconds from 10 to 3600000, or 0 "
                  "(off); keeping 50\n");
  ASSERT_CONTAINS(err,
                  "uv_pprof: UV_PPROF_STALL_REPORT_S=\"-1\" is not "
                  "valid: expected seconds from 1 to 86400, or 0 (off); "
                  "keeping 10\n");
  ASSERT_CONTAINS(err,
                  "uv_pprof: UV_PPROF_MUTEX=\"1e3\" is not valid: "
                  "expected a sampling rate from 1 to 2147483647, or 0 "
                  "(off); keeping 0\n");
  free(err);
  get(&h, "/metrics", &r); /* detection on, at the default threshold */
  snprintf(prefix, sizeof(prefix), "uv_pprof_loop_stalls_total{loop=\"%s\"} ",
           h.loop);
  ASSERT_EQ(metric(r.out, prefix), 1);
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);

  start(&h, "spin", "1", low);
  wait_line(&h, "done", line, sizeof(line));
  err = read_file(h.c.log, NULL);
  ASSERT_CONTAINS(err, "UV_PPROF_STALL_MS=\"5\" is not valid");
  free(err);
  ASSERT_EQ(finish(&h, NULL), 0);

  /* 0: off, nothing measured. */
  start(&h, "spin", "1", off);
  wait_line(&h, "done", line, sizeof(line));
  get(&h, "/metrics", &r);
  ASSERT(strstr(r.out, "uv_pprof_loop_stalls_total") == NULL);
  run_free(&r);
  get(&h, "/debug/pprof/block?debug=1", &r);
  ASSERT_STR_EQ(r.out, "--- contention:\ncycles/second=1000000000\n");
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);
  return 0;
}

/* Bad options: UV_EINVAL and nothing started. */
TEST_IMPL(stall_bad_options) {
  uv_pprof_options_t o;
  uv_loop_t loop;

  ASSERT_EQ(uv_loop_init(&loop), 0);
  uv_pprof_options_init(&o);
  ASSERT_EQ(o.stall_ms, 50);
  ASSERT_EQ(o.stall_report_s, 10);
  ASSERT_EQ(o.mutex_rate, 0);
  o.port = 0;
  o.quiet = 1;
  o.stall_ms = 5;
  ASSERT_EQ(uv_pprof_start_ex(&loop, &o), UV_EINVAL);
  o.stall_ms = 3600001;
  ASSERT_EQ(uv_pprof_start_ex(&loop, &o), UV_EINVAL);
  o.stall_ms = 50;
  o.stall_report_s = 86401;
  ASSERT_EQ(uv_pprof_start_ex(&loop, &o), UV_EINVAL);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  return 0;
}

/* ---- lock contention ---------------------------------------------------- */

/* Two threads contending for a mutex in contend_lock(), the tracker
 * preloaded: the mutex profile names it, in Go's text and for pprof. */
TEST_IMPL(mutex_contention_profile) {
  static const char* const env[] = {
      "LD_PRELOAD=" UV_PPROF_TRACK_SO, "UV_PPROF_MUTEX=1",
      "ASAN_OPTIONS=verify_asan_link_order=0", NULL};
  host_t h;
  run_result_t r;
  char line[256];
  const char* file;

  start(&h, "mutex", "3000", env);
  wait_line(&h, "done", line, sizeof(line));
  file = save(&h, "/debug/pprof/mutex", "mutex.pb.gz");
  top(file, "contentions", &r);
  ASSERT(top_cum(r.out, "contend_lock") >= 1);
  run_free(&r);
  top(file, "delay", &r);
  ASSERT(top_cum(r.out, "contend_lock") > 0);
  run_free(&r);
  get(&h, "/debug/pprof/mutex?debug=1", &r);
  ASSERT(strncmp(r.out,
                 "--- mutex:\ncycles/second=1000000000\nsampling period=1\n",
                 53) == 0);
  ASSERT_CONTAINS(r.out, "\tcontend_lock+0x");
  run_free(&r);
  ASSERT_EQ(finish(&h, NULL), 0);

  /* A delta while they contend, read by go tool pprof from the URL. */
  start(&h, "mutex", "1000000", env);
  {
    char url[128];
    const char* args[] = {"-top", "-sample_index=contentions", url, NULL};
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%d/debug/pprof/mutex?seconds=1", h.port);
    go_pprof(args, &r);
    ASSERT_CONTAINS(r.out, "Duration: 1");
    ASSERT(top_cum(r.out, "contend_lock") >= 1);
    run_free(&r);
  }
  ASSERT_EQ(finish(&h, NULL), 0);

  /* The tracker without UV_PPROF_MUTEX: nothing sampled, and said. */
  start(&h, "mutex", "300", (const char* const[]){env[0], env[2], NULL});
  wait_line(&h, "done", line, sizeof(line));
  get(&h, "/debug/pprof/mutex?debug=1", &r);
  ASSERT_STR_EQ(r.out,
                "--- mutex:\ncycles/second=1000000000\nsampling period=0\n");
  run_free(&r);
  file = save(&h, "/debug/pprof/mutex", "mutex-off.pb.gz");
  {
    const char* args[] = {"-raw", file, NULL};
    go_pprof(args, &r);
    ASSERT_CONTAINS(r.out,
                    "lock contention is not sampled: UV_PPROF_MUTEX "
                    "is unset or 0");
    run_free(&r);
  }
  ASSERT_EQ(finish(&h, NULL), 0);
  return 0;
}

/* ---- in-process parts -------------------------------------------------------
 */

TEST_IMPL(stall_parse_syscall) {
  uv_pprof__syscall_t s;

  ASSERT_EQ(uv_pprof__parse_syscall("running\n", &s), 0);
  ASSERT_EQ(s.state, UV_PPROF__THREAD_RUNNING);
  ASSERT_EQ(uv_pprof__parse_syscall("232 0x3 0x7ffd1000 0x400 0xffffffff 0x0 "
                                    "0x0 0x7ffd0f00 0x7f0012345678\n",
                                    &s),
            0);
  ASSERT_EQ(s.state, UV_PPROF__THREAD_IN_SYSCALL);
  ASSERT_EQ(s.nr, 232);
  ASSERT_EQ(s.args[0], 3);
  ASSERT_EQ(s.args[3], 0xffffffff);
  ASSERT_EQ(s.sp, 0x7ffd0f00);
  ASSERT_EQ(s.pc, 0x7f0012345678);
#if defined(__x86_64__)
  ASSERT(uv_pprof__syscall_waits_on(&s, 3));
  ASSERT(!uv_pprof__syscall_waits_on(&s, 4));
#endif
  ASSERT_EQ(uv_pprof__parse_syscall("-1 0x7ffd0f00 0x401000\n", &s), 0);
  ASSERT_EQ(s.state, UV_PPROF__THREAD_IN_KERNEL);
  ASSERT_EQ(s.pc, 0x401000);
  ASSERT_EQ(uv_pprof__parse_syscall("", &s), UV_EINVAL);
  ASSERT_EQ(uv_pprof__parse_syscall("232 0x3\n", &s), UV_EINVAL);
  ASSERT_EQ(uv_pprof__parse_syscall("232 3 4 5 6 7 8 9 10\n", &s), UV_EINVAL);
  ASSERT_EQ(uv_pprof__parse_syscall("x\n", &s), UV_EINVAL);
  /* This very thread is in the read of its own file; a thread that does
   * not exist is said gone. */
  ASSERT_EQ(uv_pprof__thread_syscall(getpid(), &s), 0);
  ASSERT_EQ(s.state, UV_PPROF__THREAD_IN_SYSCALL);
#if defined(__x86_64__)
  ASSERT_EQ(s.nr, 0);
#endif
  ASSERT_EQ(uv_pprof__thread_syscall(0x7ffffff0, &s), UV_ENOENT);
  return 0;
}

/* One contention per stall, to its heaviest stack; the delay split by
 * weight; a stall in progress has its delay so far. */
TEST_IMPL(stall_record_split) {
  uintptr_t a[3] = {0x1000, 0x2000, 0x3000};
  uintptr_t b[2] = {0x1100, 0x3000};
  uv_pprof__stallrec_snap_t* snap;
  uv_pprof__stall_t* s;
  int64_t now = uv_pprof__sampler_now();
  int64_t total = 0;
  size_t i;

  s = uv_pprof__stallrec_begin(0xabc, now - 1000000000);
  uv_pprof__stallrec_sample(s, a, 3, UV_PPROF__PHASE_TIMERS, UV_TIMER, 30);
  uv_pprof__stallrec_sample(s, b, 2, UV_PPROF__PHASE_POLL, UV_STREAM, 10);
  uv_pprof__stallrec_sample(s, a, 3, UV_PPROF__PHASE_TIMERS, UV_TIMER, 20);
  ASSERT_EQ(uv_pprof__stallrec_count(), 2);
  ASSERT_EQ(uv_pprof__stallrec_snapshot(&snap), 0);
  ASSERT_EQ(snap->count, 2);
  ASSERT_EQ(snap->in_progress, 1);
  for (i = 0; i < snap->count; i++) {
    ASSERT(snap->rows[i].in_progress);
    total += snap->rows[i].delay_ns;
  }
  ASSERT(total >= 1000000000);
  uv_pprof__stallrec_snapshot_free(snap);

  uv_pprof__stallrec_end(s, 600);
  s = uv_pprof__stallrec_begin(0xabc, now);
  uv_pprof__stallrec_end(s, 77); /* never sampled */
  ASSERT_EQ(uv_pprof__stallrec_snapshot(&snap), 0);
  ASSERT_EQ(snap->count, 3);
  ASSERT_EQ(snap->in_progress, 0);
  for (i = 0; i < snap->count; i++) {
    const uv_pprof__stallrec_row_t* r = &snap->rows[i];
    ASSERT(!r->in_progress);
    ASSERT_EQ(r->loop, 0xabc);
    if (r->npcs == 3) {
      ASSERT_EQ(r->contentions, 1);
      ASSERT_EQ(r->delay_ns, 500); /* 50 of 60 */
      ASSERT_EQ(r->phase, UV_PPROF__PHASE_TIMERS);
      ASSERT_EQ(r->type, UV_TIMER);
    } else if (r->npcs == 2) {
      ASSERT_EQ(r->contentions, 0);
      ASSERT_EQ(r->delay_ns, 100);
      ASSERT_EQ(r->type, UV_STREAM);
    } else {
      ASSERT_EQ(r->npcs, 0);
      ASSERT_EQ(r->contentions, 1);
      ASSERT_EQ(r->delay_ns, 77);
    }
  }
  uv_pprof__stallrec_snapshot_free(snap);
  return 0;
}

static uintptr_t taught_ret;

static __attribute__((noinline)) void learn_as_timer(void) {
  taught_ret = (uintptr_t)__builtin_return_address(0);
  uv_pprof__site_note(UV_PPROF__SITE_TIMER, (const void*)taught_ret);
}

/* A stack whose frame returns where a timer callback of uv_pprof's own was
 * called from is in the timers phase; one that does not is unknown. */
TEST_IMPL(stall_site_classify) {
  uintptr_t pcs[4];
  int phase;
  int type;

  learn_as_timer();
  pcs[0] = 0x1234;
  pcs[1] = 0x5678;
  pcs[2] = taught_ret - 1;
  pcs[3] = 0x9abc;
  uv_pprof__site_classify(pcs, 2, &phase, &type);
  ASSERT_EQ(phase, UV_PPROF__PHASE_UNKNOWN);
  ASSERT_EQ(type, UV_UNKNOWN_HANDLE);
  ASSERT(uv_pprof__phase_name(phase) == NULL);
  uv_pprof__site_classify(pcs, 4, &phase, &type);
  ASSERT_EQ(phase, UV_PPROF__PHASE_TIMERS);
  ASSERT_EQ(type, UV_TIMER);
  ASSERT_STR_EQ(uv_pprof__phase_name(phase), "timers");
  /* The leaf is where the thread was, never a call site. */
  pcs[0] = taught_ret - 1;
  uv_pprof__site_classify(pcs, 2, &phase, &type);
  ASSERT_EQ(phase, UV_PPROF__PHASE_UNKNOWN);
  return 0;
}
