/* The history: with the timeline on, each of its samples also keeps a
 * compact snapshot of the heap profile (its rows: stack ids of the stack
 * table, held, and raw counts) and of the handle groups, so that the past
 * can be diffed against the present long after it happened. Snapshots are
 * varint records, deflated, in one mapped arena; they are thinned as they
 * age (every sample for the last hour, the first of each hour for the last
 * day, the first of each day before) and, when the budget
 * (UV_PPROF_HISTORY_MB, the stack table included) is short, the one whose
 * loss leaves the smallest gap for its age goes first. Everything here is
 * uv_pprof's own mapped memory, touched on the worker thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "profile.h"

#define HOUR_NS (3600 * (int64_t)1000000000)
#define DAY_NS (24 * HOUR_NS)
#define STACK_SEED 0x6a09e667f3bcc909ull /* creation stacks' keys */

typedef struct {
  int64_t time_ns;
  size_t offset; /* of its blob in the arena */
  uint32_t size; /* deflated */
  uint32_t raw;  /* inflated */
  uint32_t nrows;
  uint32_t ngroups;
  uint64_t period;
  uv_pprof__je_state_t je;
  uint32_t nmissing; /* loops whose handles are missing */
  uint8_t have_heap;
  uint8_t have_handles;
} meta_t;

static struct {
  size_t budget; /* 0: off */
  int failed;    /* turned off by a snapshot that could not fit */
  char* arena;   /* budget bytes, mapped without reserve */
  size_t end;    /* of the last blob */
  size_t live;   /* bytes of kept blobs */
  meta_t* metas; /* kept snapshots, oldest first */
  size_t nmetas;
  size_t cap;
  size_t taken; /* snapshots taken since start */
} h;

/* ---- configuration ------------------------------------------------------ */

int uv_pprof__history_configure(size_t budget) {
  if (budget != 0 && budget < UV_PPROF__HISTORY_MIN)
    return UV_EINVAL;
  uv_pprof__history_reset();
  h.budget = budget;
  return 0;
}

int uv_pprof__history_on(void) {
  return h.budget != 0 && !h.failed;
}

/* ---- varints ------------------------------------------------------------ */

