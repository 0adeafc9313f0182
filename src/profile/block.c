/* The block profile: event-loop stalls (src/stall.c), where a loop thread
 * was held by its callbacks past the threshold, with Go's block-profile
 * types: one contention per stall, its time in callbacks as the delay,
 * divided among the stacks sampled during it. Labels: loop, and where known
 * phase and type (the handle whose callback ran). A stall in progress is
 * included with its delay so far and in_progress="true". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

static int64_t count_rows(void) {
  return uv_pprof__stallrec_count();
}

static int take_snapshot(void** snap) {
  return uv_pprof__stallrec_snapshot((uv_pprof__stallrec_snap_t**)snap);
}

static void free_snapshot(void* snap) {
  uv_pprof__stallrec_snapshot_free(snap);
}

static void set_types(uv_pprof__builder_t* b) {
  uv_pprof__builder_period(b, "contentions", "count", 1);
  uv_pprof__builder_sample_type(b, "contentions", "count");
  uv_pprof__builder_sample_type(b, "delay", "nanoseconds");
}

typedef struct {
  uv_pprof__label_t labels[4];
  size_t n;
  char loop[32];
  char type[32];
} labels_t;

/* The in_progress label only where `marked`: a delta subtracts p0's stall
 * in progress without it, so that it merges with the same stall finished
 * in p1 and only the delay within the window remains. */
static void set_labels(const uv_pprof__stallrec_row_t* r, int marked,
                       labels_t* l) {
  const char* phase = uv_pprof__phase_name(r->phase);

  memset(l->labels, 0, sizeof(l->labels));
  l->n = 0;
  snprintf(l->loop, sizeof(l->loop), "0x%" PRIxPTR, r->loop);
  l->labels[l->n].key = "loop";
  l->labels[l->n++].str = l->loop;
  if (phase != NULL) {
    l->labels[l->n].key = "phase";
    l->labels[l->n++].str = phase;
  }
  if (r->type != UV_UNKNOWN_HANDLE) {
    snprintf(l->type, sizeof(l->type), "uv_%s_t",
             uv_handle_type_name((uv_handle_type)r->type));
    l->labels[l->n].key = "type";
    l->labels[l->n++].str = l->type;
  }
  if (marked && r->in_progress) {
    l->labels[l->n].key = "in_progress";
    l->labels[l->n++].str = "true";
  }
}

static void emit_rows(const void* p, uv_pprof__builder_t* b, int sign) {
  const uv_pprof__stallrec_snap_t* snap = p;
  uint64_t locs[UV_PPROF__STALL_MAX_FRAMES];
  char text[160];
  size_t i;
  size_t j;

  for (i = 0; i < snap->count; i++) {
    const uv_pprof__stallrec_row_t* r = &snap->rows[i];
    int64_t values[2] = {r->contentions * sign, r->delay_ns * sign};
    size_t n = r->npcs;
    labels_t l;
    for (j = 0; j < n; j++)
      locs[j] = uv_pprof__builder_location(b, r->pcs[j]);
    if (n == 0) /* pprof drops a sample without a location */
      locs[n++] = uv_pprof__builder_frame(b, "(stall not sampled)", NULL);
    set_labels(r, sign > 0, &l);
    uv_pprof__builder_sample(b, locs, n, values, l.labels, l.n);
  }
  if (sign < 0)
    return;
  uv_pprof__builder_comment(
      b,
      "uv_pprof: event-loop stalls: a loop iteration whose callbacks ran "
      "past the stall threshold is one contention; its time in callbacks is "
      "the delay, divided among the stacks sampled every 10 ms while it "
      "lasted");
  if (snap->in_progress > 0) {
    snprintf(text, sizeof(text),
             "uv_pprof: %zu stall(s) still in progress, with their delay so "
             "far (label in_progress)",
             snap->in_progress);
    uv_pprof__builder_comment(b, text);
  }
  if (snap->dropped_stalls > 0 || snap->dropped_samples > 0) {
    snprintf(text, sizeof(text),
             "uv_pprof: %" PRIu64
             " stall(s) not recorded (the profile's "
             "rows are full), %" PRIu64
             " sample(s) beyond the stacks kept "
             "per stall",
             snap->dropped_stalls, snap->dropped_samples);
    uv_pprof__builder_comment(b, text);
  }
}

static int by_delay(const void* a, const void* b) {
  const uv_pprof__stallrec_row_t* x =
      *(const uv_pprof__stallrec_row_t* const*)a;
  const uv_pprof__stallrec_row_t* y =
      *(const uv_pprof__stallrec_row_t* const*)b;

  if (x->delay_ns != y->delay_ns)
    return x->delay_ns > y->delay_ns ? -1 : 1;
  return 0;
}

/* Go's legacy layout: "--- contention:", cycles/second (our cycles are
 * nanoseconds), then "<delay> <count> @ <return addresses>" by delay, the
 * labels in a "# labels:" line (pprof skips every '#' line) and the frame
 * lines. The leaf is a pc, not a return address: it is printed + 1, as the
 * frame lines read every address - 1. */
static int write_text(const void* p, int debug, uv_pprof__buf_t* out) {
  const uv_pprof__stallrec_snap_t* snap = p;
  const uv_pprof__stallrec_row_t** order;
  uintptr_t ret[UV_PPROF__STALL_MAX_FRAMES];
  size_t i;
  size_t j;
  int rc = 0;

  order = malloc((snap->count != 0 ? snap->count : 1) * sizeof(*order));
  if (order == NULL)
    return UV_ENOMEM;
  for (i = 0; i < snap->count; i++)
    order[i] = &snap->rows[i];
  qsort(order, snap->count, sizeof(*order), by_delay);
  uv_pprof__buf_printf(out, "--- contention:\ncycles/second=1000000000\n");
  for (i = 0; i < snap->count && rc == 0; i++) {
    const uv_pprof__stallrec_row_t* r = order[i];
    labels_t l;
    uv_pprof__buf_printf(out, "%" PRId64 " %" PRId64 " @", r->delay_ns,
                         r->contentions);
    for (j = 0; j < r->npcs; j++) {
      ret[j] = r->pcs[j] + 1; /* back to return addresses */
      uv_pprof__buf_printf(out, " 0x%" PRIxPTR, ret[j]);
    }
    set_labels(r, 1, &l);
    rc = uv_pprof__text_labels(out, l.labels, l.n);
    uv_pprof__buf_printf(out, "\n");
    if (rc == 0 && r->npcs > 0)
      rc = uv_pprof__text_frames(ret, r->npcs, out);
    uv_pprof__buf_printf(out, "\n");
  }
  free(order);
  if (rc == 0 && out->oom)
    rc = UV_ENOMEM;
  return rc;
}

const uv_pprof__profile_t uv_pprof__profile_block = {
    .name = "block",
    .count = count_rows,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_rows,
    .text = write_text,
};

const uv_pprof__route_t uv_pprof__route_block = {
    .name = "block",
    .path = "/debug/pprof/block",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_block,
    .description =
        "Event-loop stalls: where a loop thread was held by its callbacks "
        "past the stall threshold (UV_PPROF_STALL_MS), weighted by time",
    .flags = UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS,
};
