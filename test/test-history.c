/* Unit tests of the history store (src/history.c): its thinning policy, its
 * budget, and snapshots kept and read back. The store runs here on the
 * test's thread with fixtures for the heap dump and the handle groups; the
 * end-to-end tests drive it through a real host's timeline. */
#include <fcntl.h>
#include <unistd.h>

#include "profile.h"
#include "task.h"

#define SEC ((int64_t)1000000000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)
#define T0 ((int64_t)1700006400 * SEC) /* a wall clock, day-aligned */

/* ---- the policy ---------------------------------------------------------- */

/* Keeps times[] as the store does after each sample: thin, then drop. */
static size_t thin_as_taken(int64_t* times, size_t n, int64_t now) {
  uint8_t drop[8192];
  size_t kept = 0;
  size_t i;

  ASSERT(n <= sizeof(drop));
  uv_pprof__history_thin(times, n, now, drop);
  for (i = 0; i < n; i++)
    if (!drop[i])
      times[kept++] = times[i];
  return kept;
}

TEST_IMPL(history_thin_policy) {
  static int64_t times[8192];
  size_t n = 0;
  size_t i;
  int64_t now = 0;
  int64_t t;

  /* Three days of one sample a minute, thinned at every sample. */
  for (t = T0 + 30 * SEC; t <= T0 + 3 * DAY; t += MINUTE) {
    times[n++] = t;
    now = t;
    n = thin_as_taken(times, n, now);
  }
  ASSERT_EQ(times[0], T0 + 30 * SEC); /* the first stays */
  ASSERT_EQ(times[n - 1], now);       /* and the last */
  for (i = 1; i < n; i++)
    ASSERT(times[i] > times[i - 1]);
  /* Every sample of the last hour. */
  for (i = 0; i < 61; i++)
    ASSERT_EQ(times[n - 1 - i], now - (int64_t)i * MINUTE);
  /* One an hour for the last day (the first sample of each hour), one a
   * day before: 60 + 1 + 23 + the first + 2 days. */
  for (i = 1; i + 61 < n; i++) {
    int64_t age = now - times[i];
    if (age <= DAY)
      ASSERT_EQ(times[i] % HOUR, 30 * SEC);
    else
      ASSERT_EQ(times[i] % DAY, 30 * SEC);
  }
  ASSERT(n >= 60 + 23 + 2 && n <= 61 + 24 + 3);
  /* Thinning a thinned history drops nothing more. */
  ASSERT_EQ(thin_as_taken(times, n, now), n);
  return 0;
}

TEST_IMPL(history_cheapest) {
  int64_t even[] = {0, 10 * MINUTE, 20 * MINUTE, 30 * MINUTE, 40 * MINUTE};
  int64_t dense[] = {0,           10 * MINUTE, 20 * MINUTE,
                     21 * MINUTE, 22 * MINUTE, 40 * MINUTE};
  int64_t equal[] = {0, 50 * MINUTE, 60 * MINUTE, 110 * MINUTE, 120 * MINUTE};

  /* Evenly spaced: the oldest that may go (the first never does). */
  ASSERT_EQ(uv_pprof__history_cheapest(even, 5, 40 * MINUTE), 1);
  /* A dense run loses one of its own before anything else. */
  ASSERT_EQ(uv_pprof__history_cheapest(dense, 6, 40 * MINUTE), 3);
  /* Equal gaps: the older one goes, since the older the moment the
   * coarser it may be. */
  ASSERT_EQ(uv_pprof__history_cheapest(equal, 5, 120 * MINUTE), 1);
  return 0;
}

/* ---- fixtures --------------------------------------------------------------
 */

/* A heap dump of `n` stacks, stack i of 8 frames, 1 + i % 7 objects of
 * `size` bytes each, plus `salt` bytes (or, with `noise`, up to 64 KiB of
 * pseudo-random bytes, the same for the same salt), parsed into the stack
 * table. */