static void put_varint(uv_pprof__buf_t* b, uint64_t v) {
  uint8_t bytes[10];
  size_t n = 0;

  while (v >= 0x80) {
    bytes[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  bytes[n++] = (uint8_t)v;
  uv_pprof__buf_append(b, bytes, n);
}

static void put_signed(uv_pprof__buf_t* b, int64_t v) {
  put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

typedef struct {
  const uint8_t* p;
  const uint8_t* end;
  int bad;
} reader_t;

static uint64_t get_varint(reader_t* r) {
  uint64_t v = 0;
  int shift;

  for (shift = 0; shift < 64 && r->p < r->end; shift += 7) {
    uint8_t byte = *r->p++;
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (byte < 0x80)
      return v;
  }
  r->bad = 1;
  return 0;
}

static int64_t get_signed(reader_t* r) {
  uint64_t v = get_varint(r);

  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* ---- the arena ----------------------------------------------------------- */

static size_t page_round(size_t bytes) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  return (bytes + page - 1) / page * page;
}

/* What counts against the budget: the kept blobs, the stack table and the
 * snapshots' descriptions. */
static size_t used_bytes(void) {
  return h.live + uv_pprof__stacks_bytes() + page_round(h.cap * sizeof(meta_t));
}

/* Slides the kept blobs to the front (they are in time order, as the metas
 * are) and gives the pages past them back. */
static void compact(void) {
  size_t end = 0;
  size_t i;

  for (i = 0; i < h.nmetas; i++) {
    meta_t* m = &h.metas[i];
    if (m->offset != end)
      memmove(h.arena + end, h.arena + m->offset, m->size);
    m->offset = end;
    end += m->size;
  }
  if (page_round(end) < page_round(h.end))
    madvise(h.arena + page_round(end), page_round(h.end) - page_round(end),
            MADV_DONTNEED);
  h.end = end;
}

/* ---- encoding -------------------------------------------------------------
 */

/* A creation stack's id in the stack table, held; 0 for none or when it
 * cannot be interned (the group then shows no creation stack). */
static uint32_t creation_stack(const uv_pprof__hgroup_t* g) {
  size_t bytes = g->nstack * sizeof(*g->stack);
  uint64_t h1;
  uint64_t h2;
  uint32_t id;

  if (g->nstack == 0)
    return 0;
  h1 = uv_pprof__hash_mem(g->stack, bytes, STACK_SEED);
  h2 = uv_pprof__hash_mem(g->stack, bytes, ~STACK_SEED);
  if (uv_pprof__stacks_find_key(h1, h2, &id))
    return id;
  if (uv_pprof__stacks_intern(g->stack, g->nstack, &id) != 0)
    return 0;
  uv_pprof__stacks_add_key(h1, h2, id);
  return id;
}

/* The records of a snapshot: heap rows, then handle groups. Each stack
 * they name is held once more, and its id appended to `held` (so that a
 * snapshot that is not kept after all can let them go). */
static void encode(const uv_pprof__je_dump_t* heap,
                   const uv_pprof__hgroup_t* groups, size_t ngroups,
                   uv_pprof__buf_t* raw, uv_pprof__buf_t* held) {
  uint32_t prev = 0;
  uintptr_t cb = 0;
  uintptr_t loop = 0;
  size_t i;

  /* A row: the id's step from the previous row's, with a bit saying
   * whether its cumulative counts equal its live ones (a stack whose
   * objects were never freed: most rows of a leak); the live counts; the
   * cumulative ones' excess when they differ. */
  for (i = 0; heap != NULL && i < heap->nstacks; i++) {
    const uv_pprof__je_stack_t* st = &heap->stacks[i];
    const uv_pprof__je_counts_t* c = &st->counts;
    int same = c->accum_objs == c->cur_objs && c->accum_bytes == c->cur_bytes;
    int64_t step = (int64_t)st->id - (int64_t)prev;
    put_varint(raw, (((uint64_t)step << 1) ^ (uint64_t)(step >> 63)) << 1 |
                        (uint64_t)same);
    put_varint(raw, c->cur_objs);
    put_varint(raw, c->cur_bytes);
    if (!same) {
      put_signed(raw, (int64_t)(c->accum_objs - c->cur_objs));
      put_signed(raw, (int64_t)(c->accum_bytes - c->cur_bytes));
    }
    uv_pprof__stacks_hold(st->id);
    uv_pprof__buf_append(held, &st->id, sizeof(st->id));
    prev = st->id;
  }
  for (i = 0; i < ngroups; i++) {
    const uv_pprof__hgroup_t* g = &groups[i];
    uint32_t stack = creation_stack(g);
    put_signed(raw, (int64_t)(g->cb - cb));
    put_signed(raw, (int64_t)(g->loop - loop));
    put_varint(raw, (uint64_t)g->type);
    put_varint(raw, (uint64_t)g->state);
    put_varint(raw, (uint64_t)g->age);
    put_varint(raw, stack);
    put_varint(raw, (uint64_t)g->count);
    uv_pprof__buf_append(held, &stack, sizeof(stack));
    cb = g->cb;
    loop = g->loop;
  }
}

/* ---- decoding -------------------------------------------------------------
 */

void uv_pprof__hsnap_free(uv_pprof__hsnap_t* s) {
  size_t i;

  uv_pprof__je_dump_free(&s->heap);
  for (i = 0; i < s->ngroups; i++)
    uv_pprof__stacks_release(s->stack_ids[i]);
  free(s->groups);
  free(s->stack_ids);
  free(s->frames);
  memset(s, 0, sizeof(*s));
}

/* Decodes snapshot m into s; every stack it names is held once more, by
 * s. With `release`, the snapshot's own holds are dropped instead (it is
 * going) and s is left empty. Returns 0, UV_ENOMEM or UV_EINVAL (a blob
 * that does not decode: never, unless memory was overwritten). */
static int decode(const meta_t* m, uv_pprof__hsnap_t* s, int release) {
  uint8_t* raw = malloc(m->raw != 0 ? m->raw : 1);
  reader_t r;
  uint32_t id = 0;
  uintptr_t cb = 0;
  uintptr_t loop = 0;
  size_t nframes = 0;
  size_t i;
  int rc = UV_ENOMEM;

  memset(s, 0, sizeof(*s));
  if (raw == NULL)
    return UV_ENOMEM;
  if (m->raw != 0 &&
      uv_pprof__inflate(h.arena + m->offset, m->size, raw, m->raw) != 0) {
    free(raw);
    return UV_EINVAL;
  }
  r.p = raw;
  r.end = raw + m->raw;
  r.bad = 0;
  s->time_ns = m->time_ns;
  s->je = m->je;
  s->have_heap = m->have_heap;
  s->have_handles = m->have_handles;
  s->nmissing = m->nmissing;
  s->heap.period = m->period;
  if (!release) {
    s->heap.stacks =
        malloc((m->nrows != 0 ? m->nrows : 1) * sizeof(*s->heap.stacks));
    s->groups = calloc(m->ngroups != 0 ? m->ngroups : 1, sizeof(*s->groups));
    s->stack_ids =
        calloc(m->ngroups != 0 ? m->ngroups : 1, sizeof(*s->stack_ids));
    if (s->heap.stacks == NULL || s->groups == NULL || s->stack_ids == NULL)
      goto fail;
  }
  for (i = 0; i < m->nrows && !r.bad; i++) {
    uv_pprof__je_stack_t st;
    uint64_t head = get_varint(&r);
    uint64_t step = head >> 1;
    id += (uint32_t)((int64_t)(step >> 1) ^ -(int64_t)(step & 1));
    st.id = id;
    st.counts.cur_objs = get_varint(&r);
    st.counts.cur_bytes = get_varint(&r);
    st.counts.accum_objs = st.counts.cur_objs;
    st.counts.accum_bytes = st.counts.cur_bytes;
    if (!(head & 1)) {
      st.counts.accum_objs += (uint64_t)get_signed(&r);
      st.counts.accum_bytes += (uint64_t)get_signed(&r);
    }
    if (release) {
      uv_pprof__stacks_release(id);
      continue;
    }
    uv_pprof__stacks_hold(id);
    s->heap.stacks[s->heap.nstacks++] = st;
  }
  for (i = 0; i < m->ngroups && !r.bad; i++) {
    uv_pprof__hgroup_t g;
    uint32_t stack;
    memset(&g, 0, sizeof(g));
    g.cb = cb += (uintptr_t)get_signed(&r);
    g.loop = loop += (uintptr_t)get_signed(&r);
    g.type = (int)get_varint(&r);
    g.state = (int)get_varint(&r);
    g.age = (int)get_varint(&r);
    stack = (uint32_t)get_varint(&r);
    g.count = (int64_t)get_varint(&r);
    if (release) {
      uv_pprof__stacks_release(stack);
      continue;
    }
    uv_pprof__stacks_hold(stack);
    s->stack_ids[i] = stack;
    s->groups[s->ngroups++] = g;
  }
  free(raw);
  raw = NULL;
  if (r.bad || r.p != r.end) {
    rc = UV_EINVAL;
    goto fail;
  }
  if (release)
    return 0;
  /* The groups' creation stacks, as return addresses. */
  for (i = 0; i < s->ngroups; i++) {
    const uint32_t* numbers;
    nframes += uv_pprof__stacks_numbers(s->stack_ids[i], &numbers);
  }
  s->frames = malloc((nframes != 0 ? nframes : 1) * sizeof(*s->frames));
  if (s->frames == NULL)
    goto fail;
  for (i = 0, nframes = 0; i < s->ngroups; i++) {
    size_t n = uv_pprof__stacks_frames(s->stack_ids[i], s->frames + nframes,
                                       UV_PPROF__STACK_MAX);
    s->groups[i].stack = n != 0 ? s->frames + nframes : NULL;
    s->groups[i].nstack = n;
    nframes += n;
  }
  return 0;

fail:
  free(raw);
  uv_pprof__hsnap_free(s);
  return rc;
}

/* ---- thinning -------------------------------------------------------------
 */

size_t uv_pprof__history_thin(const int64_t* times, size_t n, int64_t now,
                              uint8_t* drop) {
  size_t dropped = 0;
  size_t i;

  memset(drop, 0, n);
  /* The first and the last stay whatever their age. */
  for (i = 1; i + 1 < n; i++) {
    int64_t age = now - times[i];
    int64_t span = age > DAY_NS ? DAY_NS : HOUR_NS;
    size_t k;
    if (age <= HOUR_NS)
      continue;
    /* The first kept one of its hour (day) stays; the others go. */
    for (k = i; k-- > 0;) {
      if (drop[k])
        continue;
      if (times[k] / span == times[i] / span) {
        drop[i] = 1;
        dropped++;
      }
      break;
    }
  }
  return dropped;
}

size_t uv_pprof__history_cheapest(const int64_t* times, size_t n, int64_t now) {
  size_t best = 0;
  double best_loss = 0;
  size_t i;

  for (i = 1; i + 1 < n; i++) {
    double gap = (double)(times[i + 1] - times[i - 1]);
    double age = (double)(now - times[i]) + 1;
    double loss = gap / age;
    if (best == 0 || loss < best_loss) {
      best = i;
      best_loss = loss;
    }
  }
  return best;
}

/* Drops kept snapshot i: its stacks are released, its blob freed. */
static void drop_snapshot(size_t i) {
  uv_pprof__hsnap_t gone;

  decode(&h.metas[i], &gone, 1);
  h.live -= h.metas[i].size;
  memmove(&h.metas[i], &h.metas[i + 1], (h.nmetas - i - 1) * sizeof(*h.metas));
  h.nmetas--;
}

static void apply_thinning(int64_t now) {
  int64_t* times;
  uint8_t* drop;
  size_t i;

  if (h.nmetas < 3)
    return;
  times = malloc(h.nmetas * sizeof(*times));
  drop = malloc(h.nmetas);
  if (times != NULL && drop != NULL) {
    for (i = 0; i < h.nmetas; i++)
      times[i] = h.metas[i].time_ns;
    if (uv_pprof__history_thin(times, h.nmetas, now, drop) != 0)
      for (i = h.nmetas; i-- > 0;)
        if (drop[i])
          drop_snapshot(i);
  }
  free(times);
  free(drop);
}

/* Drops snapshots until the kept ones and the stack table fit the budget:
 * the cheapest (uv_pprof__history_cheapest), never the oldest or the
 * newest while there are three; then the oldest. Returns 0, or UV_ENOSPC
 * when the newest alone does not fit. */
static int fit_budget(int64_t now) {
  int64_t* times = NULL;
  int rc = 0;

  /* Stacks only a served profile used first: they cost a parse, not a
   * moment of the past. */
  if (used_bytes() > h.budget)
    uv_pprof__stacks_collect();
  while (used_bytes() > h.budget) {
    size_t i;
    if (h.nmetas < 3) {
      if (h.nmetas < 2) {
        rc = UV_ENOSPC;
        break;
      }
      drop_snapshot(0);
      uv_pprof__stacks_collect();
      continue;
    }
    free(times);
    times = malloc(h.nmetas * sizeof(*times));
    if (times == NULL) {
      rc = UV_ENOMEM;
      break;
    }
    for (i = 0; i < h.nmetas; i++)
      times[i] = h.metas[i].time_ns;
    drop_snapshot(uv_pprof__history_cheapest(times, h.nmetas, now));
    uv_pprof__stacks_collect();
  }
  free(times);
  return rc;
}

/* ---- taking a snapshot ------------------------------------------------------
 */

static int grow_metas(void) {
  size_t cap = h.cap != 0 ? h.cap * 2 : 256;
  void* p;

  if (h.metas == NULL)
    p = mmap(NULL, page_round(cap * sizeof(meta_t)), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  else
    p = mremap(h.metas, page_round(h.cap * sizeof(meta_t)),
               page_round(cap * sizeof(meta_t)), MREMAP_MAYMOVE);
  if (p == MAP_FAILED)
    return UV_ENOMEM;
  h.metas = p;
  h.cap = cap;
  return 0;
}

/* Turns history off for good after a snapshot that cannot be kept, with
 * one line on stderr. */
static void give_up(size_t need) {
  fprintf(stderr,
          "uv_pprof: UV_PPROF_HISTORY_MB=%.2f is too small for one snapshot "
          "of this process (%.2f MiB with the stack table): history is off\n",
          (double)h.budget / 1048576.0,
          (double)(need + uv_pprof__stacks_bytes()) / 1048576.0);
  need = h.budget;
  uv_pprof__history_reset();
  h.budget = need;
  h.failed = 1;
}

/* Puts blob[0..size) at the arena's end, compacting it first when it does
 * not fit there, or dropping snapshots when even that is not enough.
 * Returns its offset, or -1 when it cannot fit at all. */
static ssize_t store(const void* blob, size_t size, int64_t now) {
  size_t at;

  if (h.end + size > h.budget)
    compact();
  while (h.end + size > h.budget && h.nmetas > 0) {
    if (h.nmetas >= 3) {
      size_t i;
      int64_t* times = malloc(h.nmetas * sizeof(*times));
      if (times == NULL)
        return -1;
      for (i = 0; i < h.nmetas; i++)
        times[i] = h.metas[i].time_ns;
      drop_snapshot(uv_pprof__history_cheapest(times, h.nmetas, now));
      free(times);
    } else {
      drop_snapshot(0);
    }
    compact();
  }
  if (h.end + size > h.budget)
    return -1;
  at = h.end;
  memcpy(h.arena + at, blob, size);
  h.end += size;
  return (ssize_t)at;
}

int uv_pprof__history_keep(int64_t time_ns, const uv_pprof__je_state_t* je,
                           const uv_pprof__je_dump_t* heap,
                           const uv_pprof__hgroup_t* groups, size_t ngroups,
                           size_t nmissing) {
  uv_pprof__buf_t raw;
  uv_pprof__buf_t packed;
  uv_pprof__buf_t held;
  ssize_t at = -1;
  meta_t m;
  int rc = 0;

  if (!uv_pprof__history_on())
    return 0;
  memset(&m, 0, sizeof(m));
  uv_pprof__buf_init(&raw);
  uv_pprof__buf_init(&packed);
  uv_pprof__buf_init(&held);
  m.time_ns = time_ns;
  m.je = *je;
  if (heap != NULL) {
    m.have_heap = 1;
    m.period = heap->period;
    m.nrows = (uint32_t)heap->nstacks;
  }
  if (groups != NULL) {
    m.have_handles = 1;
    m.ngroups = (uint32_t)ngroups;
    m.nmissing = (uint32_t)nmissing;
  }
  encode(heap, groups, ngroups, &raw, &held);
  m.raw = (uint32_t)raw.len;
  if (raw.oom || held.oom || uv_pprof__deflate(raw.base, raw.len, &packed) != 0)
    rc = UV_ENOMEM;
  m.size = (uint32_t)packed.len;
  if (rc == 0 && h.arena == NULL) {
    h.arena = mmap(NULL, h.budget, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (h.arena == MAP_FAILED) {
      h.arena = NULL;
      rc = UV_ENOMEM;
    }
  }
  if (rc == 0 && h.nmetas == h.cap)
    rc = grow_metas();
  if (rc == 0) {
    at = store(packed.base, m.size, time_ns);
    if (at < 0)
      rc = UV_ENOSPC;
  }
  if (rc != 0) {
    const uint32_t* ids = (const uint32_t*)held.base;
    size_t i;
    for (i = 0; i < held.len / sizeof(*ids); i++)
      uv_pprof__stacks_release(ids[i]);
  } else {
    /* Kept: its stacks stay held, by it. */
    m.offset = (size_t)at;
    h.metas[h.nmetas++] = m;
    h.live += m.size;
    h.taken++;
    apply_thinning(time_ns);
    rc = fit_budget(time_ns);
  }
  uv_pprof__buf_free(&raw);
  uv_pprof__buf_free(&packed);
  uv_pprof__buf_free(&held);
  if (rc == UV_ENOSPC)
    give_up(m.size);
  else
    uv_pprof__stacks_maybe_collect();
  return rc;
}

int uv_pprof__history_take(int64_t time_ns,
                           const uv_pprof__handles_snap_t* handles) {
  uv_pprof__je_state_t je;
  uv_pprof__je_dump_t heap;
  uv_pprof__hgroup_t* groups = NULL;
  size_t ngroups = 0;
  int have_heap = 0;
  int have_groups = 0;
  int rc;

  if (!uv_pprof__history_on())
    return 0;
  uv_pprof__je_state(&je);
  if (je.mode == UV_PPROF__HEAP_PROF_ON)
    have_heap = uv_pprof__je_dump(&heap) == 0;
  if (handles != NULL)
    have_groups = uv_pprof__hgroups_make(handles, &groups, &ngroups, NULL) == 0;
  rc = uv_pprof__history_keep(time_ns, &je, have_heap ? &heap : NULL,
                              have_groups ? groups : NULL, ngroups,
                              handles != NULL ? handles->nmissing : 0);
  free(groups);
  if (have_heap)
    uv_pprof__je_dump_free(&heap);
  return rc;
}

/* ---- reading --------------------------------------------------------------
 */

size_t uv_pprof__history_count(void) {
  return h.nmetas;
}

int64_t uv_pprof__history_time(size_t i) {
  return h.metas[i].time_ns;
}

int uv_pprof__history_get(size_t i, uv_pprof__hsnap_t* out) {
  return decode(&h.metas[i], out, 0);
}

size_t uv_pprof__history_nearest(int64_t when) {
  size_t lo = 0;
  size_t hi = h.nmetas;

  /* The first kept at or after `when`, or the one just before if that is
   * nearer. */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (h.metas[mid].time_ns < when)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == h.nmetas)
    return h.nmetas - 1;
  if (lo > 0 && when - h.metas[lo - 1].time_ns < h.metas[lo].time_ns - when)
    return lo - 1;
  return lo;
}

void uv_pprof__history_stats(uv_pprof__history_stats_t* st) {
  size_t i;

  memset(st, 0, sizeof(*st));
  st->budget = h.budget;
  st->on = uv_pprof__history_on();
  st->kept = h.nmetas;
  st->taken = h.taken;
  st->blob_bytes = h.live;
  st->stack_bytes = uv_pprof__stacks_bytes();
  st->used = h.budget != 0 ? used_bytes() : 0;
  for (i = 0; i < h.nmetas; i++) {
    if (h.metas[i].size > st->largest)
      st->largest = h.metas[i].size;
    if (h.metas[i].raw > st->largest_raw)
      st->largest_raw = h.metas[i].raw;
  }
}

void uv_pprof__history_reset(void) {
  while (h.nmetas > 0)
    drop_snapshot(h.nmetas - 1);
  if (h.arena != NULL)
    munmap(h.arena, h.budget);
  if (h.metas != NULL)
    munmap(h.metas, page_round(h.cap * sizeof(meta_t)));
  memset(&h, 0, sizeof(h));
  uv_pprof__stacks_collect();
}
