/* The block profile: meant for event-loop stalls (where the loop thread was
 * blocked, weighted by time). Nothing collects them yet, so it is always a
 * valid empty profile with Go's types, and scrapers that fetch it never
 * fail. */
#include "profile.h"

static int64_t count_none(void) {
  return 0;
}

/* There is nothing to capture: the snapshot is NULL. */
static int take_snapshot(void** snap) {
  *snap = NULL;
  return 0;
}

static void free_snapshot(void* snap) {
}

static void set_types(uv_pprof__builder_t* b) {
  uv_pprof__builder_period(b, "contentions", "count", 1);
  uv_pprof__builder_sample_type(b, "contentions", "count");
  uv_pprof__builder_sample_type(b, "delay", "nanoseconds");
}

static void emit_none(const void* snap, uv_pprof__builder_t* b, int sign) {
}

/* Go's empty layout. Our delays are in nanoseconds, so one "cycle" is one
 * nanosecond: 10^9 cycles per second. */
static int write_text(const void* snap, int debug, uv_pprof__buf_t* out) {
  static const char text[] = "--- contention:\ncycles/second=1000000000\n";

  return uv_pprof__buf_append(out, text, sizeof(text) - 1);
}

const uv_pprof__profile_t uv_pprof__profile_block = {
    .name = "block",
    .count = count_none,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_none,
    .text = write_text,
};

const uv_pprof__route_t uv_pprof__route_block = {
    .name = "block",
    .path = "/debug/pprof/block",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_block,
    .description =
        "Event-loop stalls: where the loop thread was blocked, "
        "weighted by time. Not collected yet: always a valid "
        "empty profile, so scrapers never fail",
    .flags = UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS,
};
