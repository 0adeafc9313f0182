/* Loads libdw on first use (see dw.h for why it is not linked). The handle
 * is never closed: libdw keeps state (its Dwfl sessions) that outlives any
 * one profile. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "dw.h"
#include "proc.h"

uv_pprof__dw_t uv_pprof__dw;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int status = UV_ENOSYS;

static void load(void) {
  void* lib = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);

  if (lib == NULL) {
    fprintf(stderr, "uv_pprof: profiles stay unsymbolized: %s\n", dlerror());
    return;
  }
#define UV_PPROF__DW_RESOLVE(name)                                          \
  if ((uv_pprof__dw.name = (__typeof__(name)*)dlsym(lib, #name)) == NULL) { \
    fprintf(stderr,                                                         \
            "uv_pprof: profiles stay unsymbolized: libdw has no "           \
            "%s\n",                                                         \
            #name);                                                         \
    return;                                                                 \
  }
  UV_PPROF__DW_FUNCTIONS(UV_PPROF__DW_RESOLVE)
#undef UV_PPROF__DW_RESOLVE
  status = 0;
}

int uv_pprof__dw_load(void) {
  pthread_once(&once, load);
  return status;
}
