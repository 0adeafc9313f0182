/* Tests of the flight recorder (src/recorder.c) in this process, with a
 * one-second timeline: the files it writes, once per crossing; a
 * directory that cannot be written (missing, a file, full); a percentage
 * of a cgroup's memory.max (through the test hook); options without a
 * line. Real writes into real directories; "full" is a real limit on file
 * size (RLIMIT_FSIZE), whose writes fail mid-file with EFBIG as a full disk
 * fails them with ENOSPC. The end-to-end run on the demo, whose files name
 * its leak, is test/history.py. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile.h"
#include "profile.pb-c.h"
#include "task.h"

/* stderr of this process, into a file, while a test looks at it. */
typedef struct {
  char path[256];
  int saved;
  int fd;
} capture_t;

static void capture_start(capture_t* c) {
  snprintf(c->path, sizeof(c->path), "%s/stderr", test_tmpdir());
  c->fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT(c->fd >= 0);
  fflush(stderr);
  c->saved = dup(2);
  ASSERT(dup2(c->fd, 2) == 2);
}

/* What was written so far (static buffer). */
static const char* capture_text(capture_t* c) {
  static char text[8192];
  ssize_t n;

  fflush(stderr);
  n = pread(c->fd, text, sizeof(text) - 1, 0);
  text[n > 0 ? n : 0] = '\0';
  return text;
}

static void capture_end(capture_t* c) {
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  close(c->fd);
}

static size_t count_lines(const char* text, const char* needle) {
  size_t n = 0;
  const char* p = text;

  while ((p = strstr(p, needle)) != NULL) {
    n++;
    p += strlen(needle);
  }
  return n;
}

/* Names in dir (not . and ..), sorted, into names[]; how many. */
static size_t list_dir(const char* dir, char names[][128], size_t max) {
  DIR* d = opendir(dir);
  struct dirent* e;
  size_t n = 0;
  size_t i;
  size_t j;

  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL && n < max) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(names[n++], 128, "%.127s", e->d_name);
  }
  closedir(d);
  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++)
      if (strcmp(names[j], names[i]) < 0) {
        char t[128];
        memcpy(t, names[i], 128);
        memcpy(names[i], names[j], 128);
        memcpy(names[j], t, 128);
      }
  return n;
}

static test_host_t* start(const char* dir, unsigned mb, unsigned percent) {
  uv_pprof_options_t o;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  o.timeline_seconds = 1;
  o.dump_dir = dir;
  o.dump_rss_mb = mb;
  o.dump_rss_percent = percent;
  return host_start(&o);
}

static char* read_file(const char* path, size_t* len) {
  struct stat st;
  char* data;
  int fd = open(path, O_RDONLY);

  ASSERT(fd >= 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  data = malloc((size_t)st.st_size + 1);
  ASSERT(data != NULL);
  ASSERT_EQ(read(fd, data, (size_t)st.st_size), st.st_size);
  data[st.st_size] = '\0';
  close(fd);
  *len = (size_t)st.st_size;
  return data;
}

/* Waits (at most 20 s) until dir holds `want` names. */
static size_t wait_files(const char* dir, size_t want, char names[][128]) {
  size_t n = 0;
  int i;

  for (i = 0; i < 200 && (n = list_dir(dir, names, 16)) < want; i++)
    usleep(100000);
  return n;
}

/* Three files per crossing, complete, named after the time and the PID;
 * the line doubles after each, so the dumps stop once the RSS settles (the
 * first dump itself loads symbol tables, which may cross the next line). */
TEST_IMPL(recorder_writes) {
  static const char* const kinds[] = {"goroutine.pb.gz", "heap.pb.gz",
                                      "timeline.csv"};
  char dir[256];
  char names[16][128];
  char path[512];
  char stamp[3][32];
  test_host_t* h;
  size_t stable = 0;
  size_t n = 0;
  size_t i;
  int waited;

  snprintf(dir, sizeof(dir), "%s", test_tmpdir());
  /* 1 MiB: crossed at the first sample. */
  h = start(dir, 1, 0);
  ASSERT(wait_files(dir, 3, names) >= 3);
  for (waited = 0; waited < 300 && stable < 30; waited++) {
    size_t now = list_dir(dir, names, 16);
    stable = now == n ? stable + 1 : 0;
    n = now;
    usleep(100000);
  }
  ASSERT(stable >= 30); /* 3 s without a new file */
  ASSERT(n % 3 == 0 && n <= 12);
  for (i = 0; i < n; i++) {
    unsigned y, mo, d, hh, mi, s;
    int pid;
    char kind[64];
    size_t len;
    char* data;
    ASSERT_EQ(sscanf(names[i], "uv-pprof-%4u%2u%2uT%2u%2u%2uZ-%d-%63s", &y, &mo,
                     &d, &hh, &mi, &s, &pid, kind),
              8);
    ASSERT_EQ(pid, getpid());
    /* Sorted by name: each crossing's three files, in this order. */
    ASSERT_STR_EQ(kind, kinds[i % 3]);
    snprintf(stamp[i % 3], sizeof(stamp[0]), "%.25s", names[i]);
    if (i % 3 == 2)
      ASSERT(strcmp(stamp[0], stamp[1]) == 0 &&
             strcmp(stamp[1], stamp[2]) == 0);
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    data = read_file(path, &len);
    if (i % 3 < 2) {
      Perftools__Profiles__Profile* p = profile_decode(data, len);
      ASSERT(p->n_sample_type >= 1);
      ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->type),
                    i % 3 == 0 ? "goroutine" : "alloc_objects");
      perftools__profiles__profile__free_unpacked(p, NULL);
    } else {
      ASSERT(strncmp(data,
                     "time,heap_alloc_bytes,heap_inuse_bytes,goroutines,"
                     "rss_mb\n",
                     51) == 0);
    }
    free(data);
  }
  host_stop(h);
  return 0;
}

