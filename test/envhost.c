/* uv_pprof_envhost: a minimal host for the process-level tests. It calls
 * uv_pprof_start() on the default loop with whatever environment it was
 * given and prints, one "key=value" per line on stdout, what that changed:
 * the return code, threads, file descriptors, heap bytes in use and signal
 * handlers before and after, the handles uv_walk shows the host (none of
 * uv_pprof's) and those hidden from it (libuv's and uv_pprof's).
 * With --run it then runs the loop (which must return at once: uv_pprof's
 * handles are unref'd), stops uv_pprof and closes the loop. */
#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "uv_pprof.h"

static int count_dir(const char* path) {
  DIR* d = opendir(path);
  struct dirent* e;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n; /* includes the fd of `d` itself when path is /proc/self/fd */
}

static int count_signal_handlers(void) {
  struct sigaction sa;
  int n = 0;
  int sig;

  for (sig = 1; sig < NSIG; sig++)
    if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
      n++;
  return n;
}

static void count_handle(uv_handle_t* h, void* arg) {
  (*(int*)arg)++;
}

static int count_handles(uv_loop_t* loop) {
  int n = 0;
  uv_walk(loop, count_handle, &n);
  return n;
}

/* Hidden handles, counted in uv_print_all_handles()'s listing, which flags
 * them "I" ("[R-I] timer 0x..."). */
static int count_hidden(uv_loop_t* loop) {
  char* text = NULL;
  size_t len = 0;
  FILE* f = open_memstream(&text, &len);
  const char* p;
  int n = 0;

  if (f == NULL)
    return -1;
  uv_print_all_handles(loop, f);
  fclose(f);
  for (p = text; p != NULL && (p = strchr(p, '[')) != NULL; p++)
    n += p[3] == 'I';
  free(text);
  return n;
}

static int port_of(uv_loop_t* loop) {
  struct sockaddr_storage ss;

  if (uv_pprof_address(loop, &ss) != 0)
    return -1;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6*)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in*)&ss)->sin_port);
}

int main(int argc, char** argv) {
  uv_loop_t* loop = uv_default_loop();
  int threads = count_dir("/proc/self/task");
  int fds = count_dir("/proc/self/fd");
  int sigs = count_signal_handlers();
  size_t heap = mallinfo2().uordblks;
  size_t heap_after;
  int rc;

  rc = uv_pprof_start(loop);
  heap_after = mallinfo2().uordblks;
  printf("rc=%d\nname=%s\n", rc, rc == 0 ? "0" : uv_err_name(rc));
  printf("threads_before=%d\nthreads_after=%d\n", threads,
         count_dir("/proc/self/task"));
  printf("fds_before=%d\nfds_after=%d\n", fds, count_dir("/proc/self/fd"));
  printf("heap_before=%zu\nheap_after=%zu\n", heap, heap_after);
  printf("signals_before=%d\nsignals_after=%d\n", sigs,
         count_signal_handlers());
  printf("handles=%d\nhidden=%d\nport=%d\n", count_handles(loop),
         count_hidden(loop), port_of(loop));
  fflush(stdout);

  if (argc > 1 && strcmp(argv[1], "--run") == 0) {
    printf("run=%d\n", uv_run(loop, UV_RUN_DEFAULT));
    printf("stop=%d\n", uv_pprof_stop(loop));
    uv_run(loop, UV_RUN_DEFAULT);
    printf("loop_close=%d\n", uv_loop_close(loop));
  }
  return 0;
}
