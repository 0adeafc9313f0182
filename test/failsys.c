/* libuv_pprof_failsys.so, preloaded into a test host: memfd_create fails
 * as the system would make it fail. UV_PPROF_FAILSYS=memfd: no memfd
 * (EMFILE); =enospc: the "memfd" is /dev/full, so that everything written
 * to it (jemalloc's prof.dump) fails with ENOSPC. Used by test-faults.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

__attribute__((visibility("default"))) int memfd_create(const char* name,
                                                        unsigned int flags) {
  const char* mode = getenv("UV_PPROF_FAILSYS");

  (void)name;
  if (mode != NULL && strcmp(mode, "enospc") == 0)
    return open("/dev/full", O_RDWR | ((flags & MFD_CLOEXEC) ? O_CLOEXEC : 0));
  errno = EMFILE;
  return -1;
}
