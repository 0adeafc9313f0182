/* The hash functions of uv_pprof's open-addressing tables (builder,
 * symbolizer, handles, tracker). Header-only so that the tracker library,
 * which links nothing of uv_pprof, shares them. Not for adversarial keys:
 * every key comes from the process itself. */
#ifndef UV_PPROF_HASH_H
#define UV_PPROF_HASH_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64's finalizer: cheap, and spreads nearby addresses well. */
static inline uint64_t uv_pprof__hash64(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

/* Folds v into a running hash h. */
static inline uint64_t uv_pprof__hash_combine(uint64_t h, uint64_t v) {
  return uv_pprof__hash64(h ^
                          (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)));
}

/* FNV-1a of s[0..len). */
static inline uint64_t uv_pprof__hash_bytes(const char* s, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i;

  for (i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/* A hash of s[0..len), eight bytes at a time; different seeds give
 * independent hashes. */
static inline uint64_t uv_pprof__hash_mem(const void* s, size_t len,
                                          uint64_t seed) {
  const unsigned char* p = (const unsigned char*)s;
  uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
  size_t i;

  for (i = 0; i + 8 <= len; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, p + i, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  if (i < len) {
    uint64_t w = 0;
    __builtin_memcpy(&w, p + i, len - i);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
  }
  return uv_pprof__hash64(h);
}

#endif /* UV_PPROF_HASH_H */
