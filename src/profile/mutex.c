/* The mutex profile: Go's holders of contended mutexes. uv_pprof does not
 * collect them, so it is always a valid empty profile with Go's types, and
 * scrapers that fetch it never fail. */
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

/* Go's empty layout, with delays in nanoseconds (one "cycle" = 1 ns). */
static int write_text(const void* snap, int debug, uv_pprof__buf_t* out) {
  static const char text[] =
      "--- mutex:\ncycles/second=1000000000\nsampling period=0\n";

  return uv_pprof__buf_append(out, text, sizeof(text) - 1);
}

const uv_pprof__profile_t uv_pprof__profile_mutex = {
    .name = "mutex",
    .count = count_none,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_none,
    .text = write_text,
};

const uv_pprof__route_t uv_pprof__route_mutex = {
    .name = "mutex",
    .path = "/debug/pprof/mutex",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_mutex,
    .description =
        "Stack traces of holders of contended mutexes. Not "
        "collected by uv_pprof: always a valid empty profile, "
        "so scrapers never fail",
    .flags = UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS,
};
