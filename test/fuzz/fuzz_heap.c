/* libFuzzer target: jemalloc's heap_v2 dumps. The input is parsed as a
 * dump (placed so that its last byte ends a readable page: any read past
 * it faults); a parse that succeeds must keep the dump's invariants, its
 * stacks are stripped of a range taken from the input, and the heap
 * profile's proto and text are made from it, as the endpoint makes them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* A parsed dump: the stacks tile the frames in order. */
static void check(const uv_pprof__je_dump_t* d) {
  size_t total = 0;
  size_t i;

  if (d->period == 0)
    abort();
  for (i = 0; i < d->nstacks; i++) {
    if (d->stacks[i].first != total || d->stacks[i].n > d->nframes - total)
      abort();
    total += d->stacks[i].n;
  }
  if (total != d->nframes)
    abort();
}

/* A stripped one: each stack a nonempty tail of what it was, in bounds. */
static void check_stripped(const uv_pprof__je_dump_t* d, const size_t* ends) {
  size_t i;

  for (i = 0; i < d->nstacks; i++)
    if (d->stacks[i].first > d->nframes ||
        d->stacks[i].first + d->stacks[i].n != ends[i] ||
        (ends[i] > (i > 0 ? ends[i - 1] : 0) && d->stacks[i].n == 0))
      abort();
}

/* The text at the end of a readable region followed by a PROT_NONE page. */
static int parse_guarded(const uint8_t* data, size_t size,
                         uv_pprof__je_dump_t* d) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t span = (size + page - 1) / page * page + page;
  char* region = mmap(NULL, span, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int rc;

  if (region == MAP_FAILED || mprotect(region + span - page, page, PROT_NONE))
    abort();
  memcpy(region + span - page - size, data, size);
  rc = uv_pprof__je_parse(region + span - page - size, size, d);
  munmap(region, span);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uv_pprof__je_dump_t d;
  uv_pprof__je_state_t st;
  uv_pprof__range_t range;
  uv_pprof__builder_t* b;
  uv_pprof__buf_t out;
  void* snap;
  size_t* ends;
  size_t i;
  int rc = parse_guarded(data, size, &d);

  if (rc != 0) {
    if (rc != UV_EINVAL && rc != UV_ENOMEM)
      abort();
    if (d.stacks != NULL || d.frames != NULL || d.nstacks != 0)
      abort();
    return 0;
  }
  check(&d);
  /* A range from the first frame: the strip must keep every stack valid. */
  ends = malloc((d.nstacks + 1) * sizeof(*ends));
  if (ends == NULL)
    abort();
  for (i = 0; i < d.nstacks; i++)
    ends[i] = d.stacks[i].first + d.stacks[i].n;
  range.start = d.nframes > 0 ? d.frames[0] : 0;
  range.end = range.start + (size > 0 ? data[0] : 0) * 4096u;
  uv_pprof__je_strip_ranges(&d, &range, 1);
  check_stripped(&d, ends);
  free(ends);

  memset(&st, 0, sizeof(st));
  st.mode = UV_PPROF__HEAP_PROF_ON;
  st.active = 1;
  st.accum = size > 1 && (data[1] & 1);
  st.lg_sample = 19;
  if (uv_pprof__heap_snapshot(&st, &d, &snap) != 0)
    return 0; /* it freed the dump */
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
  return 0;
}