static void make_heap_noisy(size_t n, uint64_t size, uint64_t salt, int noise,
                            uv_pprof__je_dump_t* d) {
  uv_pprof__buf_t text;
  uint64_t x = salt * 0x9e3779b97f4a7c15ull + 1;
  size_t i;
  int k;

  uv_pprof__buf_init(&text);
  uv_pprof__buf_printf(&text, "heap_v2/524288\n  t*: 1: 1 [1: 1]\n");
  for (i = 0; i < n; i++) {
    uint64_t objs = 1 + i % 7;
    uv_pprof__buf_printf(&text, "@");
    for (k = 0; k < 8; k++)
      uv_pprof__buf_printf(
          &text, " 0x%llx",
          (unsigned long long)(0x400000 + k * 0x1000 + (k == 0 ? i * 16 : 0)));
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    /* Every third stack freed nothing yet: its cumulative counts are its
     * live ones. */
    uint64_t bytes = objs * size + (noise ? x % 65536 : salt);
    uv_pprof__buf_printf(
        &text, "\n  t*: %llu: %llu [%llu: %llu]\n", (unsigned long long)objs,
        (unsigned long long)bytes,
        (unsigned long long)(i % 3 == 0 ? objs : objs * 2),
        (unsigned long long)(i % 3 == 0 ? bytes : objs * size * 2));
  }
  ASSERT(!text.oom);
  ASSERT_EQ(uv_pprof__je_parse(text.base, text.len, NULL, d), 0);
  ASSERT_EQ(d->nstacks, n);
  uv_pprof__buf_free(&text);
}

static void make_heap(size_t n, uint64_t size, uint64_t salt,
                      uv_pprof__je_dump_t* d) {
  make_heap_noisy(n, size, salt, 0, d);
}

static const uintptr_t creation[] = {0x500010, 0x500020, 0x500030};

static void make_groups(uv_pprof__hgroup_t* g, size_t n, int64_t base) {
  size_t i;

  memset(g, 0, n * sizeof(*g));
  for (i = 0; i < n; i++) {
    g[i].cb = 0x600000 + i * 0x40;
    g[i].loop = 0x7f0000001000;
    g[i].type = UV_TIMER;
    g[i].state = UV_PPROF__HANDLE_ACTIVE | UV_PPROF__HANDLE_REF;
    g[i].age = (int)(i % 5);
    g[i].count = base + (int64_t)i;
    if (i % 2 == 0) {
      g[i].stack = creation;
      g[i].nstack = 3;
    }
  }
}

static uv_pprof__je_state_t heap_on(void) {
  uv_pprof__je_state_t je;

  memset(&je, 0, sizeof(je));
  je.mode = UV_PPROF__HEAP_PROF_ON;
  je.accum = 1;
  je.active = 1;
  je.lg_sample = 19;
  return je;
}

/* ---- kept and read back
 * ------------------------------------------------------ */

