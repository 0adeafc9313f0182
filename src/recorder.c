/* The flight recorder: with UV_PPROF_DUMP_DIR and UV_PPROF_DUMP_RSS (MiB,
 * or a percentage of the cgroup's memory.max), each timeline sample checks
 * the RSS; when it crosses the line, the heap profile, the goroutine
 * profile and the timeline's CSV go to files in the directory, named after
 * the time and the PID, and the line moves up (twice as high for MiB;
 * halfway to the limit for a percentage), so that each crossing writes
 * once. Files are written on uv_pprof's worker under a temporary name and
 * renamed when complete: a full or unwritable directory leaves no partial
 * file under a final name, and costs one line on stderr, never the
 * process. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile.h"

#define MIB ((uint64_t)1 << 20)

const char* uv_pprof__recorder_cgroup_dir;

static struct {
  char* dir;      /* NULL: off */
  uint64_t line;  /* RSS that triggers the next dump, bytes */
  uint64_t limit; /* the cgroup's memory.max, for a percentage; else 0 */
  unsigned dumps; /* written so far */
} rec;

/* ---- configuration ------------------------------------------------------- */

/* The directory of this process's cgroup (v2) in /sys/fs/cgroup, into buf.
 * Returns 0 or -1. */
static int cgroup_dir(char* buf, size_t size) {
  char line[4096];
  FILE* f;
  int rc = -1;

  if (uv_pprof__recorder_cgroup_dir != NULL) {
    snprintf(buf, size, "%s", uv_pprof__recorder_cgroup_dir);
    return 0;
  }
  f = fopen("/proc/self/cgroup", "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "0::", 3) == 0) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(buf, size, "/sys/fs/cgroup%s", line + 3);
      rc = 0;
      break;
    }
  }
  fclose(f);
  return rc;
}

/* The cgroup's memory.max in bytes; 0 when there is none ("max", cgroup
 * v1, unreadable). */
static uint64_t memory_max(void) {
  char dir[4200];
  char path[4300];
  char value[64] = "";
  unsigned long long v;
  FILE* f;

  if (cgroup_dir(dir, sizeof(dir)) != 0)
    return 0;
  snprintf(path, sizeof(path), "%s/memory.max", dir);
  f = fopen(path, "r");
  if (f == NULL)
    return 0;
  if (fgets(value, sizeof(value), f) == NULL)
    value[0] = '\0';
  fclose(f);
  if (sscanf(value, "%llu", &v) != 1)
    return 0;
  return (uint64_t)v;
}

int uv_pprof__recorder_configure(const char* dir, unsigned rss_mb,
                                 unsigned percent) {
  const char* why = NULL;
  struct stat st;

  free(rec.dir);
  memset(&rec, 0, sizeof(rec));
  if (dir == NULL || dir[0] == '\0')
    return 0;
  if ((rss_mb == 0) == (percent == 0) || percent > 100) {
    fprintf(stderr,
            "uv_pprof: the flight recorder (UV_PPROF_DUMP_DIR=%s) needs a "
            "line: UV_PPROF_DUMP_RSS=<MiB> or <percent>%% of the cgroup's "
            "memory.max (options.dump_rss_mb or dump_rss_percent); it is "
            "off\n",
            dir);
    return UV_EINVAL;
  }
  if (percent != 0) {
    rec.limit = memory_max();
    if (rec.limit == 0) {
      fprintf(stderr,
              "uv_pprof: UV_PPROF_DUMP_RSS=%u%% needs a cgroup memory.max, "
              "and this process has none: the flight recorder is off (give "
              "MiB instead)\n",
              percent);
      return UV_ENOENT;
    }
    rec.line = rec.limit / 100 * percent;
  } else {
    rec.line = (uint64_t)rss_mb * MIB;
  }
  rec.dir = strdup(dir);
  if (rec.dir == NULL)
    return UV_ENOMEM;
  if (stat(dir, &st) != 0)
    why = uv_strerror(uv_translate_sys_error(errno));
  else if (!S_ISDIR(st.st_mode))
    why = uv_strerror(UV_ENOTDIR);
  else if (access(dir, W_OK) != 0)
    why = uv_strerror(uv_translate_sys_error(errno));
  if (why != NULL)
    fprintf(stderr,
            "uv_pprof: UV_PPROF_DUMP_DIR=%s is not a writable directory now "
            "(%s): the flight recorder will try it when RSS crosses %.0f "
            "MiB\n",
            dir, why, (double)rec.line / (double)MIB);
  return 0;
}

