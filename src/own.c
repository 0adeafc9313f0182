/* The set of uv_pprof's own handles, so that walks skip them: each is owned
 * right after its init (which also hides it from the host: libuv's
 * UV_HANDLE_INTERNAL) and disowned in its close callback. Open addressing
 * on the handle's address under one mutex; a walk's slice holds it while it
 * asks (one lock per slice, not per handle). */
#include <stdlib.h>

#include "hash.h"
#include "loop.h"

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static uintptr_t* own; /* 0: empty */
static size_t own_mask;
static size_t own_count;

static void init_once(void) {
  if (uv_mutex_init(&mu) != 0)
    abort();
}

static int has(uintptr_t addr) {
  size_t i;

  if (own == NULL)
    return 0;
  for (i = (size_t)uv_pprof__hash64(addr) & own_mask; own[i] != 0;
       i = (i + 1) & own_mask)
    if (own[i] == addr)
      return 1;
  return 0;
}

static void insert(uintptr_t* table, size_t mask, uintptr_t addr) {
  size_t i;

  for (i = (size_t)uv_pprof__hash64(addr) & mask; table[i] != 0;
       i = (i + 1) & mask)
    ;
  table[i] = addr;
}

void uv_pprof__handle_own(const void* handle) {
  uintptr_t addr = (uintptr_t)handle;

  uv_pprof__uvi_set_internal((uv_handle_t*)handle);
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  if ((own_count + 1) * 2 > own_mask + 1) {
    size_t n = own_mask != 0 ? (own_mask + 1) * 2 : 64;
    uintptr_t* table = calloc(n, sizeof(*table));
    size_t i;
    /* Out of memory: the handle shows up in profiles, nothing worse. */
    if (table == NULL) {
      uv_mutex_unlock(&mu);
      return;
    }
    for (i = 0; own != NULL && i <= own_mask; i++)
      if (own[i] != 0)
        insert(table, n - 1, own[i]);
    free(own);
    own = table;
    own_mask = n - 1;
  }
  if (!has(addr)) {
    insert(own, own_mask, addr);
    own_count++;
  }
  uv_mutex_unlock(&mu);
}

void uv_pprof__handle_disown(const void* handle) {
  uintptr_t addr = (uintptr_t)handle;
  size_t i;
  size_t j;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  for (i = own != NULL ? (size_t)uv_pprof__hash64(addr) & own_mask : 0;
       own != NULL && own[i] != 0; i = (i + 1) & own_mask) {
    if (own[i] != addr)
      continue;
    /* Backward-shift deletion: no tombstones. */
    for (j = (i + 1) & own_mask; own[j] != 0; j = (j + 1) & own_mask) {
      size_t home = (size_t)uv_pprof__hash64(own[j]) & own_mask;
      if (((j - home) & own_mask) >= ((j - i) & own_mask)) {
        own[i] = own[j];
        i = j;
      }
    }
    own[i] = 0;
    own_count--;
    break;
  }
  uv_mutex_unlock(&mu);
}

size_t uv_pprof__own_lock(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  return own_count;
}

void uv_pprof__own_unlock(void) {
  uv_mutex_unlock(&mu);
}

void uv_pprof__own_fork_child(void) {
  uv_mutex_init(&mu); /* anew: see uv_pprof__worker_fork_child */
}

int uv_pprof__own_has(const void* handle) {
  return has((uintptr_t)handle);
}