TEST_IMPL(history_roundtrip) {
  uv_pprof__je_state_t je = heap_on();
  uv_pprof__hgroup_t groups[6];
  uv_pprof__je_dump_t d;
  uv_pprof__hsnap_t s;
  uv_pprof__history_stats_t st;
  size_t i;
  size_t k;

  ASSERT_EQ(uv_pprof__history_configure(1 << 20), 0);
  ASSERT(uv_pprof__history_on());
  for (i = 0; i < 3; i++) {
    make_heap(100 + i, 4096, i, &d);
    make_groups(groups, 6, (int64_t)i * 10);
    ASSERT_EQ(
        uv_pprof__history_keep(T0 + (int64_t)i * SEC, &je, &d, groups, 6, i),
        0);
    uv_pprof__je_dump_free(&d);
  }
  /* Only the snapshots hold stacks now: the dumps are gone. */
  uv_pprof__stacks_collect();
  ASSERT_EQ(uv_pprof__history_count(), 3);
  for (i = 0; i < 3; i++) {
    ASSERT_EQ(uv_pprof__history_time(i), T0 + (int64_t)i * SEC);
    ASSERT_EQ(uv_pprof__history_get(i, &s), 0);
    ASSERT_EQ(s.time_ns, T0 + (int64_t)i * SEC);
    ASSERT(s.have_heap && s.have_handles);
    ASSERT_EQ(s.nmissing, i);
    ASSERT_EQ(s.heap.period, 524288);
    ASSERT_EQ(s.heap.nstacks, 100 + i);
    for (k = 0; k < s.heap.nstacks; k++) {
      const uv_pprof__je_counts_t* c = &s.heap.stacks[k].counts;
      uintptr_t f[UV_PPROF__STACK_MAX];
      uint64_t objs = 1 + k % 7;
      ASSERT_EQ(c->cur_objs, objs);
      ASSERT_EQ(c->cur_bytes, objs * 4096 + i);
      ASSERT_EQ(c->accum_objs, k % 3 == 0 ? objs : objs * 2);
      ASSERT_EQ(c->accum_bytes, k % 3 == 0 ? objs * 4096 + i : objs * 4096 * 2);
      ASSERT_EQ(
          uv_pprof__stacks_frames(s.heap.stacks[k].id, f, UV_PPROF__STACK_MAX),
          8);
      ASSERT_EQ(f[0], 0x400000 + k * 16);
      ASSERT_EQ(f[7], 0x407000);
    }
    make_groups(groups, 6, (int64_t)i * 10);
    ASSERT_EQ(s.ngroups, 6);
    for (k = 0; k < 6; k++) {
      ASSERT_EQ(s.groups[k].cb, groups[k].cb);
      ASSERT_EQ(s.groups[k].loop, groups[k].loop);
      ASSERT_EQ(s.groups[k].type, groups[k].type);
      ASSERT_EQ(s.groups[k].state, groups[k].state);
      ASSERT_EQ(s.groups[k].age, groups[k].age);
      ASSERT_EQ(s.groups[k].count, groups[k].count);
      ASSERT_EQ(s.groups[k].nstack, groups[k].nstack);
      if (s.groups[k].nstack != 0)
        ASSERT(memcmp(s.groups[k].stack, creation, sizeof(creation)) == 0);
    }
    uv_pprof__hsnap_free(&s);
  }
  ASSERT_EQ(uv_pprof__history_nearest(T0 - HOUR), 0);
  ASSERT_EQ(uv_pprof__history_nearest(T0 + 1 * SEC + SEC / 3), 1);
  ASSERT_EQ(uv_pprof__history_nearest(T0 + 1 * SEC + SEC * 2 / 3), 2);
  ASSERT_EQ(uv_pprof__history_nearest(T0 + DAY), 2);
  uv_pprof__history_stats(&st);
  ASSERT(st.on && st.kept == 3 && st.taken == 3 && st.used <= st.budget);

  /* Without heap profiling, or without a walk, that part is absent. */
  je.mode = UV_PPROF__HEAP_NO_JEMALLOC;
  ASSERT_EQ(uv_pprof__history_keep(T0 + 3 * SEC, &je, NULL, NULL, 0, 0), 0);
  ASSERT_EQ(uv_pprof__history_get(3, &s), 0);
  ASSERT(!s.have_heap && !s.have_handles);
  ASSERT_EQ(s.je.mode, UV_PPROF__HEAP_NO_JEMALLOC);
  uv_pprof__hsnap_free(&s);

  /* Reset lets every stack go. */
  uv_pprof__history_reset();
  ASSERT_EQ(uv_pprof__history_count(), 0);
  uv_pprof__stacks_collect();
  ASSERT_EQ(uv_pprof__stacks_bytes(), 0);
  return 0;
}

/* Two hours of samples, every 10 s, into a small budget: never above it,
 * the newest always kept, the kept ones readable, and nothing leaked when
 * it ends. */
TEST_IMPL(history_budget) {
  uv_pprof__je_state_t je = heap_on();
  uv_pprof__hgroup_t groups[20];
  uv_pprof__history_stats_t st;
  size_t budget = 1 << 20;
  size_t most = 0;
  int64_t t;
  size_t i;

  ASSERT_EQ(uv_pprof__history_configure(budget), 0);
  for (t = T0; t < T0 + 2 * HOUR; t += 10 * SEC) {
    uv_pprof__je_dump_t d;
    /* Fresh sizes every sample: the snapshots do not compress to nothing,
     * and some stacks come and go. */
    make_heap_noisy(2000 + (size_t)(t / SEC % 50), 1000, (uint64_t)t, 1, &d);
    make_groups(groups, 20, t / SEC % 1000);
    ASSERT_EQ(uv_pprof__history_keep(t, &je, &d, groups, 20, 0), 0);
    uv_pprof__je_dump_free(&d);
    uv_pprof__history_stats(&st);
    ASSERT(st.on);
    ASSERT(st.used <= budget);
    ASSERT_EQ(uv_pprof__history_time(uv_pprof__history_count() - 1), t);
    if (st.kept > most)
      most = st.kept;
  }
  /* The budget, not the policy, was the limit (the last hour alone is 360
   * samples), and what is kept spans the run. */
  ASSERT(most < 360);
  ASSERT(uv_pprof__history_time(0) < T0 + HOUR);
  for (i = 0; i < uv_pprof__history_count(); i++) {
    uv_pprof__hsnap_t s;
    ASSERT_EQ(uv_pprof__history_get(i, &s), 0);
    ASSERT(s.heap.nstacks >= 2000 && s.ngroups == 20);
    uv_pprof__hsnap_free(&s);
  }
  uv_pprof__history_reset();
  uv_pprof__stacks_collect();
  ASSERT_EQ(uv_pprof__stacks_bytes(), 0);
  return 0;
}

