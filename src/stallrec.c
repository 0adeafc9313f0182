/* The record of loop stalls that the block profile reads: every finished
 * stall folded into rows of (loop, phase, handle type, stack) with their
 * contentions and delay, and the stalls still in progress with the stacks
 * sampled so far. One contention per stall, credited to the stack that
 * stands for most of its time; its delay divided among its stacks in
 * proportion to the time their samples stand for (a sample stands for the
 * time since the one before, so one that came late takes a missed one's
 * share). Bounded: MAX_ROWS rows, MAX_STACKS distinct stacks per
 * stall; beyond them a stall or a sample is counted as dropped. Any thread,
 * under one lock. */
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "loop.h"

#define MAX_ROWS 4096
#define MAX_STACKS 64 /* distinct stacks kept per stall */

typedef struct {
  uint64_t hash;
  int phase;
  int type;
  uint64_t weight; /* ns its samples stand for */
  uint32_t npcs;
  uintptr_t pcs[UV_PPROF__STALL_MAX_FRAMES];
} stack_t_;

struct uv_pprof__stall_s {
  uintptr_t loop;
  int64_t start_ns;
  stack_t_* stacks;
  size_t nstacks;
  uint64_t dropped; /* samples of stacks beyond MAX_STACKS */
  uint64_t dropped_ns;
  struct uv_pprof__stall_s* next;
};

typedef struct {
  uintptr_t loop;
  uint64_t hash;
  int phase;
  int type;
  uint32_t npcs;
  uintptr_t* pcs;
  int64_t contentions;
  int64_t delay_ns;
} row_t;

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static row_t* rows;
static size_t nrows;
static size_t rows_cap;
static uint32_t* slots; /* open addressing on the row hash: index + 1 */
static size_t slot_mask;
static uv_pprof__stall_t* current; /* stalls in progress */
static uint64_t dropped_stalls;    /* stalls not (fully) recorded */
static uint64_t dropped_samples;

static void init_once(void) {
  if (uv_mutex_init(&mu) != 0)
    abort();
}

static uint64_t hash_stack(uintptr_t loop, int phase, int type,
                           const uintptr_t* pcs, size_t n) {
  uint64_t h = uv_pprof__hash64((uint64_t)loop ^ ((uint64_t)phase << 48) ^
                                ((uint64_t)(unsigned)type << 56) ^ n);
  size_t i;

  for (i = 0; i < n; i++)
    h = uv_pprof__hash64(h ^ pcs[i]);
  return h;
}

void uv_pprof__stallrec_lock(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
}

void uv_pprof__stallrec_unlock(void) {
  uv_mutex_unlock(&mu);
}

/* ---- rows (mu held) ------------------------------------------------------ */

static int grow_slots(void) {
  size_t n = slot_mask != 0 ? (slot_mask + 1) * 2 : 256;
  uint32_t* table = calloc(n, sizeof(*table));
  size_t i;

  if (table == NULL)
    return -1;
  for (i = 0; i < nrows; i++) {
    size_t j = (size_t)rows[i].hash & (n - 1);
    while (table[j] != 0)
      j = (j + 1) & (n - 1);
    table[j] = (uint32_t)(i + 1);
  }
  free(slots);
  slots = table;
  slot_mask = n - 1;
  return 0;
}

static row_t* row_for(uintptr_t loop, const stack_t_* s) {
  size_t j;
  row_t* r;

  if (slot_mask != 0)
    for (j = (size_t)s->hash & slot_mask; slots[j] != 0;
         j = (j + 1) & slot_mask) {
      r = &rows[slots[j] - 1];
      if (r->hash == s->hash && r->loop == loop && r->phase == s->phase &&
          r->type == s->type && r->npcs == s->npcs &&
          memcmp(r->pcs, s->pcs, s->npcs * sizeof(uintptr_t)) == 0)
        return r;
    }
  if (nrows >= MAX_ROWS)
    return NULL;
  if ((nrows + 1) * 2 > slot_mask + 1 && grow_slots() != 0)
    return NULL;
  if (nrows == rows_cap) {
    size_t cap = rows_cap != 0 ? rows_cap * 2 : 16;
    row_t* grown = realloc(rows, cap * sizeof(*rows));
    if (grown == NULL)
      return NULL;
    rows = grown;
    rows_cap = cap;
  }
  r = &rows[nrows];
  memset(r, 0, sizeof(*r));
  r->pcs = malloc((s->npcs != 0 ? s->npcs : 1) * sizeof(uintptr_t));
  if (r->pcs == NULL)
    return NULL;
  memcpy(r->pcs, s->pcs, s->npcs * sizeof(uintptr_t));
  r->loop = loop;
  r->hash = s->hash;
  r->phase = s->phase;
  r->type = s->type;
  r->npcs = s->npcs;
  for (j = (size_t)s->hash & slot_mask; slots[j] != 0; j = (j + 1) & slot_mask)
    ;
  slots[j] = (uint32_t)++nrows;
  return r;
}

