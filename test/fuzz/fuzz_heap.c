/* libFuzzer target: jemalloc's heap_v2 dumps. The input is parsed as a
 * dump (placed so that its last byte ends a readable page: any read past
 * it faults), once as it is and once stripped of a range taken from the
 * input; a parse that succeeds must keep the dump's invariants, each
 * stripped stack must be a nonempty tail of its raw one, and the heap
 * profile's proto and text are made from it, as the endpoint makes them.
 * The stack table is emptied after each input, as the worker empties it
 * when it idles out. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* A parsed dump: a period, and rows naming stacks of the table. */
static void check(const uv_pprof__je_dump_t* d) {
  size_t i;

  if (d->period == 0)
    abort();
  for (i = 0; i < d->nstacks; i++)
    if (d->stacks[i].id >= uv_pprof__stacks_limit())
      abort();
}

static int in_range(uintptr_t a, const uv_pprof__range_t* r) {
  return a >= r->start && a < r->end;
}

/* The same dump stripped of r: the same rows and counts, each stack the
 * raw one less its leading frames in r (all of them in r: kept whole). */
static void check_stripped(const uv_pprof__je_dump_t* raw,
                           const uv_pprof__je_dump_t* d,
                           const uv_pprof__range_t* r) {
  static uintptr_t before[UV_PPROF__STACK_MAX];
  static uintptr_t after[UV_PPROF__STACK_MAX];
  size_t i;
  size_t j;

  if (d->nstacks != raw->nstacks || d->period != raw->period)
    abort();
  for (i = 0; i < d->nstacks; i++) {
    size_t nb =
        uv_pprof__stacks_frames(raw->stacks[i].id, before, UV_PPROF__STACK_MAX);
    size_t na =
        uv_pprof__stacks_frames(d->stacks[i].id, after, UV_PPROF__STACK_MAX);
    size_t dropped = nb - na;

    if (memcmp(&d->stacks[i].counts, &raw->stacks[i].counts,
               sizeof(d->stacks[i].counts)) != 0 ||
        na > nb)
      abort();
    if (na == nb) {
      if (memcmp(before, after, nb * sizeof(*before)) != 0)
        abort();
      continue;
    }
    if (na == 0 || in_range(after[0], r) ||
        memcmp(before + dropped, after, na * sizeof(*after)) != 0)
      abort();
    for (j = 0; j < dropped; j++)
      if (!in_range(before[j], r))
        abort();
  }
}

/* The text at the end of a readable region followed by a PROT_NONE page. */
static int parse_guarded(const uint8_t* data, size_t size,
                         const uv_pprof__je_strip_t* strip,
                         uv_pprof__je_dump_t* d) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t span = (size + page - 1) / page * page + page;
  char* region = mmap(NULL, span, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int rc;

  if (region == MAP_FAILED || mprotect(region + span - page, page, PROT_NONE))
    abort();
  memcpy(region + span - page - size, data, size);
  rc = uv_pprof__je_parse(region + span - page - size, size, strip, d);
  munmap(region, span);
  return rc;
}

static void expect_refused(int rc, const uv_pprof__je_dump_t* d) {
  if (rc != UV_EINVAL && rc != UV_ENOMEM)
    abort();
  if (d->stacks != NULL || d->nstacks != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uv_pprof__je_dump_t raw;
  uv_pprof__je_dump_t d;
  uv_pprof__je_state_t st;
  uv_pprof__je_strip_t strip;
  uv_pprof__range_t range;
  uv_pprof__builder_t* b;
  uv_pprof__buf_t out;
  uintptr_t first = 0;
  void* snap;
  int rc = parse_guarded(data, size, NULL, &raw);

  if (rc != 0) {
    expect_refused(rc, &raw);
    uv_pprof__stacks_collect();
    return 0;
  }
  check(&raw);
  /* A range from the first frame, of a length the input says. */
  if (raw.nstacks > 0)
    uv_pprof__stacks_frames(raw.stacks[0].id, &first, 1);
  range.start = first;
  range.end = first + (size > 0 ? data[0] : 0) * 4096u;
  memset(&strip, 0, sizeof(strip));
  strip.ranges = &range;
  strip.nranges = 1;
  rc = parse_guarded(data, size, &strip, &d);
  if (rc != 0) {
    if (rc != UV_ENOMEM)
      abort(); /* the raw parse took it */
    expect_refused(rc, &d);
    uv_pprof__je_dump_free(&raw);
    uv_pprof__stacks_collect();
    return 0;
  }
  check(&d);
  check_stripped(&raw, &d, &range);
  uv_pprof__je_dump_free(&raw);

  memset(&st, 0, sizeof(st));
  st.mode = UV_PPROF__HEAP_PROF_ON;
  st.active = 1;
  st.accum = size > 1 && (data[1] & 1);
  st.lg_sample = 19;
  if (uv_pprof__heap_snapshot(&st, &d, &snap) != 0) {
    uv_pprof__stacks_collect(); /* it freed the dump */
    return 0;
  }
  b = uv_pprof__builder_new();
  uv_pprof__buf_init(&out);
  if (b != NULL) {
    uv_pprof__profile_heap.types(b);
    uv_pprof__profile_heap.emit(snap, b, 1);
    uv_pprof__builder_encode(b, &out);
    uv_pprof__builder_free(b);
  }
  uv_pprof__buf_free(&out);
  uv_pprof__profile_heap.text(snap, 1, &out);
  uv_pprof__buf_free(&out);
  uv_pprof__profile_heap.snapshot_free(snap);
  uv_pprof__stacks_collect();
  return 0;
}