/* A budget below the minimum is refused; one that cannot hold the first
 * snapshot turns history off with one line on stderr. */
TEST_IMPL(history_too_small) {
  uv_pprof__je_state_t je = heap_on();
  uv_pprof__je_dump_t d;
  char path[256];
  char err[512];
  int saved;
  int fd;
  ssize_t n;

  ASSERT_EQ(uv_pprof__history_configure(100 * 1024), UV_EINVAL);
  ASSERT(!uv_pprof__history_on());
  ASSERT_EQ(uv_pprof__history_configure(UV_PPROF__HISTORY_MIN), 0);
  snprintf(path, sizeof(path), "%s/stderr", test_tmpdir());
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT(fd >= 0);
  fflush(stderr);
  saved = dup(2);
  dup2(fd, 2);
  make_heap_noisy(20000, 65536, 0, 1, &d);
  ASSERT_EQ(uv_pprof__history_keep(T0, &je, &d, NULL, 0, 0), UV_ENOSPC);
  uv_pprof__je_dump_free(&d);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, err, sizeof(err) - 1, 0);
  close(fd);
  ASSERT(n > 0);
  err[n] = '\0';
  ASSERT_CONTAINS(err,
                  "uv_pprof: UV_PPROF_HISTORY_MB=0.25 is too small for one "
                  "snapshot of this process (");
  ASSERT_CONTAINS(err, "MiB with the stack table): history is off\n");
  ASSERT(strchr(err, '\n') == err + n - 1); /* one line */
  ASSERT(!uv_pprof__history_on());
  ASSERT_EQ(uv_pprof__history_count(), 0);
  /* Later samples keep nothing and say nothing. */
  make_heap(10, 64, 0, &d);
  ASSERT_EQ(uv_pprof__history_keep(T0 + SEC, &je, &d, NULL, 0, 0), 0);
  ASSERT_EQ(uv_pprof__history_count(), 0);
  uv_pprof__je_dump_free(&d);
  uv_pprof__stacks_collect();
  ASSERT_EQ(uv_pprof__stacks_bytes(), 0);
  return 0;
}

/* ---- integration: the endpoints in this process ----------------------------
 */

static test_host_t* start_history(unsigned history_kb) {
  uv_pprof_options_t o;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.timeline_seconds = 1;
  o.history_kb = history_kb;
  return host_start(&o);
}

/* GETs path and asserts its status and, for an error, Go's error form and
 * the text it must contain. */
static void expect_answer(test_host_t* h, const char* path, int status,
                          const char* text) {
  run_result_t r;
  size_t len;

  curl_get(h, path, NULL, &r);
  if (http_status(&r) != status) {
    fprintf(stderr, "%s: %d, expected %d:\n%s\n", path, http_status(&r), status,
            r.out);
    ASSERT(0);
  }
  if (status >= 400)
    ASSERT_STR_EQ(http_header(&r, "X-Go-Pprof"), "1");
  if (text != NULL && strstr(http_body(&r, &len), text) == NULL) {
    fprintf(stderr, "%s: \"%s\" not in:\n%s\n", path, text, r.out);
    ASSERT(0);
  }
  run_free(&r);
}

/* Values of base=, at= and window= that cannot be answered: 400 with the
 * reason; history off: 404 saying how to turn it on. */
