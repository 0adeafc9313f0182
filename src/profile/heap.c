/* The heap and allocs profiles from jemalloc's prof.dump, as Go's runtime
 * writes its own: four sample types, values unbiased per row and per pair,
 * numeric label `bytes`, call sites (return address - 1); the ?debug=1 text
 * with Go's header, records and a statistics block mapped from jemalloc's
 * stats.* (glibc's mallinfo2 without jemalloc). Talking to jemalloc is
 * jemalloc.c's job; symbolizing is the builder's. */
#include <dlfcn.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "profile.h"

#define DEFAULT_PERIOD 524288 /* jemalloc's default 2^19, Go's too */

typedef struct {
  uv_pprof__je_state_t je;
  uv_pprof__je_dump_t dump; /* PROF_ON only */
  int have_stats;
  uv_pprof__je_stats_t stats;
  struct mallinfo2 mi; /* without jemalloc */
  uint64_t rss;
  uint64_t max_rss;
} snap_t;

static const char no_accum[] =
    "alloc_objects and alloc_space are unknown (0 here): jemalloc keeps "
    "cumulative counts only with prof_accum. Restart the process with "
    "MALLOC_CONF=prof:true,prof_accum:true to have them";

static const char inactive[] =
    "jemalloc's sampling is paused (prof.active is false): allocations made "
    "while it is off are not in this profile";

/* ---- snapshot ------------------------------------------------------------ */

static void free_snapshot(void* p) {
  snap_t* snap = p;

  uv_pprof__je_dump_free(&snap->dump);
  free(snap);
}

int uv_pprof__heap_snapshot(const uv_pprof__je_state_t* st,
                            uv_pprof__je_dump_t* dump, void** out) {
  snap_t* snap = calloc(1, sizeof(*snap));
  struct rusage ru;

  if (snap == NULL) {
    uv_pprof__je_dump_free(dump);
    return UV_ENOMEM;
  }
  snap->je = *st;
  snap->dump = *dump;
  memset(dump, 0, sizeof(*dump));
  if (snap->je.mode == UV_PPROF__HEAP_NO_JEMALLOC)
    snap->mi = mallinfo2();
  else
    snap->have_stats = uv_pprof__je_stats(&snap->stats) == 0;
  snap->rss = uv_pprof__memstat_rss();
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    snap->max_rss = (uint64_t)ru.ru_maxrss * 1024;
  *out = snap;
  return 0;
}

static int take_snapshot(void** out) {
  uv_pprof__je_state_t st;
  uv_pprof__je_dump_t dump;
  int rc;

  memset(&dump, 0, sizeof(dump));
  uv_pprof__je_state(&st);
  if (st.mode == UV_PPROF__HEAP_PROF_ON) {
    rc = uv_pprof__je_dump(&dump);
    if (rc != 0)
      return rc;
  }
  return uv_pprof__heap_snapshot(&st, &dump, out);
}

/* ---- proto --------------------------------------------------------------- */

static int64_t period_of(const uv_pprof__je_state_t* je) {
  if (je->mode == UV_PPROF__HEAP_NO_JEMALLOC ||
      je->mode == UV_PPROF__HEAP_NO_PROF || je->lg_sample >= 63)
    return DEFAULT_PERIOD;
  return (int64_t)1 << je->lg_sample;
}

static void set_types(uv_pprof__builder_t* b) {
  uv_pprof__je_state_t je;

  uv_pprof__je_state(&je);
  uv_pprof__builder_period(b, "space", "bytes", period_of(&je));
  uv_pprof__builder_sample_type(b, "alloc_objects", "count");
  uv_pprof__builder_sample_type(b, "alloc_space", "bytes");
  uv_pprof__builder_sample_type(b, "inuse_objects", "count");
  uv_pprof__builder_sample_type(b, "inuse_space", "bytes");
}

static void set_alloc_types(uv_pprof__builder_t* b) {
  set_types(b);
  uv_pprof__builder_default_sample_type(b, "alloc_space");
}

