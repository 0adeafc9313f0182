/* The heap's stack table. A stack is a run of 4-byte frame numbers in one
 * pool, each naming an address of a deduplicated address table; its id is
 * its entry's and stays the same while anyone holds it. Walking a stack is
 * then a sequential read, and what a caller derives from an address (a
 * profile's location) is cached per address number. A second table maps
 * 96-bit keys (jemalloc.c hashes each raw line of a dump) to ids, so that a
 * stack seen before costs a hash instead of a parse. Collection frees the
 * stacks nobody holds and compacts the pool and the addresses. All of it is
 * mapped memory: uv_pprof's own, never in the host's heap or heap profile.
 * Worker thread only. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "proc.h"

#define FREE UINT32_MAX /* refs of an entry on the free list */

typedef struct {
  uint32_t first; /* its frames: pool[first .. first + n) */
  uint32_t n;
  uint32_t refs; /* holds; FREE: unused, `first` links the free list */
} entry_t;

typedef struct {
  uint64_t h1;
  uint32_t h2;
  uint32_t id;
} keyrec_t;

/* A mapped array of elements that grows by doubling. */
typedef struct {
  void* base;
  size_t bytes;
} region_t;

static struct {
  region_t entries; /* entry_t; id 0 is the empty stack */
  uint32_t nentries;
  uint32_t free; /* first free entry, 0: none */
  size_t live;   /* entries in use, the empty stack aside */
  size_t live_after_collect;
  region_t pool; /* uint32_t frame numbers */
  uint32_t npool;
  region_t addrs; /* uintptr_t, by frame number */
  uint32_t naddrs;
  region_t addr_index; /* uint32_t frame number + 1, by hash; 0: empty */
  region_t keys;       /* keyrec_t, in the order they were added */
  uint32_t nkeys;
  uint32_t last_key;  /* the key found or added last */
  region_t key_index; /* uint32_t key number + 1, by hash; 0: empty */
} t;

/* ---- mapped memory ------------------------------------------------------ */

static size_t page_round(size_t bytes) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  return (bytes + page - 1) / page * page;
}

static void region_free(region_t* r) {
  if (r->base != NULL)
    munmap(r->base, r->bytes);
  r->base = NULL;
  r->bytes = 0;
}

/* A fresh zeroed region of at least `bytes`. Returns 0 or UV_ENOMEM. */
static int region_new(region_t* r, size_t bytes) {
  size_t size = page_round(bytes);
  void* p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (p == MAP_FAILED)
    return UV_ENOMEM;
  r->base = p;
  r->bytes = size;
  return 0;
}

/* Makes r hold at least `bytes`, keeping its contents. */
static int region_reserve(region_t* r, size_t bytes) {
  size_t size = r->bytes != 0 ? r->bytes : 16384;
  void* p;

  if (bytes <= r->bytes)
    return 0;
  while (size < bytes)
    size *= 2;
  if (r->base == NULL)
    return region_new(r, size);
  p = mremap(r->base, r->bytes, size, MREMAP_MAYMOVE);
  if (p == MAP_FAILED)
    return UV_ENOMEM;
  r->base = p;
  r->bytes = size;
  return 0;
}

#define ENTRIES ((entry_t*)t.entries.base)
#define POOL ((uint32_t*)t.pool.base)
#define ADDRS ((uintptr_t*)t.addrs.base)
#define ADDR_INDEX ((uint32_t*)t.addr_index.base)
#define KEYS ((keyrec_t*)t.keys.base)
#define KEY_INDEX ((uint32_t*)t.key_index.base)

/* ---- addresses ---------------------------------------------------------- */

static size_t addr_mask(void) {
  return t.addr_index.bytes / sizeof(uint32_t) - 1;
}

static void addr_put(uint32_t* slots, size_t mask, uint32_t number) {
  size_t i = (size_t)uv_pprof__hash64(ADDRS[number]) & mask;

  while (slots[i] != 0)
    i = (i + 1) & mask;
  slots[i] = number + 1;
}

/* Rebuilds the address index for naddrs + 1 entries at most half full. */
static int addr_index_rebuild(void) {
  region_t r;
  size_t n = 4096;
  uint32_t k;

  while (n < ((size_t)t.naddrs + 1) * 2)
    n *= 2;
  if (region_new(&r, n * sizeof(uint32_t)) != 0)
    return UV_ENOMEM;
  n = r.bytes / sizeof(uint32_t);
  for (k = 0; k < t.naddrs; k++)
    addr_put(r.base, n - 1, k);
  region_free(&t.addr_index);
  t.addr_index = r;
  return 0;
}

