/* The test runner: `uv_pprof_tests NAME` runs one test in this process;
 * `uv_pprof_tests` alone runs each test in a child process of its own and
 * prints a summary. A test passes by returning 0; assertions abort. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "task.h"
#include "test-list.h"

#define DECLARE(name) int run_test_##name(void);
TEST_LIST(DECLARE)

typedef struct {
  const char* name;
  int (*fn)(void);
} entry_t;

#define ENTRY(name) {#name, run_test_##name},
static const entry_t tests[] = {TEST_LIST(ENTRY){NULL, NULL}};

static int run_one(const entry_t* t) {
  int rc;
  signal(SIGPIPE, SIG_IGN);
  alarm(240); /* a hung test dies rather than hanging the suite */
  rc = t->fn();
  if (rc == 0)
    printf("ok - %s\n", t->name);
  else
    printf("not ok - %s (returned %d)\n", t->name, rc);
  fflush(stdout);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  const entry_t* t;
  int passed = 0;
  int failed = 0;

  if (argc > 1) {
    for (t = tests; t->name != NULL; t++)
      if (strcmp(t->name, argv[1]) == 0)
        return run_one(t);
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }

  for (t = tests; t->name != NULL; t++) {
    pid_t pid = fork();
    int status;
    if (pid == 0) {
      execl("/proc/self/exe", argv[0], t->name, (char*)NULL);
      _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      printf("not ok - %s\n", t->name);
      failed++;
    } else {
      passed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
