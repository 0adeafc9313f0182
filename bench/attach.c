/* bench_attach: what preloading libuv_pprof_attach costs a program that
 * calls uv_run(UV_RUN_NOWAIT) in a tight loop, as neovim runs its loop.
 * The same program (test/plainhost.c, `nowait`) runs without the preload,
 * preloaded with UV_PPROF unset, and preloaded and attached (serving on
 * port 0), each configuration once per round, rounds interleaved. Each
 * child also times libuv's own uv_run called directly, in blocks
 * alternating with the calls through its PLT: on a shared machine the
 * difference within one process resolves nanoseconds that the difference
 * between processes (also shown) cannot.
 *
 *   bench_attach [--rounds N] [--calls N]   (defaults 7, 20000000) */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

typedef struct {
  const char* name;
  const char* busy; /* "busy": each call a whole iteration */
  int preload;
  int serve;
  int calls_div; /* fewer calls: an iteration costs ~100 times more */
} config_t;

static const config_t configs[] = {
    {"empty loop: plain", "idle", 0, 0, 1},
    {"empty loop: preloaded, UV_PPROF unset", "idle", 1, 0, 1},
    {"pending timer: plain", "busy", 0, 0, 20},
    {"pending timer: preloaded, UV_PPROF unset", "busy", 1, 0, 20},
    {"pending timer: preloaded and attached", "busy", 1, 1, 20},
};
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))
#define MAX_ROUNDS 64

/* The child's environment: ours without UV_PPROF* and LD_PRELOAD, plus
 * what the configuration adds. */
static char** make_env(const config_t* c) {
  size_t n = 0;
  size_t k = 0;
  char** env;
  char** e;

  for (e = environ; *e != NULL; e++)
    n++;
  env = calloc(n + 4, sizeof(*env));
  if (env == NULL)
    exit(1);
  for (e = environ; *e != NULL; e++)
    if (strncmp(*e, "UV_PPROF", 8) != 0 && strncmp(*e, "LD_PRELOAD=", 11) != 0)
      env[k++] = *e;
  if (c->preload)
    env[k++] = "LD_PRELOAD=" UV_PPROF_ATTACH_LIBRARY;
  if (c->serve) {
    env[k++] = "UV_PPROF=127.0.0.1:0";
    env[k++] = "UV_PPROF_QUIET=1";
  }
  return env;
}

static void run(const config_t* c, long calls, double* via, double* own) {
  char count[32];
  char* argv[] = {UV_PPROF_PLAINHOST, "nowait", count, (char*)c->busy, NULL};
  char** env;
  posix_spawn_file_actions_t fa;
  int fds[2];
  char buf[64] = "";
  pid_t pid;
  ssize_t n;
  int st;

  snprintf(count, sizeof(count), "%ld", calls / c->calls_div);
  env = make_env(c);
  if (pipe(fds) != 0)
    exit(1);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  if (posix_spawn(&pid, argv[0], &fa, NULL, argv, env) != 0) {
    perror("posix_spawn");
    exit(1);
  }
  close(fds[1]);
  n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  waitpid(pid, &st, 0);
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  if (n <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
      sscanf(buf, "%lf %lf", via, own) != 2) {
    fprintf(stderr, "bench_attach: %s failed\n", c->name);
    exit(1);
  }
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a;
  double y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  double ns[NCONFIGS][MAX_ROUNDS];
  double in[NCONFIGS][MAX_ROUNDS]; /* via - own, in one process */
  double med[NCONFIGS];
  double med_in[NCONFIGS];
  long calls = 20000000;
  int rounds = 7;
  size_t c;
  int r;
  int i;

  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--rounds") == 0)
      rounds = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--calls") == 0)
      calls = atol(argv[i + 1]);
  }
  if (rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf(stderr, "bench_attach: --rounds from 1 to %d\n", MAX_ROUNDS);
    return 2;
  }
  for (r = 0; r < rounds; r++) {
    for (c = 0; c < NCONFIGS; c++) {
      double own;
      run(&configs[c], calls, &ns[c][r], &own);
      in[c][r] = ns[c][r] - own;
    }
  }
  for (c = 0; c < NCONFIGS; c++) {
    qsort(ns[c], (size_t)rounds, sizeof(double), cmp);
    qsort(in[c], (size_t)rounds, sizeof(double), cmp);
    med[c] = ns[c][rounds / 2];
    med_in[c] = in[c][rounds / 2];
  }
  printf(
      "uv_run(UV_RUN_NOWAIT): %ld calls on an empty loop, %ld with a "
      "pending timer; median of %d rounds\n",
      calls, calls / 20, rounds);
  printf("%-42s %9s %9s %7s %14s\n", "", "ns/call", "+ns/call", "ratio",
         "+ns vs direct");
  for (c = 0; c < NCONFIGS; c++) {
    const double base = med[c < 2 ? 0 : 2];
    printf("%-42s %9.2f %+9.2f %7.3f %+14.2f\n", configs[c].name, med[c],
           med[c] - base, med[c] / base, med_in[c]);
  }
  printf(
      "(ns/call: the fastest of 20 blocks in each process, median over "
      "the rounds; +ns/call, ratio: against the plain program; +ns vs "
      "direct: against libuv's uv_run called directly in the same "
      "process)\n");
  return 0;
}