/* The number of addr, added when new. Returns 0 or UV_ENOMEM. */
static int addr_number(uintptr_t addr, uint32_t* out) {
  size_t mask;
  size_t i;

  if ((t.naddrs + 1) * 2 > t.addr_index.bytes / sizeof(uint32_t) &&
      addr_index_rebuild() != 0)
    return UV_ENOMEM;
  mask = addr_mask();
  for (i = (size_t)uv_pprof__hash64(addr) & mask; ADDR_INDEX[i] != 0;
       i = (i + 1) & mask) {
    if (ADDRS[ADDR_INDEX[i] - 1] == addr) {
      *out = ADDR_INDEX[i] - 1;
      return 0;
    }
  }
  if (region_reserve(&t.addrs, (t.naddrs + 1) * sizeof(uintptr_t)) != 0)
    return UV_ENOMEM;
  ADDRS[t.naddrs] = addr;
  ADDR_INDEX[i] = t.naddrs + 1;
  *out = t.naddrs++;
  return 0;
}

/* ---- stacks ------------------------------------------------------------- */

int uv_pprof__stacks_intern(const uintptr_t* frames, size_t n, uint32_t* id) {
  entry_t* e;
  uint32_t first = t.npool;
  size_t i;

  if (n == 0) {
    *id = 0;
    return 0;
  }
  if (n > UV_PPROF__STACK_MAX ||
      region_reserve(&t.pool, (t.npool + n) * sizeof(uint32_t)) != 0 ||
      region_reserve(&t.entries, ((size_t)t.nentries + 2) * sizeof(entry_t)))
    return UV_ENOMEM;
  for (i = 0; i < n; i++)
    if (addr_number(frames[i], &POOL[first + i]) != 0)
      return UV_ENOMEM;
  if (t.nentries == 0)
    t.nentries = 1; /* the empty stack */
  if (t.free != 0) {
    *id = t.free;
    t.free = ENTRIES[t.free].first;
  } else {
    *id = t.nentries++;
  }
  e = &ENTRIES[*id];
  e->first = first;
  e->n = (uint32_t)n;
  e->refs = 1;
  t.npool += (uint32_t)n;
  t.live++;
  return 0;
}

void uv_pprof__stacks_hold(uint32_t id) {
  if (id != 0)
    ENTRIES[id].refs++;
}

void uv_pprof__stacks_release(uint32_t id) {
  if (id != 0)
    ENTRIES[id].refs--;
}

size_t uv_pprof__stacks_frames(uint32_t id, uintptr_t* out, size_t max) {
  const uint32_t* numbers;
  size_t n = uv_pprof__stacks_numbers(id, &numbers);
  size_t i;

  if (n > max)
    n = max;
  for (i = 0; i < n; i++)
    out[i] = ADDRS[numbers[i]];
  return n;
}

size_t uv_pprof__stacks_numbers(uint32_t id, const uint32_t** numbers) {
  if (id == 0) {
    *numbers = NULL;
    return 0;
  }
  *numbers = POOL + ENTRIES[id].first;
  return ENTRIES[id].n;
}

uintptr_t uv_pprof__stacks_addr(uint32_t number) {
  return ADDRS[number];
}

size_t uv_pprof__stacks_naddrs(void) {
  return t.naddrs;
}

size_t uv_pprof__stacks_limit(void) {
  return t.nentries != 0 ? t.nentries : 1;
}

size_t uv_pprof__stacks_bytes(void) {
  return t.entries.bytes + t.pool.bytes + t.addrs.bytes + t.addr_index.bytes +
         t.keys.bytes + t.key_index.bytes;
}

/* ---- keys --------------------------------------------------------------- */

/* Keys are kept in the order they were added, with an index by hash. A
 * process's dumps list its stacks in the same order every time, so the
 * key after the last one found is tried first: a dump of known stacks
 * reads the keys in sequence instead of probing a table of megabytes at
 * random (at 50k stacks the probes' cache misses were most of a parse). */

static size_t key_mask(void) {
  return t.key_index.bytes / sizeof(uint32_t) - 1;
}

static void key_put(uint32_t* slots, size_t mask, uint32_t number) {
  size_t i = (size_t)KEYS[number].h1 & mask;

  while (slots[i] != 0)
    i = (i + 1) & mask;
  slots[i] = number + 1;
}

/* Rebuilds the index for nkeys + 1 keys at most half full. */
static int key_index_rebuild(void) {
  region_t r;
  size_t n = 4096;
  uint32_t k;

  while (n < ((size_t)t.nkeys + 1) * 2)
    n *= 2;
  if (region_new(&r, n * sizeof(uint32_t)) != 0)
    return UV_ENOMEM;
  n = r.bytes / sizeof(uint32_t);
  for (k = 0; k < t.nkeys; k++)
    key_put(r.base, n - 1, k);
  region_free(&t.key_index);
  t.key_index = r;
  return 0;
}

static int key_is(uint32_t number, uint64_t h1, uint64_t h2) {
  return KEYS[number].h1 == h1 && KEYS[number].h2 == (uint32_t)h2;
}