/* The stall's share per stack: delay in proportion to weight (the last
 * stack takes the rounding), the one contention to the first stack of the
 * most weight. A stall never sampled has one empty stack. Calls
 * fn(stack, contentions, delay) for each. */
static void split(const uv_pprof__stall_t* s, int64_t delay,
                  void (*fn)(const stack_t_*, int64_t, int64_t, void*),
                  void* arg) {
  stack_t_ none;
  uint64_t total = 0;
  int64_t given = 0;
  size_t most = 0;
  size_t i;

  if (s->nstacks == 0) {
    memset(&none, 0, sizeof(none));
    none.phase = UV_PPROF__PHASE_UNKNOWN;
    none.hash = hash_stack(s->loop, none.phase, 0, NULL, 0);
    fn(&none, 1, delay, arg);
    return;
  }
  for (i = 0; i < s->nstacks; i++) {
    total += s->stacks[i].weight;
    if (s->stacks[i].weight > s->stacks[most].weight)
      most = i;
  }
  for (i = 0; i < s->nstacks; i++) {
    int64_t d = i + 1 == s->nstacks ? delay - given
                : total == 0
                    ? 0
                    : (int64_t)((double)delay * s->stacks[i].weight / total);
    given += d;
    fn(&s->stacks[i], i == most, d, arg);
  }
}

static void add_to_row(const stack_t_* st, int64_t contentions, int64_t delay,
                       void* arg) {
  const uv_pprof__stall_t* s = arg;
  row_t* r = row_for(s->loop, st);

  if (r == NULL) {
    dropped_stalls += contentions;
    return;
  }
  r->contentions += contentions;
  r->delay_ns += delay;
}

/* ---- stalls in progress -------------------------------------------------- */

uv_pprof__stall_t* uv_pprof__stallrec_begin(uintptr_t loop, int64_t start_ns) {
  uv_pprof__stall_t* s = calloc(1, sizeof(*s));

  uv_once(&once, init_once);
  if (s == NULL)
    return NULL;
  s->stacks = malloc(MAX_STACKS * sizeof(*s->stacks));
  if (s->stacks == NULL) {
    free(s);
    return NULL;
  }
  s->loop = loop;
  s->start_ns = start_ns;
  uv_mutex_lock(&mu);
  s->next = current;
  current = s;
  uv_mutex_unlock(&mu);
  return s;
}

void uv_pprof__stallrec_sample(uv_pprof__stall_t* s, const uintptr_t* pcs,
                               size_t n, int phase, int type,
                               uint64_t weight_ns) {
  uint64_t h;
  size_t i;

  if (n > UV_PPROF__STALL_MAX_FRAMES)
    n = UV_PPROF__STALL_MAX_FRAMES;
  h = hash_stack(s->loop, phase, type, pcs, n);
  uv_mutex_lock(&mu);
  for (i = 0; i < s->nstacks; i++) {
    stack_t_* st = &s->stacks[i];
    if (st->hash == h && st->npcs == n && st->phase == phase &&
        st->type == type && memcmp(st->pcs, pcs, n * sizeof(*pcs)) == 0) {
      st->weight += weight_ns;
      uv_mutex_unlock(&mu);
      return;
    }
  }
  if (s->nstacks < MAX_STACKS) {
    stack_t_* st = &s->stacks[s->nstacks++];
    st->hash = h;
    st->phase = phase;
    st->type = type;
    st->weight = weight_ns;
    st->npcs = (uint32_t)n;
    memcpy(st->pcs, pcs, n * sizeof(*pcs));
  } else {
    s->dropped++;
    s->dropped_ns += weight_ns;
    dropped_samples++;
  }
  uv_mutex_unlock(&mu);
}

