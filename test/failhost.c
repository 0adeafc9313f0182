/* uv_pprof_failhost: the host of the fault-injection tests (test-faults.c).
 * It defines malloc, calloc, realloc, free, strdup, strndup and
 * posix_memalign, so that every allocation of the process goes through it
 * first; those made by uv_pprof's own code (the caller's address inside
 * libuv_pprof.so) are counted, the Nth one after "arm N" fails, and the
 * blocks they hold are tracked. It starts uv_pprof (UV_PPROF from the
 * environment, no timeline: it would allocate on its own) on its loop, prints
 * "port=N", and obeys one command per line on stdin, answering on stdout (on
 * the loop thread): arm N     count uv_pprof's allocations from 0; fail the Nth
 * (0: none) count     -> count=<uv_pprof's allocations since the last arm>
 *   restart   stop uv_pprof, wait for its worker thread to exit, start it
 *             again -> port=<N>
 *   live      -> live=<blocks uv_pprof's code allocated and has not freed>
 *   nofile N  set the soft RLIMIT_NOFILE to N -> ok
 *   fds       -> fds=<open descriptors>
 *   dump      the blocks of `live` on stderr, with their callers' offsets
 *             in libuv_pprof.so's code (for addr2line) -> ok
 * EOF on stdin stops uv_pprof and exits (0 when the loop closes).
 * With --nproc as root it first limits RLIMIT_NPROC to 1 and becomes
 * nobody, so that no thread can be created (uv_pprof's worker cannot
 * start). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "uv_pprof.h"

#define EXPORT __attribute__((visibility("default")))

extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t n, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void __libc_free(void* p);
extern void* __libc_memalign(size_t align, size_t size);

EXPORT void* malloc(size_t size);
EXPORT void* calloc(size_t n, size_t size);
EXPORT void* realloc(void* p, size_t size);
EXPORT void free(void* p);
EXPORT char* strdup(const char* s);
EXPORT char* strndup(const char* s, size_t n);
EXPORT int posix_memalign(void** out, size_t align, size_t size);

/* ---- uv_pprof's allocations ---------------------------------------------- */

static uintptr_t lib_lo; /* libuv_pprof.so's code */
static uintptr_t lib_hi;
static uintptr_t lib_base; /* where it is loaded: addr2line's offsets */
static atomic_long counted;
static atomic_long fail_at; /* 0: none */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;

/* Open addressing over the blocks uv_pprof's code holds. */
#define LIVE_SLOTS (1u << 20)
static uintptr_t live[LIVE_SLOTS];
static uintptr_t live_caller[LIVE_SLOTS];
static long nlive;

static int ours(const void* caller) {
  uintptr_t a = (uintptr_t)caller;

  return a >= lib_lo && a < lib_hi;
}

static size_t slot(uintptr_t p) {
  return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 44) & (LIVE_SLOTS - 1);
}

static void live_add_at(void* p, const void* caller) {
  size_t i;

  pthread_mutex_lock(&live_mu);
  for (i = slot((uintptr_t)p); live[i] != 0 && live[i] != 1;
       i = (i + 1) & (LIVE_SLOTS - 1))
    ;
  live[i] = (uintptr_t)p;
  live_caller[i] = (uintptr_t)caller;
  nlive++;
  pthread_mutex_unlock(&live_mu);
}

#define live_add(p) live_add_at((p), __builtin_return_address(0))

static void live_remove(void* p) {
  size_t i;

  if (p == NULL)
    return;
  pthread_mutex_lock(&live_mu);
  for (i = slot((uintptr_t)p); live[i] != 0; i = (i + 1) & (LIVE_SLOTS - 1))
    if (live[i] == (uintptr_t)p) {
      live[i] = 1; /* a tombstone */
      nlive--;
      break;
    }
  pthread_mutex_unlock(&live_mu);
}

/* Whether this allocation by uv_pprof's code (called from `caller`) must
 * fail; the failing one is named on stderr, for the test's log. */
