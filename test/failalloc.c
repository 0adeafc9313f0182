/* A calloc that fails on request, for the faults a test cannot make real:
 * the test binary is linked with -Wl,--wrap=calloc, so every calloc of
 * uv_pprof's objects (and of the tests) comes here; libuv, libc and the
 * other shared libraries call the real one. A failure is armed for one
 * thread, the next call it makes, and counted. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

#include "task.h"

void* __real_calloc(size_t n, size_t size);
void* __wrap_calloc(size_t n, size_t size);

static _Thread_local int fail_next;
static atomic_int failures;

void* __wrap_calloc(size_t n, size_t size) {
  if (fail_next) {
    fail_next = 0;
    atomic_fetch_add(&failures, 1);
    errno = ENOMEM;
    return NULL;
  }
  return __real_calloc(n, size);
}

void failalloc_calloc_next(void) {
  fail_next = 1;
}

int failalloc_failures(void) {
  return atomic_load(&failures);
}