int uv_pprof__stacks_find_key(uint64_t h1, uint64_t h2, uint32_t* id) {
  uint32_t next = t.last_key + 1;
  size_t mask;
  size_t i;

  if (t.nkeys == 0)
    return 0;
  if (next < t.nkeys && key_is(next, h1, h2)) {
    t.last_key = next;
  } else {
    mask = key_mask();
    for (i = (size_t)h1 & mask;; i = (i + 1) & mask) {
      if (KEY_INDEX[i] == 0)
        return 0;
      if (key_is(KEY_INDEX[i] - 1, h1, h2))
        break;
    }
    t.last_key = KEY_INDEX[i] - 1;
  }
  *id = KEYS[t.last_key].id;
  uv_pprof__stacks_hold(*id);
  return 1;
}

int uv_pprof__stacks_add_key(uint64_t h1, uint64_t h2, uint32_t id) {
  if (((size_t)t.nkeys + 1) * 2 > t.key_index.bytes / sizeof(uint32_t) &&
      key_index_rebuild() != 0)
    return UV_ENOMEM;
  if (region_reserve(&t.keys, ((size_t)t.nkeys + 1) * sizeof(keyrec_t)) != 0)
    return UV_ENOMEM;
  KEYS[t.nkeys].h1 = h1;
  KEYS[t.nkeys].h2 = (uint32_t)h2;
  KEYS[t.nkeys].id = id;
  key_put(KEY_INDEX, key_mask(), t.nkeys);
  t.last_key = t.nkeys++;
  return 0;
}

/* Drops the keys of freed stacks, keeping the others' order. In place: it
 * must not fail. */
static void keys_compact(void) {
  uint32_t n = 0;
  uint32_t k;

  for (k = 0; k < t.nkeys; k++)
    if (ENTRIES[KEYS[k].id].refs != FREE || KEYS[k].id == 0)
      KEYS[n++] = KEYS[k];
  t.nkeys = n;
  t.last_key = 0;
  if (t.key_index.base != NULL) {
    memset(t.key_index.base, 0, t.key_index.bytes);
    for (k = 0; k < n; k++)
      key_put(KEY_INDEX, key_mask(), k);
  }
}

/* ---- collection --------------------------------------------------------- */

static void release_all(void) {
  region_free(&t.entries);
  region_free(&t.pool);
  region_free(&t.addrs);
  region_free(&t.addr_index);
  region_free(&t.keys);
  region_free(&t.key_index);
  memset(&t, 0, sizeof(t));
}

/* Copies the frames of live stacks into a pool of their own size, and the
 * addresses they use into a table of their own, renumbered. Freeing stacks
 * is what must not fail; when the copies cannot be mapped, the old pool and
 * addresses simply stay, unused parts included. */
static void compact(void) {
  region_t pool;
  region_t addrs;
  region_t renumber;
  uint32_t* p;
  uintptr_t* a;
  uint32_t* r;
  size_t frames = 1;
  uint32_t npool = 0;
  uint32_t naddrs = 0;
  uint32_t id;

  for (id = 1; id < t.nentries; id++)
    if (ENTRIES[id].refs != FREE)
      frames += ENTRIES[id].n;
  if (region_new(&pool, frames * sizeof(uint32_t)) != 0)
    return;
  if (region_new(&addrs, (t.naddrs + 1) * sizeof(uintptr_t)) != 0) {
    region_free(&pool);
    return;
  }
  if (region_new(&renumber, (t.naddrs + 1) * sizeof(uint32_t)) != 0) {
    region_free(&pool);
    region_free(&addrs);
    return;
  }
  p = pool.base;
  a = addrs.base;
  r = renumber.base; /* old number -> new number + 1 */
  for (id = 1; id < t.nentries; id++) {
    entry_t* e = &ENTRIES[id];
    uint32_t i;
    if (e->refs == FREE)
      continue;
    for (i = 0; i < e->n; i++) {
      uint32_t old = POOL[e->first + i];
      if (r[old] == 0) {
        a[naddrs] = ADDRS[old];
        r[old] = ++naddrs;
      }
      p[npool + i] = r[old] - 1;
    }
    e->first = npool;
    npool += e->n;
  }
  region_free(&renumber);
  region_free(&t.pool);
  region_free(&t.addrs);
  t.pool = pool;
  t.addrs = addrs;
  t.npool = npool;
  t.naddrs = naddrs;
  /* The index has room for the old count, so rebuilding it in place always
   * works. */
  if (addr_index_rebuild() != 0) {
    uint32_t k;
    memset(ADDR_INDEX, 0, t.addr_index.bytes);
    for (k = 0; k < naddrs; k++)
      addr_put(ADDR_INDEX, addr_mask(), k);
  }
}

void uv_pprof__stacks_collect(void) {
  uint32_t id;

  for (id = 1; id < t.nentries; id++) {
    entry_t* e = &ENTRIES[id];
    if (e->refs != 0)
      continue;
    e->refs = FREE;
    e->first = t.free;
    t.free = id;
    t.live--;
  }
  if (t.live == 0) {
    release_all();
    return;
  }
  keys_compact();
  compact();
  t.live_after_collect = t.live;
}

void uv_pprof__stacks_maybe_collect(void) {
  if (t.live > t.live_after_collect + t.live_after_collect / 2 + 1024)
    uv_pprof__stacks_collect();
}