static int64_t clamp(double v) {
  return v >= 9.2e18 ? INT64_MAX : (int64_t)v;
}

/* libm's exp, found on first use rather than linked: linking libm cost every
 * host that does not already map it ~330 KiB of RSS (its relocations and
 * IFUNC resolvers run at load) for this one call. libm.so.6 ships in the
 * same Debian package as libc. */
static double (*exp_fn)(double);
static pthread_once_t exp_once = PTHREAD_ONCE_INIT;

static void find_exp(void) {
  void* libm;

  exp_fn = (double (*)(double))dlsym(RTLD_DEFAULT, "exp");
  if (exp_fn == NULL && (libm = dlopen("libm.so.6", RTLD_NOW)) != NULL)
    exp_fn = (double (*)(double))dlsym(libm, "exp");
}

/* Go's scaleHeapSample (runtime/pprof/protomem.go, also jeprof's
 * AdjustSamples): a sample of average size avg was taken with probability
 * 1 - exp(-avg / rate). */
void uv_pprof__heap_unbias(uint64_t objs, uint64_t bytes, uint64_t rate,
                           int64_t* out_objs, int64_t* out_bytes) {
  double scale;

  if (objs == 0 || bytes == 0) {
    *out_objs = 0;
    *out_bytes = 0;
    return;
  }
  scale = 1.0;
  pthread_once(&exp_once, find_exp);
  if (rate > 1 && exp_fn != NULL)
    scale = 1 / (1 - exp_fn(-((double)bytes / (double)objs) / (double)rate));
  *out_objs = clamp((double)objs * scale);
  *out_bytes = clamp((double)bytes * scale);
}

/* The location ids of stack `id` (leaf first) into locs; cache[number]
 * keeps the location of each address met (0: not yet), so a frame that
 * many stacks share is asked of the builder once. */
static size_t stack_locations(uv_pprof__builder_t* b, uint32_t id,
                              uint64_t* cache, uint64_t* locs) {
  const uint32_t* numbers;
  size_t n = uv_pprof__stacks_numbers(id, &numbers);
  size_t i;

  for (i = 0; i < n; i++) {
    uint64_t* loc = &cache[numbers[i]];
    /* Every address is a return address, the leaf's too (the call into
     * jemalloc): the call site is one byte before it. */
    if (*loc == 0)
      *loc =
          uv_pprof__builder_location(b, uv_pprof__stacks_addr(numbers[i]) - 1);
    locs[i] = *loc;
  }
  return n;
}

/* One side of a difference: heap rows and the jemalloc state they were
 * taken with. */
typedef struct {
  const uv_pprof__je_state_t* je;
  const uv_pprof__je_dump_t* dump;
} rows_t;

/* Go's values of row c (unbiased pairs, alloc then in-use) and its label,
 * the average block size, raw (Go takes the alloc pair; without
 * prof_accum only the in-use pair is known). */
static void row_values(const rows_t* r, const uv_pprof__je_counts_t* c,
                       int64_t* v, int64_t* label) {
  uint64_t objs = r->je->accum ? c->accum_objs : c->cur_objs;
  uint64_t bytes = r->je->accum ? c->accum_bytes : c->cur_bytes;

  if (r->je->accum)
    uv_pprof__heap_unbias(c->accum_objs, c->accum_bytes, r->dump->period, &v[0],
                          &v[1]);
  else
    v[0] = v[1] = 0;
  uv_pprof__heap_unbias(c->cur_objs, c->cur_bytes, r->dump->period, &v[2],
                        &v[3]);
  *label = objs != 0 ? clamp((double)(bytes / objs)) : 0;
}

/* A stack's values summed over the rows that name it (stacks that differ
 * only in jemalloc's own frames make two rows), now's minus base's. */
typedef struct {
  uint32_t id;
  int64_t v[4];
  int64_t label; /* its first row's, now's rather than base's */
} net_t;

/* a + b, held at INT64_MIN or INT64_MAX: a dump's counts are whatever it
 * says (a row's unbiased values may each be INT64_MAX), and two rows may
 * name one stack (found by fuzz_heap). */
