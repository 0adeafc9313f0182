/* Whether the calling thread works for a server that has stopped, so that
 * long loops deep in the layers below (symbolizing a /symbol request or a
 * profile's locations, rendering 100k handles) give up instead of making a
 * stopped server's thread run on: uv_pprof_stop never waits for it. The
 * worker thread ties itself to its worker's cancel flag (worker.c). A key,
 * not _Thread_local: TLS in a shared object needs the loader's
 * __tls_get_addr, and the Node addon may need nothing beyond glibc. */
#include <stdlib.h>

#include "base.h"

static uv_once_t once = UV_ONCE_INIT;
static uv_key_t key;
static int everywhere; /* atomic: the process is exiting */

static void init_once(void) {
  if (uv_key_create(&key) != 0)
    abort();
}

int uv_pprof__stopping(void) {
  const int* flag;

  uv_once(&once, init_once);
  flag = uv_key_get(&key);
  return flag != NULL && (__atomic_load_n(flag, __ATOMIC_RELAXED) ||
                          __atomic_load_n(&everywhere, __ATOMIC_RELAXED));
}

void uv_pprof__stopping_everywhere(void) {
  __atomic_store_n(&everywhere, 1, __ATOMIC_RELAXED);
}

void uv_pprof__stopping_watch(const int* flag) {
  uv_once(&once, init_once);
  uv_key_set(&key, (void*)flag);
}
