/* uv_pprof_cpuhost: a host under stress for the CPU profiler's soak tests.
 * It serves uv_pprof on port 0 and prints "port=N"; meanwhile threads churn
 * malloc, start and end short threads, dlopen and dlclose a module (argv[1])
 * and fork children that check they inherited nothing armed. When stdin
 * closes it stops everything and prints one report line, "key=value ...",
 * ending with clean=1 when no signal handler or timer of uv_pprof is left. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <uv.h>

#include "uv_pprof.h"

#define MALLOC_THREADS 2
#define LIVE_BLOCKS 4096

static atomic_int stopping;
static atomic_long forks;
static atomic_long fork_failures;
static atomic_long threads_started;
static atomic_long dlopens;
static const char* module_path;
/* Every real-time signal's disposition before uv_pprof started. */
static struct sigaction rt_before[64];
static uint64_t ticks;

static void record_dispositions(struct sigaction* out) {
  int sig;

  for (sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
    sigaction(sig, NULL, &out[sig - SIGRTMIN]);
}

static int same_disposition(const struct sigaction* a,
                            const struct sigaction* b) {
  return a->sa_handler == b->sa_handler &&
         (a->sa_flags & SA_SIGINFO) == (b->sa_flags & SA_SIGINFO);
}

/* Async-signal-safe (it runs in forked children): 1 when a POSIX timer
 * exists, 0 when none, -1 when /proc/self/timers cannot be read. */
static int have_timers(void) {
  char buf[256];
  ssize_t n;
  int fd = open("/proc/self/timers", O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -1;
  n = read(fd, buf, sizeof(buf));
  close(fd);
  return n < 0 ? -1 : n > 0;
}

/* Async-signal-safe: every real-time disposition as before uv_pprof. */
static int dispositions_clean(void) {
  struct sigaction sa;
  int sig;

  for (sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
    if (sigaction(sig, NULL, &sa) != 0 ||
        !same_disposition(&sa, &rt_before[sig - SIGRTMIN]))
      return 0;
  return 1;
}

static double burn(double x, int n) {
  int i;

  for (i = 0; i < n; i++)
    x = x * 1.0000001 + 0.25;
  return x;
}

static void* malloc_churn(void* arg) {
  void** blocks = calloc(LIVE_BLOCKS, sizeof(*blocks));
  unsigned seed = (unsigned)(uintptr_t)arg;

  pthread_setname_np(pthread_self(), "malloc-churn");
  while (blocks != NULL && !atomic_load(&stopping)) {
    size_t i = (size_t)rand_r(&seed) % LIVE_BLOCKS;
    size_t size = (size_t)1 << (rand_r(&seed) % 16);
    free(blocks[i]);
    blocks[i] = malloc(size);
    if (blocks[i] != NULL)
      memset(blocks[i], 1, size < 64 ? size : 64);
  }
  if (blocks != NULL)
    for (size_t i = 0; i < LIVE_BLOCKS; i++)
      free(blocks[i]);
  free(blocks);
  return NULL;
}

static void* short_lived(void* arg) {
  volatile double x = burn(1.0, 20000);
  free(malloc(1000 + (size_t)x % 7));
  return NULL;
}

static void* thread_churn(void* arg) {
  pthread_setname_np(pthread_self(), "thread-churn");
  while (!atomic_load(&stopping)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, NULL) == 0) {
      pthread_setname_np(t, "short-lived");
      pthread_join(t, NULL);
      atomic_fetch_add(&threads_started, 1);
    }
  }
  return NULL;
}

static void* dlopen_churn(void* arg) {
  pthread_setname_np(pthread_self(), "dlopen-churn");
  while (!atomic_load(&stopping)) {
    void* h = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    double (*work)(int);
    if (h == NULL) {
      fprintf(stderr, "dlopen %s: %s\n", module_path, dlerror());
      abort();
    }
    *(void**)&work = dlsym(h, "cpumod_work");
    if (work != NULL)
      work(20000);
    dlclose(h);
    atomic_fetch_add(&dlopens, 1);
  }
  return NULL;
}

/* The child: nothing of the parent's sampling may be armed, and it must
 * survive burning CPU (an inherited timer would kill it). */
static void child(void) {
  struct timespec ts;
  long long start;
  volatile double x = 1.0;

  if (!dispositions_clean())
    _exit(2);
  if (have_timers() != 0)
    _exit(3);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  start = ts.tv_sec * 1000000000LL + ts.tv_nsec;
  do {
    x = burn(x, 10000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  } while (ts.tv_sec * 1000000000LL + ts.tv_nsec - start < 50000000);
  _exit(0);
}

static void* fork_churn(void* arg) {
  pthread_setname_np(pthread_self(), "fork-churn");
  while (!atomic_load(&stopping)) {
    int status;
    pid_t pid = fork();
    if (pid == 0)
      child();
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      fprintf(stderr, "fork child: status %d\n", pid < 0 ? -1 : status);
      atomic_fetch_add(&fork_failures, 1);
    }
    atomic_fetch_add(&forks, 1);
    usleep(20000);
  }
  return NULL;
}

static void on_tick(uv_timer_t* t) {
  ticks++;
}

static uv_timer_t tick;
static uv_pipe_t in;
static pthread_t churners[MALLOC_THREADS + 3];

static void on_alloc(uv_handle_t* h, size_t size, uv_buf_t* buf) {
  static char storage[256];
  *buf = uv_buf_init(storage, sizeof(storage));
}

static void on_stdin(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  size_t i;

  if (nread >= 0)
    return;
  atomic_store(&stopping, 1);
  for (i = 0; i < sizeof(churners) / sizeof(churners[0]); i++)
    pthread_join(churners[i], NULL);
  uv_pprof_stop(s->loop);
  uv_close((uv_handle_t*)&tick, NULL);
  uv_close((uv_handle_t*)&in, NULL);
}

int main(int argc, char** argv) {
  uv_loop_t* loop = uv_default_loop();
  uv_pprof_options_t options;
  struct sockaddr_storage ss;
  void* (*fns[3])(void*) = {thread_churn, dlopen_churn, fork_churn};
  int port;
  int rc;
  int i;

  if (argc != 2) {
    fprintf(stderr, "usage: uv_pprof_cpuhost MODULE\n");
    return 2;
  }
  module_path = argv[1];
  record_dispositions(rt_before);
  uv_pprof_options_init(&options);
  options.port = 0;
  options.quiet = 1;
  rc = uv_pprof_start_ex(loop, &options);
  if (rc != 0 || uv_pprof_address(loop, &ss) != 0) {
    fprintf(stderr, "uv_pprof_start_ex: %s\n", uv_strerror(rc));
    return 1;
  }
  port = ntohs(((struct sockaddr_in*)&ss)->sin_port);
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 1, 1);
  uv_pipe_init(loop, &in, 0);
  if (uv_pipe_open(&in, 0) != 0 ||
      uv_read_start((uv_stream_t*)&in, on_alloc, on_stdin) != 0) {
    fprintf(stderr, "stdin must be a pipe\n");
    return 1;
  }
  for (i = 0; i < MALLOC_THREADS; i++)
    pthread_create(&churners[i], NULL, malloc_churn, (void*)(uintptr_t)(i + 1));
  for (i = 0; i < 3; i++)
    pthread_create(&churners[MALLOC_THREADS + i], NULL, fns[i], NULL);
  printf("port=%d\n", port);
  fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  printf(
      "forks=%ld fork_failures=%ld threads=%ld dlopens=%ld ticks=%llu "
      "loop_close=%d clean=%d\n",
      atomic_load(&forks), atomic_load(&fork_failures),
      atomic_load(&threads_started), atomic_load(&dlopens),
      (unsigned long long)ticks, rc,
      dispositions_clean() && have_timers() == 0);
  return 0;
}