TEST_IMPL(history_bad_input) {
  static const struct {
    const char* path;
    const char* text;
  } bad[] = {
      {"/debug/pprof/goroutine?base=", "must be a duration back from now"},
      {"/debug/pprof/goroutine?base=abc", "must be a duration back from now"},
      {"/debug/pprof/goroutine?base=30", "must be a duration back from now"},
      {"/debug/pprof/goroutine?base=5x", "must be a duration back from now"},
      {"/debug/pprof/heap?base=-30s", "-30s is in the future"},
      {"/debug/pprof/heap?base=0s", "must be a positive duration"},
      {"/debug/pprof/heap?base=2999-01-01T00:00:00Z", "is in the future"},
      {"/debug/pprof/heap?base=2026-13-01T00:00:00Z", "an RFC 3339 time"},
      {"/debug/pprof/goroutine?base=3650d", "is older than the process"},
      {"/debug/pprof/goroutine?base=1999-01-01T00:00:00%2B00:00",
       "is older than the process"},
      {"/debug/pprof/threadcreate?base=5s",
       "\"base\" parameter is not supported for this profile type"},
      {"/debug/pprof/goroutine?base=5s&seconds=2",
       "base and seconds params are incompatible"},
      {"/debug/pprof/goroutine?at=5s", "\"at\" needs \"base\""},
      {"/debug/pprof/goroutine?base=1s&at=start",
       "its snapshot must be later than base's"},
      {"/debug/pprof/goroutine?base=start&at=-1s", "is in the future"},
      {"/debug/pprof/leaks?window=start", "invalid value for \"window\""},
      {"/debug/pprof/leaks?window=-1h", "is in the future"},
      {"/debug/pprof/leaks?window=zzz", "invalid value for \"window\""},
      {"/debug/pprof/leaks?format=pdf", "must be text or html"},
  };
  test_host_t* h;
  run_result_t r;
  char path[128];
  char note[64];
  uint64_t began = uv_hrtime();
  size_t len;
  size_t i;
  int tries;

  /* The history starts 3 s after the process: a moment in between is
   * older than the history, not than the process. */
  sleep(3);
  h = start_history(8192);
  for (tries = 0; tries < 100; tries++) {
    curl_get(h, "/debug/pprof/goroutine?base=1s&debug=1", NULL, &r);
    if (http_status(&r) == 200)
      break;
    run_free(&r);
    usleep(100000);
  }
  ASSERT(tries < 100);
  run_free(&r);
  sleep(2);
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(bad); i++)
    expect_answer(h, bad[i].path, 400, bad[i].text);

  /* Older than the history (1.5 s after this test began): the oldest,
   * and it says so. */
  snprintf(note, sizeof(note), "%.1fs",
           (double)(uv_hrtime() - began) / 1e9 - 1.5);
  snprintf(path, sizeof(path), "/debug/pprof/goroutine?base=%s&debug=1", note);
  curl_get(h, path, NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_CONTAINS(http_header(&r, "X-Uv-Pprof-Base"),
                  "; older than asked: the history starts here");
  ASSERT_CONTAINS(http_body(&r, &len), "\n# base=");
  ASSERT_CONTAINS(http_body(&r, &len),
                  " is older than the history, which starts at ");
  ASSERT(strncmp(http_body(&r, &len), "goroutine profile: total ", 25) == 0);
  run_free(&r);
  expect_answer(h, "/debug/pprof/goroutine?base=start", 200, NULL);
  /* Too few snapshots for a trend: said, not guessed. */
  expect_answer(h, "/debug/pprof/leaks?window=2s", 200,
                "the trend test needs at least 8");
  expect_answer(h, "/debug/pprof/leaks?window=1h", 200,
                "window=1h is longer than the history: all of it was used");
  host_stop(h);

  /* History off: 404 and how to turn it on. */
  h = start_history(0);
  expect_answer(h, "/debug/pprof/heap?base=5s", 404,
                "the history is off: UV_PPROF_HISTORY_MB is 0");
  expect_answer(h, "/debug/pprof/leaks", 404, "UV_PPROF_HISTORY_MB is 0");
  host_stop(h);
  h = host_start(NULL);
  expect_answer(h, "/debug/pprof/goroutine?base=5s", 404,
                "start the process with UV_PPROF_TIMELINE=<seconds>");
  host_stop(h);
  return 0;
}

/* UV_PPROF_HISTORY_MB: garbage refuses to start, with one line; a budget
 * below one snapshot's minimum starts without history, saying so. */
