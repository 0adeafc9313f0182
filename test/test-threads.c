/* Unit test of uv_pprof__threads_read (src/threads.c): every thread of this
 * process in tid order, named as /proc says, a helper thread with a known
 * name among them. */
#include <unistd.h>

#include "proc.h"
#include "task.h"

TEST_IMPL(threads_read_names) {
  uv_pprof__thread_t* threads;
  helper_thread_t h;
  char comm[64];
  size_t n;
  size_t i;
  int seen_self = 0;
  int seen_helper = 0;

  read_comm(comm, sizeof(comm));
  helper_thread_start(&h);
  ASSERT_EQ(uv_pprof__threads_read(&threads, &n), 0);
  ASSERT_GE(n, 2);
  for (i = 0; i < n; i++) {
    if (i != 0)
      ASSERT_LT(threads[i - 1].tid, threads[i].tid);
    ASSERT(strchr(threads[i].name, '\n') == NULL);
    if (threads[i].tid == gettid()) {
      ASSERT_STR_EQ(threads[i].name, comm);
      seen_self = 1;
    }
    if (threads[i].tid == h.tid) {
      ASSERT_STR_EQ(threads[i].name, "uvpp-helper");
      seen_helper = 1;
    }
  }
  ASSERT(seen_self && seen_helper);
  free(threads);
  helper_thread_stop(&h);
  return 0;
}