void uv_pprof__stallrec_end(uv_pprof__stall_t* s, int64_t delay_ns) {
  uv_pprof__stall_t** p;

  uv_mutex_lock(&mu);
  for (p = &current; *p != NULL; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  split(s, delay_ns, add_to_row, s);
  uv_mutex_unlock(&mu);
  free(s->stacks);
  free(s);
}

/* ---- snapshots ----------------------------------------------------------- */

typedef struct {
  uv_pprof__stallrec_snap_t* snap;
  uintptr_t loop;
  int fail;
} copy_t;

static int push(uv_pprof__stallrec_snap_t* snap, uintptr_t loop, int phase,
                int type, const uintptr_t* pcs, size_t npcs,
                int64_t contentions, int64_t delay, int in_progress) {
  uv_pprof__stallrec_row_t* r;

  if (snap->count == snap->cap) {
    size_t cap = snap->cap != 0 ? snap->cap * 2 : 16;
    uv_pprof__stallrec_row_t* grown = realloc(snap->rows, cap * sizeof(*grown));
    if (grown == NULL)
      return -1;
    snap->rows = grown;
    snap->cap = cap;
  }
  r = &snap->rows[snap->count];
  r->pcs = malloc((npcs != 0 ? npcs : 1) * sizeof(*pcs));
  if (r->pcs == NULL)
    return -1;
  memcpy(r->pcs, pcs, npcs * sizeof(*pcs));
  r->npcs = npcs;
  r->loop = loop;
  r->phase = phase;
  r->type = type;
  r->contentions = contentions;
  r->delay_ns = delay;
  r->in_progress = in_progress;
  snap->count++;
  return 0;
}

static void push_in_progress(const stack_t_* st, int64_t contentions,
                             int64_t delay, void* arg) {
  copy_t* c = arg;

  if (push(c->snap, c->loop, st->phase, st->type, st->pcs, st->npcs,
           contentions, delay, 1) != 0)
    c->fail = 1;
}

int uv_pprof__stallrec_snapshot(uv_pprof__stallrec_snap_t** out) {
  uv_pprof__stallrec_snap_t* snap = calloc(1, sizeof(*snap));
  const uv_pprof__stall_t* s;
  copy_t c;
  size_t i;
  int64_t now = uv_pprof__sampler_now();

  uv_once(&once, init_once);
  *out = NULL;
  if (snap == NULL)
    return UV_ENOMEM;
  c.snap = snap;
  c.fail = 0;
  uv_mutex_lock(&mu);
  for (i = 0; i < nrows && !c.fail; i++)
    c.fail = push(snap, rows[i].loop, rows[i].phase, rows[i].type, rows[i].pcs,
                  rows[i].npcs, rows[i].contentions, rows[i].delay_ns, 0) != 0;
  for (s = current; s != NULL && !c.fail; s = s->next) {
    c.loop = s->loop;
    split(s, now > s->start_ns ? now - s->start_ns : 0, push_in_progress, &c);
    snap->in_progress++;
  }
  snap->dropped_stalls = dropped_stalls;
  snap->dropped_samples = dropped_samples;
  uv_mutex_unlock(&mu);
  if (c.fail) {
    uv_pprof__stallrec_snapshot_free(snap);
    return UV_ENOMEM;
  }
  *out = snap;
  return 0;
}

void uv_pprof__stallrec_snapshot_free(uv_pprof__stallrec_snap_t* snap) {
  size_t i;

  if (snap == NULL)
    return;
  for (i = 0; i < snap->count; i++)
    free(snap->rows[i].pcs);
  free(snap->rows);
  free(snap);
}

int64_t uv_pprof__stallrec_count(void) {
  const uv_pprof__stall_t* s;
  int64_t n;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  n = (int64_t)nrows;
  for (s = current; s != NULL; s = s->next)
    n += s->nstacks != 0 ? (int64_t)s->nstacks : 1;
  uv_mutex_unlock(&mu);
  return n;
}