TEST_IMPL(history_env) {
  static const char* const bad[] = {"x", "-1", "1.2345", "4097", "8MB", "."};
  const char* argv[] = {UV_PPROF_ENVHOST, NULL};
  run_result_t r;
  size_t i;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(bad); i++) {
    char var[64];
    const char* env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=1", var,
                         NULL};
    snprintf(var, sizeof(var), "UV_PPROF_HISTORY_MB=%s", bad[i]);
    run_cmd(argv, env, 30000, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT_CONTAINS(r.out, "rc=-22\n");
    ASSERT_CONTAINS(r.err, "is not valid: expected MiB from 0 to 4096");
    run_free(&r);
  }
  {
    const char* env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=1",
                         "UV_PPROF_HISTORY_MB=0.1", NULL};
    run_cmd(argv, env, 30000, &r);
    ASSERT_EQ(r.status, 0);
    ASSERT_CONTAINS(r.out, "rc=0\n");
    ASSERT_CONTAINS(r.err,
                    "uv_pprof: a history budget of 0.100 MiB cannot hold one "
                    "snapshot (at least 0.25 MiB): history is off.");
    run_free(&r);
  }
  {
    const char* env[] = {"UV_PPROF=127.0.0.1:0", "UV_PPROF_TIMELINE=1",
                         "UV_PPROF_DUMP_DIR=/tmp", "UV_PPROF_DUMP_RSS=lots",
                         NULL};
    run_cmd(argv, env, 30000, &r);
    ASSERT_CONTAINS(r.out, "rc=-22\n");
    ASSERT_CONTAINS(r.err, "UV_PPROF_DUMP_RSS=\"lots\" is not valid");
    run_free(&r);
  }
  return 0;
}

/* The timeline's chart in headless Chromium: samples I and J picked (the
 * "#pick=I,J" fragment does what two clicks do, without opening the page)
 * show the links to their differences, and those links answer. */
TEST_IMPL(history_chart_picks) {
  char url[256];
  char profile[300];
  const char* argv[] = {"chromium",
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        profile,
                        "--dump-dom",
                        url,
                        NULL};
  test_host_t* h = start_history(8192);
  run_result_t r;
  const char* href;
  char link[512];
  size_t n;
  int tries;

  /* Four samples. */
  for (tries = 0; tries < 100; tries++) {
    const char* p;
    size_t len;
    int lines = 0;
    curl_get(h, "/debug/pprof/timeline", NULL, &r);
    for (p = http_body(&r, &len); (p = strchr(p, '\n')) != NULL; p++)
      lines++;
    run_free(&r);
    if (lines >= 5)
      break;
    usleep(200000);
  }
  ASSERT(tries < 100);
  snprintf(url, sizeof(url), "%s/debug/pprof/timeline?format=svg#pick=1,3",
           host_base(h));
  snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium",
           test_tmpdir());
  run_cmd(argv, NULL, 120000, &r);
  if (r.status != 0)
    fprintf(stderr, "chromium (%d): %s\n", r.status, r.err);
  ASSERT_EQ(r.status, 0);
  ASSERT_CONTAINS(r.out, "<g id=\"links\"><a href=\"heap?base=");
  ASSERT_CONTAINS(r.out, ">heap difference</text></a>");
  /* The handles' link, as Chromium built it: base and at of samples 1
   * and 3 (3 is not the last sample: an at). */
  href = strstr(r.out, "<a href=\"goroutine?base=");
  ASSERT(href != NULL);
  href += strlen("<a href=\"");
  n = strcspn(href, "\"");
  ASSERT(n < 300);
  snprintf(link, sizeof(link), "/debug/pprof/%.*s", (int)n, href);
  run_free(&r);
  /* The DOM writes & as &amp;. */
  {
    char* amp;
    while ((amp = strstr(link, "&amp;")) != NULL)
      memmove(amp + 1, amp + 5, strlen(amp + 5) + 1);
  }
  ASSERT_CONTAINS(link, "&at=");
  ASSERT_CONTAINS(link, "&debug=1");
  expect_answer(h, link, 200, "\n# at=");
  expect_answer(h, link, 200, "goroutine profile: total ");
  host_stop(h);
  return 0;
}
