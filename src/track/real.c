/* The libuv function an interposed call was meant for (real.h): resolved
 * once per call site through the caller's own object, and kept in a small
 * lock-free table keyed by return address. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

#include "real.h"

#define SLOTS 1024 /* call sites remembered (2^10: the hash's 10 bits) */
#define BUSY ((uintptr_t)1)

typedef struct {
  uintptr_t ra; /* 0 empty, BUSY while its writer fills fn */
  void* fn;
} site_t;

static site_t sites[SLOTS];

/* Every library built with this file exports the marker: a caller whose
 * scope has it is an interposer of ours (calling the next one in the chain)
 * or the executable, whose scope is the global one: for both the right
 * definition is the next after us. */
__attribute__((visibility("default"))) const int uv_pprof_interposer_v1 = 1;

static void* resolve(const char* name, void* self, void* ra) {
  Dl_info info;
  void* fn = NULL;

  if (dladdr(ra, &info) != 0 && info.dli_fname != NULL &&
      info.dli_fname[0] != '\0') {
    void* h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    /* The reference is kept: see real.h. */
    if (h != NULL && dlsym(h, "uv_pprof_interposer_v1") == NULL)
      fn = dlsym(h, name);
  }
  if (fn == NULL)
    fn = dlsym(RTLD_NEXT, name);
  if (fn == self)
    fn = NULL;
  return fn;
}

void* uv_pprof__real(const char* name, void* self, void* ra) {
  /* Fibonacci hashing: one multiply, and call sites spread well. */
  size_t i = (size_t)(((uint64_t)(uintptr_t)ra * 0x9e3779b97f4a7c15ull) >> 54);
  size_t probes;
  void* fn;

  for (probes = 0; probes < 8; probes++, i = (i + 1) & (SLOTS - 1)) {
    uintptr_t key = __atomic_load_n(&sites[i].ra, __ATOMIC_ACQUIRE);
    if (key == (uintptr_t)ra)
      return sites[i].fn;
    if (key == 0)
      break;
  }
  fn = resolve(name, self, ra);
  if (fn != NULL && probes < 8) {
    uintptr_t empty = 0;
    if (__atomic_compare_exchange_n(&sites[i].ra, &empty, BUSY, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      sites[i].fn = fn;
      __atomic_store_n(&sites[i].ra, (uintptr_t)ra, __ATOMIC_RELEASE);
    }
  }
  return fn;
}

void* uv_pprof__object_of(void* fn) {
  Dl_info info;

  return fn != NULL && dladdr(fn, &info) != 0 ? info.dli_fbase : NULL;
}