static int64_t add_sat(int64_t a, int64_t b) {
  int64_t sum;

  if (__builtin_add_overflow(a, b, &sum))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

/* The stacks of now (and, given, base), each once, in the order met,
 * into *out (malloc'd; *n of them). Returns 0 or UV_ENOMEM. */
static int net_rows(const rows_t* now, const rows_t* base, net_t** out,
                    size_t* n) {
  uint32_t* slot_of = calloc(uv_pprof__stacks_limit(), sizeof(*slot_of));
  size_t max = now->dump->nstacks + (base != NULL ? base->dump->nstacks : 0);
  net_t* nets = malloc((max != 0 ? max : 1) * sizeof(*nets));
  const rows_t* sides[2];
  size_t k = 0;
  size_t s;
  size_t i;
  size_t j;

  if (slot_of == NULL || nets == NULL) {
    free(slot_of);
    free(nets);
    return UV_ENOMEM;
  }
  sides[0] = now;
  sides[1] = base;
  for (s = 0; s < 2 && sides[s] != NULL; s++) {
    const uv_pprof__je_dump_t* d = sides[s]->dump;
    for (i = 0; i < d->nstacks; i++) {
      const uv_pprof__je_stack_t* st = &d->stacks[i];
      int64_t v[4];
      int64_t label;
      net_t* e;
      row_values(sides[s], &st->counts, v, &label);
      if (slot_of[st->id] == 0) {
        e = &nets[k];
        memset(e, 0, sizeof(*e));
        e->id = st->id;
        e->label = label;
        slot_of[st->id] = (uint32_t)++k;
      }
      e = &nets[slot_of[st->id] - 1];
      for (j = 0; j < 4; j++)
        e->v[j] = add_sat(e->v[j], s == 0 ? v[j] : -v[j]);
    }
  }
  free(slot_of);
  *out = nets;
  *n = k;
  return 0;
}

/* One sample per stack of now, its values times `sign`, minus base's when
 * given. Into an empty builder the samples go as new ones, skipping the
 * merge lookup: they are distinct. */
static void emit_rows(uv_pprof__builder_t* b, const rows_t* now,
                      const rows_t* base, int sign) {
  int fresh = uv_pprof__builder_sample_count(b) == 0;
  uint64_t locs[UV_PPROF__STACK_MAX];
  uint64_t* cache;
  net_t* nets = NULL;
  size_t nframes = 0;
  size_t n = 0;
  size_t i;
  size_t j;

  cache = calloc(uv_pprof__stacks_naddrs() + 1, sizeof(*cache));
  if (cache == NULL || net_rows(now, base, &nets, &n) != 0) {
    free(cache);
    uv_pprof__builder_fail(b, UV_ENOMEM);
    return;
  }
  for (i = 0; i < n; i++) {
    const uint32_t* numbers;
    nframes += uv_pprof__stacks_numbers(nets[i].id, &numbers);
  }
  uv_pprof__builder_expect(b, n, nframes);
  for (i = 0; i < n; i++) {
    uv_pprof__label_t label;
    int64_t v[4];
    size_t nlocs;

    for (j = 0; j < 4; j++)
      v[j] = nets[i].v[j] * sign;
    nlocs = stack_locations(b, nets[i].id, cache, locs);
    memset(&label, 0, sizeof(label));
    label.key = "bytes";
    label.num = nets[i].label;
    if (fresh)
      uv_pprof__builder_sample_new(b, locs, nlocs, v, &label,
                                   label.num != 0 ? 1 : 0);
    else
      uv_pprof__builder_sample(b, locs, nlocs, v, &label,
                               label.num != 0 ? 1 : 0);
  }
  free(cache);
  free(nets);
}

/* The comments that describe a snapshot taken with `je`. */
static void add_comments(uv_pprof__builder_t* b,
                         const uv_pprof__je_state_t* je) {
  const char* howto = uv_pprof__je_howto(je->mode);

  if (howto != NULL)
    uv_pprof__builder_comment(b, howto);
  if (je->mode == UV_PPROF__HEAP_PROF_ON && !je->accum)
    uv_pprof__builder_comment(b, no_accum);
  if (je->mode == UV_PPROF__HEAP_PROF_ON && !je->active)
    uv_pprof__builder_comment(b, inactive);
}

static void emit_samples(const void* p, uv_pprof__builder_t* b, int sign) {
  const snap_t* snap = p;
  rows_t now;

  /* A delta emits p0 (sign -1) then p1 (+1): the comments describe the
   * newest snapshot and are written once. */
  if (sign > 0)
    add_comments(b, &snap->je);
  if (snap->dump.period != 0)
    uv_pprof__builder_period(b, "space", "bytes",
                             clamp((double)snap->dump.period));
  now.je = &snap->je;
  now.dump = &snap->dump;
  if (snap->dump.nstacks != 0)
    emit_rows(b, &now, NULL, sign);
}

/* ---- ?base= -------------------------------------------------------------- */

static void base_rows(const void* snap, const uv_pprof__hsnap_t* at,
                      const uv_pprof__hsnap_t* base, rows_t* now,
                      rows_t* then) {
  const snap_t* live = snap;

  now->je = live != NULL ? &live->je : &at->je;
  now->dump = live != NULL ? &live->dump : &at->heap;
  then->je = &base->je;
  then->dump = &base->heap;
}

static void emit_base(const void* snap, const uv_pprof__hsnap_t* at,
                      const uv_pprof__hsnap_t* base, uv_pprof__builder_t* b) {
  rows_t now;
  rows_t then;

  base_rows(snap, at, base, &now, &then);
  add_comments(b, now.je);
  if (now.je->mode == UV_PPROF__HEAP_PROF_ON && !base->have_heap)
    uv_pprof__builder_comment(
        b,
        "heap profiling was off when the base snapshot was taken: "
        "everything counts as new");
  if (now.dump->period != 0 && then.dump->period != 0 &&
      now.dump->period != then.dump->period)
    uv_pprof__builder_comment(
        b,
        "jemalloc's sampling rate changed between the two snapshots: the "
        "difference mixes two estimates");
  if (now.dump->period != 0)
    uv_pprof__builder_period(b, "space", "bytes",
                             clamp((double)now.dump->period));
  emit_rows(b, &now, &then, 1);
}

static int compare_growth(const void* a, const void* b) {
  const net_t* x = a;
  const net_t* y = b;

  if (x->v[3] != y->v[3])
    return x->v[3] > y->v[3] ? -1 : 1;
  if (x->v[1] != y->v[1])
    return x->v[1] > y->v[1] ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Go's heap text layout for the difference, with estimated (unbiased)
 * numbers, signed: a reader's view, which pprof does not parse. Records
 * by in-use bytes gained, most first; stacks that did not change are left
 * out. */
static int text_base(const void* snap, const uv_pprof__hsnap_t* at,
                     const uv_pprof__hsnap_t* base, uv_pprof__buf_t* out) {
  rows_t now;
  rows_t then;
  net_t* nets = NULL;
  int64_t t[4] = {0, 0, 0, 0};
  size_t n = 0;
  size_t i;
  size_t j;
  int rc = 0;

  base_rows(snap, at, base, &now, &then);
  if (now.je->mode != UV_PPROF__HEAP_PROF_ON) {
    uv_pprof__buf_printf(out, "heap profile: 0: 0 [0: 0] @ heap/%" PRId64 "\n",
                         2 * period_of(now.je));
    uv_pprof__buf_printf(out, "# %s\n", uv_pprof__je_howto(now.je->mode));
    return out->oom ? UV_ENOMEM : 0;
  }
  if (net_rows(&now, &then, &nets, &n) != 0)
    return UV_ENOMEM;
  for (i = 0; i < n; i++)
    for (j = 0; j < 4; j++)
      t[j] += nets[i].v[j];
  qsort(nets, n, sizeof(*nets), compare_growth);
  uv_pprof__buf_printf(
      out,
      "heap profile: %+" PRId64 ": %+" PRId64 " [%+" PRId64 ": %+" PRId64
      "] @ heap/%" PRIu64 "\n",
      t[2], t[3], t[0], t[1],
      2 * (now.dump->period != 0 ? now.dump->period
                                 : (uint64_t)period_of(now.je)));
  uv_pprof__buf_printf(out,
                       "# the difference, in estimated objects and bytes (in "
                       "use [allocated]), between the two moments below\n");
  if (!now.je->accum)
    uv_pprof__buf_printf(out, "# %s\n", no_accum);
  if (!base->have_heap)
    uv_pprof__buf_printf(out,
                         "# heap profiling was off when the base snapshot was "
                         "taken: everything counts as new\n");
  for (i = 0; i < n && rc == 0; i++) {
    uintptr_t pcs[UV_PPROF__STACK_MAX];
    size_t np;
    if (nets[i].v[0] == 0 && nets[i].v[1] == 0 && nets[i].v[2] == 0 &&
        nets[i].v[3] == 0)
      continue;
    np = uv_pprof__stacks_frames(nets[i].id, pcs, UV_PPROF__STACK_MAX);
    uv_pprof__buf_printf(
        out, "%+" PRId64 ": %+" PRId64 " [%+" PRId64 ": %+" PRId64 "] @",
        nets[i].v[2], nets[i].v[3], nets[i].v[0], nets[i].v[1]);
    for (j = 0; j < np; j++)
      uv_pprof__buf_printf(out, " 0x%" PRIxPTR, pcs[j]);
    uv_pprof__buf_append(out, "\n", 1);
    rc = uv_pprof__text_frames(pcs, np, out);
    uv_pprof__buf_append(out, "\n", 1);
  }
  free(nets);
  return rc != 0 ? rc : out->oom ? UV_ENOMEM : 0;
}

/* ---- ?debug=1 ------------------------------------------------------------ */

static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a + b < a ? UINT64_MAX : a + b;
}

static int compare_inuse(const void* a, const void* b) {
  const uv_pprof__je_stack_t* x = *(const uv_pprof__je_stack_t* const*)a;
  const uv_pprof__je_stack_t* y = *(const uv_pprof__je_stack_t* const*)b;

  if (x->counts.cur_bytes != y->counts.cur_bytes)
    return x->counts.cur_bytes > y->counts.cur_bytes ? -1 : 1;
  if (x->counts.accum_bytes != y->counts.accum_bytes)
    return x->counts.accum_bytes > y->counts.accum_bytes ? -1 : 1;
  return (x > y) - (x < y);
}

/* Go's records: raw sampled numbers (pprof unbiases them itself, reading
 * the rate from the header's heap/<2R>), sorted by in-use bytes. */
static int append_records(uv_pprof__buf_t* out, const snap_t* snap) {
  const uv_pprof__je_dump_t* d = &snap->dump;
  const uv_pprof__je_stack_t** order;
  uv_pprof__je_counts_t t;
  size_t i;
  size_t j;
  int rc = 0;

  memset(&t, 0, sizeof(t));
  for (i = 0; i < d->nstacks; i++) {
    t.cur_objs = sat_add(t.cur_objs, d->stacks[i].counts.cur_objs);
    t.cur_bytes = sat_add(t.cur_bytes, d->stacks[i].counts.cur_bytes);
    t.accum_objs = sat_add(t.accum_objs, d->stacks[i].counts.accum_objs);
    t.accum_bytes = sat_add(t.accum_bytes, d->stacks[i].counts.accum_bytes);
  }
  uv_pprof__buf_printf(
      out,
      "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64
      "] @ heap/%" PRIu64 "\n",
      t.cur_objs, t.cur_bytes, t.accum_objs, t.accum_bytes,
      d->period != 0 ? 2 * d->period : 2 * (uint64_t)period_of(&snap->je));
  if (snap->je.mode != UV_PPROF__HEAP_PROF_ON) {
    uv_pprof__buf_printf(out, "# %s\n", uv_pprof__je_howto(snap->je.mode));
    return 0;
  }
  if (!snap->je.accum)
    uv_pprof__buf_printf(out, "# %s\n", no_accum);
  if (!snap->je.active)
    uv_pprof__buf_printf(out, "# %s\n", inactive);

  order = malloc((d->nstacks != 0 ? d->nstacks : 1) * sizeof(*order));
  if (order == NULL)
    return UV_ENOMEM;
  for (i = 0; i < d->nstacks; i++)
    order[i] = &d->stacks[i];
  qsort(order, d->nstacks, sizeof(*order), compare_inuse);
  for (i = 0; i < d->nstacks; i++) {
    const uv_pprof__je_stack_t* st = order[i];
    uintptr_t pcs[UV_PPROF__STACK_MAX];
    size_t n = uv_pprof__stacks_frames(st->id, pcs, UV_PPROF__STACK_MAX);
    uv_pprof__buf_printf(
        out, "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @",
        st->counts.cur_objs, st->counts.cur_bytes, st->counts.accum_objs,
        st->counts.accum_bytes);
    for (j = 0; j < n; j++)
      uv_pprof__buf_printf(out, " 0x%" PRIxPTR, pcs[j]);
    uv_pprof__buf_append(out, "\n", 1);
    rc = uv_pprof__text_frames(pcs, n, out);
    if (rc != 0)
      break;
    uv_pprof__buf_append(out, "\n", 1);
  }
  free(order);
  return rc;
}

static void stat_line(uv_pprof__buf_t* out, const char* name, uint64_t v) {
  uv_pprof__buf_printf(out, "# %s = %" PRIu64 "\n", name, v);
}

static uint64_t sub(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

/* Go's runtime.MemStats names, mapped from jemalloc (README.md has the
 * table), then jemalloc's own figures under their mallctl names. */
static void append_jemalloc_stats(uv_pprof__buf_t* out, const snap_t* snap) {
  const uv_pprof__je_stats_t* s = &snap->stats;
  const uint64_t* v = s->value;
  uint64_t mallocs =
      v[UV_PPROF__JE_SMALL_NMALLOC] + v[UV_PPROF__JE_LARGE_NMALLOC];
  uint64_t frees =
      v[UV_PPROF__JE_SMALL_NDALLOC] + v[UV_PPROF__JE_LARGE_NDALLOC];

  stat_line(out, "Alloc", v[UV_PPROF__JE_ALLOCATED]);
  if (s->have_total)
    stat_line(out, "TotalAlloc", s->total_bytes);
  stat_line(out, "Sys", v[UV_PPROF__JE_MAPPED]);
  stat_line(out, "Mallocs", mallocs);
  stat_line(out, "Frees", frees);
  stat_line(out, "HeapAlloc", v[UV_PPROF__JE_ALLOCATED]);
  stat_line(out, "HeapSys", v[UV_PPROF__JE_MAPPED]);
  stat_line(out, "HeapIdle",
            sub(v[UV_PPROF__JE_MAPPED], v[UV_PPROF__JE_ACTIVE]));
  stat_line(out, "HeapInuse", v[UV_PPROF__JE_ACTIVE]);
  stat_line(out, "HeapReleased", v[UV_PPROF__JE_RETAINED]);
  stat_line(out, "HeapObjects", sub(mallocs, frees));
  if (s->version != NULL)
    uv_pprof__buf_printf(out, "# jemalloc.version = %s\n", s->version);
  if (snap->je.mode == UV_PPROF__HEAP_PROF_ON) {
    uv_pprof__buf_printf(out, "# jemalloc.opt.prof = true\n");
    uv_pprof__buf_printf(out, "# jemalloc.prof.active = %s\n",
                         snap->je.active ? "true" : "false");
    uv_pprof__buf_printf(out, "# jemalloc.opt.prof_accum = %s\n",
                         snap->je.accum ? "true" : "false");
    uv_pprof__buf_printf(out, "# jemalloc.prof.lg_sample = %u\n",
                         snap->je.lg_sample);
  } else if (snap->je.mode == UV_PPROF__HEAP_PROF_OFF) {
    uv_pprof__buf_printf(out, "# jemalloc.opt.prof = false\n");
  }
#define XX(id, name, type)                 \
  if (s->have & (1u << UV_PPROF__JE_##id)) \
    stat_line(out, "jemalloc." name, v[UV_PPROF__JE_##id]);
  UV_PPROF__JE_STATS_MAP(XX)
#undef XX
}

/* glibc's malloc: its arenas (sbrk and mmap'd heaps) and mmap'd chunks. */
static void append_glibc_stats(uv_pprof__buf_t* out, const snap_t* snap) {
  const struct mallinfo2* mi = &snap->mi;

  stat_line(out, "Alloc", mi->uordblks + mi->hblkhd);
  stat_line(out, "Sys", mi->arena + mi->hblkhd);
  stat_line(out, "HeapAlloc", mi->uordblks + mi->hblkhd);
  stat_line(out, "HeapSys", mi->arena + mi->hblkhd);
  stat_line(out, "HeapIdle", mi->fordblks);
  stat_line(out, "HeapInuse", mi->uordblks + mi->hblkhd);
  stat_line(out, "glibc.mallinfo2.arena", mi->arena);
  stat_line(out, "glibc.mallinfo2.ordblks", mi->ordblks);
  stat_line(out, "glibc.mallinfo2.hblks", mi->hblks);
  stat_line(out, "glibc.mallinfo2.hblkhd", mi->hblkhd);
  stat_line(out, "glibc.mallinfo2.uordblks", mi->uordblks);
  stat_line(out, "glibc.mallinfo2.fordblks", mi->fordblks);
  stat_line(out, "glibc.mallinfo2.keepcost", mi->keepcost);
}

static int write_text(const void* p, int debug, uv_pprof__buf_t* out) {
  const snap_t* snap = p;
  int rc;

  rc = append_records(out, snap);
  if (rc != 0)
    return rc;
  uv_pprof__buf_printf(out, "\n# runtime.MemStats\n");
  if (snap->je.mode == UV_PPROF__HEAP_NO_JEMALLOC)
    append_glibc_stats(out, snap);
  else if (snap->have_stats)
    append_jemalloc_stats(out, snap);
  stat_line(out, "RSS", snap->rss);
  stat_line(out, "MaxRSS", snap->max_rss);
  return out->oom ? UV_ENOMEM : 0;
}

const uv_pprof__profile_t uv_pprof__profile_heap = {
    .name = "heap",
    .count = uv_pprof__je_count,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_samples,
    .text = write_text,
    .base_emit = emit_base,
    .base_text = text_base,
};

const uv_pprof__profile_t uv_pprof__profile_allocs = {
    .name = "allocs",
    .count = uv_pprof__je_count,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_alloc_types,
    .emit = emit_samples,
    .text = write_text,
    .base_emit = emit_base,
    .base_text = text_base,
};

const uv_pprof__route_t uv_pprof__route_allocs = {
    .name = "allocs",
    .path = "/debug/pprof/allocs",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_allocs,
    .description =
        "A sampling of all past memory allocations, from "
        "jemalloc's heap profile (cumulative counts need "
        "MALLOC_CONF prof_accum:true)",
    .flags =
        UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS | UV_PPROF__ROUTE_BASE,
};

const uv_pprof__route_t uv_pprof__route_heap = {
    .name = "heap",
    .path = "/debug/pprof/heap",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_heap,
    .description =
        "A sampling of memory allocations of live objects, from "
        "jemalloc's heap profile. The gc GET parameter is "
        "accepted and has no effect: jemalloc frees memory at "
        "free(), so the sample is always current.",
    .flags =
        UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS | UV_PPROF__ROUTE_BASE,
};