static int must_fail_at(const void* caller) {
  long n = atomic_fetch_add(&counted, 1) + 1;
  Dl_info info;

  if (atomic_load(&fail_at) != n)
    return 0;
  if (dladdr(caller, &info) != 0)
    fprintf(
        stderr, "failhost: allocation %ld fails, from %s+0x%lx\n", n,
        info.dli_sname != NULL ? info.dli_sname : "?",
        (unsigned long)((uintptr_t)caller - (uintptr_t)(info.dli_saddr != NULL
                                                            ? info.dli_saddr
                                                            : info.dli_fbase)));
  return 1;
}
#define must_fail() must_fail_at(__builtin_return_address(0))

void* malloc(size_t size) {
  void* p;

  if (ours(__builtin_return_address(0))) {
    if (must_fail()) {
      errno = ENOMEM;
      return NULL;
    }
    p = __libc_malloc(size);
    if (p != NULL)
      live_add(p);
    return p;
  }
  return __libc_malloc(size);
}

void* calloc(size_t n, size_t size) {
  void* p;

  if (ours(__builtin_return_address(0))) {
    if (must_fail()) {
      errno = ENOMEM;
      return NULL;
    }
    p = __libc_calloc(n, size);
    if (p != NULL)
      live_add(p);
    return p;
  }
  return __libc_calloc(n, size);
}

void* realloc(void* old, size_t size) {
  void* p;

  if (ours(__builtin_return_address(0))) {
    if (must_fail()) {
      errno = ENOMEM;
      return NULL;
    }
    p = __libc_realloc(old, size);
    if (p != NULL || size == 0) {
      live_remove(old);
      if (p != NULL)
        live_add(p);
    }
    return p;
  }
  p = __libc_realloc(old, size);
  if (p != old && (p != NULL || size == 0))
    live_remove(old);
  return p;
}

void free(void* p) {
  live_remove(p);
  __libc_free(p);
}

static char* copy(const char* s, size_t n, const void* caller) {
  char* p;

  if (ours(caller)) {
    if (must_fail_at(caller)) {
      errno = ENOMEM;
      return NULL;
    }
    p = __libc_malloc(n + 1);
    if (p != NULL)
      live_add_at(p, caller);
  } else {
    p = __libc_malloc(n + 1);
  }
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

char* strdup(const char* s) {
  return copy(s, strlen(s), __builtin_return_address(0));
}

char* strndup(const char* s, size_t n) {
  return copy(s, strnlen(s, n), __builtin_return_address(0));
}

int posix_memalign(void** out, size_t align, size_t size) {
  void* p;

  if (ours(__builtin_return_address(0)) && must_fail())
    return ENOMEM;
  p = __libc_memalign(align, size);
  if (p == NULL)
    return ENOMEM;
  if (ours(__builtin_return_address(0)))
    live_add(p);
  *out = p;
  return 0;
}

static int find_lib(struct dl_phdr_info* info, size_t size, void* arg) {
  Dl_info* want = arg;
  int i;

  if ((void*)info->dlpi_addr != want->dli_fbase)
    return 0;
  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    if (lib_lo == 0 || lo < lib_lo)
      lib_lo = lo;
    if (lo + ph->p_memsz > lib_hi)
      lib_hi = lo + ph->p_memsz;
  }
  return 1;
}

/* ---- the host ------------------------------------------------------------ */

static uv_loop_t* loop;
static uv_pipe_t input;
static char line[256];
static size_t line_len;

static void say(const char* s) {
  fputs(s, stdout);
  fflush(stdout);
}

static int count_dir(const char* path, const char* comm) {
  DIR* d = opendir(path);
  struct dirent* e;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL) {
    char p[300];
    char name[32] = "";
    FILE* f;
    if (e->d_name[0] == '.')
      continue;
    if (comm == NULL) {
      n++;
      continue;
    }
    snprintf(p, sizeof(p), "%s/%s/comm", path, e->d_name);
    f = fopen(p, "r");
    if (f != NULL) {
      if (fgets(name, sizeof(name), f) == NULL)
        name[0] = '\0';
      fclose(f);
    }
    n += strcmp(name, comm) == 0;
  }
  closedir(d);
  return n;
}