int uv_pprof__recorder_on(void) {
  return rec.dir != NULL;
}

/* ---- writing ------------------------------------------------------------- */

/* Writes data to dir/name through dir/.name.tmp, renamed once complete.
 * Returns 0, or a negative libuv code (the temporary file is gone). */
static int write_file(const char* name, const void* data, size_t len) {
  char tmp[4200];
  char path[4200];
  const char* p = data;
  int fd;
  int err = 0;

  snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", rec.dir, name);
  snprintf(path, sizeof(path), "%s/%s", rec.dir, name);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      err = n < 0 ? uv_translate_sys_error(errno) : UV_ENOSPC;
      break;
    }
    p += n;
    len -= (size_t)n;
  }
  if (close(fd) != 0 && err == 0)
    err = uv_translate_sys_error(errno);
  if (err == 0 && rename(tmp, path) != 0)
    err = uv_translate_sys_error(errno);
  if (err != 0)
    unlink(tmp);
  return err;
}

/* The heap profile, as /debug/pprof/heap answers it. */
static int heap_profile(uv_pprof__buf_t* out) {
  const uv_pprof__profile_t* p = &uv_pprof__profile_heap;
  uv_pprof__builder_t* b;
  void* snap;
  int rc = p->snapshot(&snap);

  if (rc != 0)
    return rc;
  b = uv_pprof__builder_new();
  if (b == NULL) {
    p->snapshot_free(snap);
    return UV_ENOMEM;
  }
  p->types(b);
  p->emit(snap, b, 1);
  rc = uv_pprof__builder_encode(b, out);
  uv_pprof__builder_free(b);
  p->snapshot_free(snap);
  return rc;
}

/* The goroutine profile of the sample's walk. */
static int goroutine_profile(const uv_pprof__handles_snap_t* handles,
                             uv_pprof__buf_t* out) {
  uv_pprof__hgroup_t* groups = NULL;
  uv_pprof__builder_t* b;
  size_t n = 0;
  int rc;

  if (handles == NULL)
    return UV_ECANCELED;
  rc = uv_pprof__hgroups_make(handles, &groups, &n, NULL);
  if (rc != 0)
    return rc;
  b = uv_pprof__builder_new();
  if (b == NULL) {
    free(groups);
    return UV_ENOMEM;
  }
  uv_pprof__profile_goroutine.types(b);
  uv_pprof__goroutine_emit_groups(b, groups, n, 1);
  rc = uv_pprof__builder_encode(b, out);
  uv_pprof__builder_free(b);
  free(groups);
  return rc;
}

/* The next line above rss: twice as high, or halfway to the limit. */
static void raise_line(uint64_t rss) {
  while (rec.line <= rss) {
    if (rec.limit != 0 && rec.line < rec.limit)
      rec.line += (rec.limit - rec.line + 1) / 2;
    else
      rec.line = rec.line != 0 ? rec.line * 2 : MIB;
  }
}

void uv_pprof__recorder_check(const uv_pprof__timeline_sample_t* s) {
  static const char* const kinds[] = {"heap.pb.gz", "goroutine.pb.gz",
                                      "timeline.csv"};
  char stamp[32];
  char name[128];
  time_t sec;
  struct tm tm;
  size_t i;

  if (rec.dir == NULL || s->rss < rec.line)
    return;
  sec = (time_t)(s->time_ns / 1000000000);
  gmtime_r(&sec, &tm);
  strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(kinds); i++) {
    uv_pprof__buf_t data;
    int rc;
    uv_pprof__buf_init(&data);
    if (i == 0)
      rc = heap_profile(&data);
    else if (i == 1)
      rc = goroutine_profile(s->handles, &data);
    else
      rc = uv_pprof__timeline_csv(s->timeline, &data);
    snprintf(name, sizeof(name), "uv-pprof-%s-%d-%s", stamp, (int)getpid(),
             kinds[i]);
    if (rc == 0)
      rc = write_file(name, data.base, data.len);
    uv_pprof__buf_free(&data);
    if (rc != 0) {
      fprintf(stderr,
              "uv_pprof: the flight recorder could not write %s/%s (RSS "
              "%.0f MiB crossed %.0f MiB): %s; the process goes on\n",
              rec.dir, name, (double)s->rss / (double)MIB,
              (double)rec.line / (double)MIB, uv_strerror(rc));
      break;
    }
  }
  if (i == UV_PPROF__ARRAY_SIZE(kinds))
    rec.dumps++;
  raise_line(s->rss);
}