TEST_IMPL(recorder_unwritable) {
  char file[256];
  char dir[512];
  char names[16][128];
  capture_t c;
  run_result_t r;
  test_host_t* h;
  const char* err;
  int fd;
  int i;

  /* A directory under a regular file: never writable. */
  snprintf(file, sizeof(file), "%s/afile", test_tmpdir());
  fd = open(file, O_WRONLY | O_CREAT, 0644);
  ASSERT(fd >= 0);
  close(fd);
  snprintf(dir, sizeof(dir), "%s/dumps", file);
  capture_start(&c);
  h = start(dir, 1, 0);
  for (i = 0; i < 200 && strstr(capture_text(&c), "could not write") == NULL;
       i++)
    usleep(100000);
  sleep(2); /* more samples: no more lines */
  err = capture_text(&c);
  ASSERT_CONTAINS(err, "is not a writable directory now (not a directory)");
  ASSERT_EQ(count_lines(err, "the flight recorder could not write"), 1);
  ASSERT_CONTAINS(err, "not a directory; the process goes on\n");
  /* Served as ever. */
  curl_get(h, "/debug/pprof/cmdline", NULL, &r);
  ASSERT_EQ(http_status(&r), 200);
  run_free(&r);
  host_stop(h);
  capture_end(&c);

  /* A directory that does not exist: said at start, and at the crossing
   * (the line moves up all the same: one attempt per crossing). */
  snprintf(dir, sizeof(dir), "%s/later", test_tmpdir());
  capture_start(&c);
  h = start(dir, 1, 0);
  for (i = 0; i < 200 && strstr(capture_text(&c), "could not write") == NULL;
       i++)
    usleep(100000);
  ASSERT_CONTAINS(capture_text(&c),
                  "is not a writable directory now (no such file or "
                  "directory)");
  host_stop(h);
  capture_end(&c);
  ASSERT_EQ(list_dir(dir, names, 16), 0);
  return 0;
}

/* A file-size limit fails the writes mid-file: nothing is left under a
 * final name, nor a temporary file; one line says so. */
TEST_IMPL(recorder_full) {
  struct rlimit lim = {256, 256};
  char dir[256];
  char names[16][128];
  capture_t c;
  test_host_t* h;
  int i;

  signal(SIGXFSZ, SIG_IGN); /* EFBIG instead (the worker blocks it too) */
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  snprintf(dir, sizeof(dir), "%s", test_tmpdir());
  capture_start(&c);
  h = start(dir, 1, 0);
  for (i = 0; i < 200 && strstr(capture_text(&c), "could not write") == NULL;
       i++)
    usleep(100000);
  sleep(2);
  ASSERT_EQ(count_lines(capture_text(&c), "could not write"), 1);
  ASSERT_CONTAINS(capture_text(&c), "file too large; the process goes on\n");
  host_stop(h);
  capture_end(&c);
  ASSERT_EQ(list_dir(dir, names, 16), 0);
  return 0;
}

static void write_text(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

TEST_IMPL(recorder_percent) {
  char cgroup[256];
  char path[512];
  char dir[256];
  char names[16][128];
  capture_t c;
  test_host_t* h;

  snprintf(cgroup, sizeof(cgroup), "%s", test_tmpdir());
  snprintf(path, sizeof(path), "%s/memory.max", cgroup);
  uv_pprof__recorder_cgroup_dir = cgroup;

  /* 1 % of 100 MiB: crossed at once. */
  write_text(path, "104857600\n");
  snprintf(dir, sizeof(dir), "%s", test_tmpdir());
  h = start(dir, 0, 1);
  ASSERT_EQ(wait_files(dir, 3, names), 3);
  host_stop(h);

  /* No limit: one line, and the recorder is off. */
  write_text(path, "max\n");
  snprintf(dir, sizeof(dir), "%s", test_tmpdir());
  capture_start(&c);
  h = start(dir, 0, 80);
  sleep(2);
  ASSERT_CONTAINS(capture_text(&c),
                  "uv_pprof: UV_PPROF_DUMP_RSS=80% needs a cgroup memory.max, "
                  "and this process has none: the flight recorder is off");
  host_stop(h);
  capture_end(&c);
  ASSERT_EQ(list_dir(dir, names, 16), 0);

  /* A line, but which: both or neither is refused. */
  capture_start(&c);
  h = start(dir, 0, 0);
  host_stop(h);
  h = start(dir, 512, 50);
  host_stop(h);
  ASSERT_EQ(count_lines(capture_text(&c),
                        "the flight recorder (UV_PPROF_DUMP"
                        "_DIR="),
            2);
  capture_end(&c);
  ASSERT_EQ(list_dir(dir, names, 16), 0);
  uv_pprof__recorder_cgroup_dir = NULL;
  return 0;
}