static int start(void) {
  uv_pprof_options_t o;
  struct sockaddr_storage ss;
  char answer[32];
  int rc;

  uv_pprof_options_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.quiet = 1;
  rc = uv_pprof_start_ex(loop, &o);
  if (rc != 0 || uv_pprof_address(loop, &ss) != 0) {
    fprintf(stderr, "failhost: uv_pprof_start_ex: %s\n", uv_strerror(rc));
    return 1;
  }
  snprintf(answer, sizeof(answer), "port=%d\n",
           ntohs(((struct sockaddr_in*)&ss)->sin_port));
  say(answer);
  return 0;
}

static void on_walk_close(uv_handle_t* h, void* arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void quit(void) {
  uv_pprof_stop(loop);
  uv_walk(loop, on_walk_close, NULL);
}

static void run_command(char* cmd) {
  char answer[64];
  long n;

  atomic_store(&fail_at, 0); /* nothing of the host's fails */
  if (sscanf(cmd, "arm %ld", &n) == 1) {
    atomic_store(&counted, 0);
    atomic_store(&fail_at, n);
    say("ok\n");
  } else if (strcmp(cmd, "count") == 0) {
    snprintf(answer, sizeof(answer), "count=%ld\n", atomic_load(&counted));
    say(answer);
  } else if (strcmp(cmd, "live") == 0) {
    pthread_mutex_lock(&live_mu);
    snprintf(answer, sizeof(answer), "live=%ld\n", nlive);
    pthread_mutex_unlock(&live_mu);
    say(answer);
  } else if (strcmp(cmd, "dump") == 0) {
    size_t i;
    pthread_mutex_lock(&live_mu);
    for (i = 0; i < LIVE_SLOTS; i++)
      if (live[i] > 1)
        fprintf(stderr, "live 0x%lx from 0x%lx\n", (unsigned long)live[i],
                (unsigned long)(live_caller[i] - lib_base));
    pthread_mutex_unlock(&live_mu);
    say("ok\n");
  } else if (strcmp(cmd, "restart") == 0) {
    int i;
    uv_pprof_stop(loop);
    /* Let the closed handles finish, and the worker thread exit. */
    uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_NOWAIT);
    for (i = 0; i < 3000 && count_dir("/proc/self/task", "uv_pprof\n") > 0; i++)
      usleep(10000);
    if (start() != 0)
      exit(1);
  } else if (sscanf(cmd, "nofile %ld", &n) == 1) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)n;
    say(setrlimit(RLIMIT_NOFILE, &rl) == 0 ? "ok\n" : "error\n");
  } else if (strcmp(cmd, "fds") == 0) {
    snprintf(answer, sizeof(answer), "fds=%d\n",
             count_dir("/proc/self/fd", NULL) - 1);
    say(answer);
  } else {
    fprintf(stderr, "failhost: unknown command \"%s\"\n", cmd);
    exit(1);
  }
}

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  static char chunk[256];

  (void)h;
  (void)size;
  *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  ssize_t i;

  (void)s;
  if (n < 0) {
    quit();
    return;
  }
  for (i = 0; i < n; i++) {
    if (buf->base[i] != '\n') {
      if (line_len + 1 < sizeof(line))
        line[line_len++] = buf->base[i];
      continue;
    }
    line[line_len] = '\0';
    line_len = 0;
    run_command(line);
  }
}

int main(int argc, char** argv) {
  Dl_info info;

  if (dladdr((void*)&uv_pprof_start_ex, &info) == 0)
    return 1;
  lib_base = (uintptr_t)info.dli_fbase;
  dl_iterate_phdr(find_lib, &info);
  if (lib_hi == 0)
    return 1;
  if (argc > 1 && strcmp(argv[1], "--nproc") == 0) {
    struct rlimit one = {1, 1};
    if (setrlimit(RLIMIT_NPROC, &one) != 0 ||
        (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)))
      return 1;
  }
  loop = uv_default_loop();
  if (start() != 0)
    return 1;
  uv_pipe_init(loop, &input, 0);
  if (uv_pipe_open(&input, 0) != 0 ||
      uv_read_start((uv_stream_t*)&input, on_alloc, on_read) != 0)
    return 1;
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
