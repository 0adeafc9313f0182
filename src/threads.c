/* The process's threads for the threadcreate profile: /proc/self/task and
 * each thread's comm. Threads come and go while we read; one that is gone by
 * the time its name is read is left out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

static int parse_tid(const char* s, int* tid) {
  long v = 0;

  if (*s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9' || v > 99999999)
      return -1;
    v = v * 10 + (*s - '0');
  }
  *tid = (int)v;
  return 0;
}

/* Reads the thread's name into t->name. Returns 0, or -1 when the thread
 * has exited. An unreadable name of a live thread stays empty: a poorer
 * record, not a failure. */
static int read_name(uv_pprof__thread_t* t) {
  char path[64];
  ssize_t n;
  int fd;

  t->name[0] = '\0';
  snprintf(path, sizeof(path), "/proc/self/task/%d/comm", t->tid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT || errno == ESRCH ? -1 : 0;
  do
    n = read(fd, t->name, sizeof(t->name) - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n < 0)
    return errno == ESRCH ? -1 : 0;
  t->name[n] = '\0';
  t->name[strcspn(t->name, "\n")] = '\0';
  return 0;
}

static int compare_tids(const void* a, const void* b) {
  const uv_pprof__thread_t* x = a;
  const uv_pprof__thread_t* y = b;

  return (x->tid > y->tid) - (x->tid < y->tid);
}

/* The array is the caller's, released with free(). */
int uv_pprof__threads_read(uv_pprof__thread_t** threads, size_t* count) {
  uv_pprof__buf_t list;
  struct dirent* ent;
  DIR* dir;
  int rc = 0;

  *threads = NULL;
  *count = 0;
  dir = opendir("/proc/self/task");
  if (dir == NULL)
    return uv_translate_sys_error(errno);
  uv_pprof__buf_init(&list);
  for (;;) {
    uv_pprof__thread_t t;
    errno = 0;
    ent = readdir(dir);
    if (ent == NULL) {
      if (errno != 0)
        rc = uv_translate_sys_error(errno);
      break;
    }
    if (parse_tid(ent->d_name, &t.tid) != 0 || read_name(&t) != 0)
      continue;
    if (uv_pprof__buf_append(&list, &t, sizeof(t)) != 0) {
      rc = UV_ENOMEM;
      break;
    }
  }
  closedir(dir);
  if (rc != 0) {
    uv_pprof__buf_free(&list);
    return rc;
  }
  *count = list.len / sizeof(uv_pprof__thread_t);
  if (*count > 0)
    qsort(list.base, *count, sizeof(uv_pprof__thread_t), compare_tids);
  *threads = (uv_pprof__thread_t*)list.base;
  return 0;
}
