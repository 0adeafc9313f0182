/* The pprof-output layer: profile.proto built and encoded (pprof/builder.c),
 * gzip (pprof/gzip.c) and Go's debug=1 text of count profiles and stack
 * frames (pprof/text.c). Depends on base.h and proc.h (addresses are
 * symbolized and mappings read when a profile is encoded). */
#ifndef UV_PPROF_PPROF_H
#define UV_PPROF_PPROF_H

#include "proc.h"

/* ---- src/pprof/builder.c: profile.proto builder ------------------------- */

typedef struct uv_pprof__builder_s uv_pprof__builder_t;

typedef struct uv_pprof__label_s {
  const char* key;
  const char* str;      /* string label when non-NULL ... */
  int64_t num;          /* ... numeric label otherwise */
  const char* num_unit; /* optional unit of a numeric label */
} uv_pprof__label_t;

/* A new builder whose time_nanos is now. NULL when out of memory. */
uv_pprof__builder_t* uv_pprof__builder_new(void);
void uv_pprof__builder_free(uv_pprof__builder_t* b);
/* Index of s in the string table ("" is 0), deduplicated. */
int64_t uv_pprof__builder_string(uv_pprof__builder_t* b, const char* s);
void uv_pprof__builder_period(uv_pprof__builder_t* b, const char* type,
                              const char* unit, int64_t period);
void uv_pprof__builder_sample_type(uv_pprof__builder_t* b, const char* type,
                                   const char* unit);
void uv_pprof__builder_default_sample_type(uv_pprof__builder_t* b,
                                           const char* type);
void uv_pprof__builder_comment(uv_pprof__builder_t* b, const char* text);
void uv_pprof__builder_time(uv_pprof__builder_t* b, int64_t time_nanos);
void uv_pprof__builder_duration(uv_pprof__builder_t* b, int64_t nanos);
/* Location id for a code address (a call site: return address - 1 for all
 * but the leaf), deduplicated by address. Its mapping is found at encode. */
uint64_t uv_pprof__builder_location(uv_pprof__builder_t* b, uintptr_t addr);
/* Location id of a named frame that has no address (a thread's name, a
 * handle type): its own function `name` (file may be NULL), no mapping. */
uint64_t uv_pprof__builder_frame(uv_pprof__builder_t* b, const char* name,
                                 const char* file);
/* Adds a sample; `values` has one entry per sample type. A sample with the
 * same locations and labels as an earlier one is merged into it by adding the
 * values, so writing p0 with negated values and then p1 yields p1 - p0. */
void uv_pprof__builder_sample(uv_pprof__builder_t* b, const uint64_t* locs,
                              size_t nlocs, const int64_t* values,
                              const uv_pprof__label_t* labels, size_t nlabels);
/* Makes room for `samples` more samples of `locations` location ids in
 * all, so that adding them grows nothing: an emitter that knows (the heap
 * profile's, with 50k stacks) saves the copies and page faults of growing
 * its pools step by step. */
void uv_pprof__builder_expect(uv_pprof__builder_t* b, size_t samples,
                              size_t locations);
/* Makes encode fail with err (a negative libuv code): an emitter's own
 * allocation failed. */
void uv_pprof__builder_fail(uv_pprof__builder_t* b, int err);
/* Adds a sample that the caller knows no sample added so far equals in
 * locations and labels (a profile's first emission into an empty builder,
 * of distinct stacks): it skips the merge lookup, the cost of which at 50k
 * samples was a cache miss each. Later samples still merge with it. */
void uv_pprof__builder_sample_new(uv_pprof__builder_t* b, const uint64_t* locs,
                                  size_t nlocs, const int64_t* values,
                                  const uv_pprof__label_t* labels,
                                  size_t nlabels);
/* Number of samples added so far (after merging). */
size_t uv_pprof__builder_sample_count(const uv_pprof__builder_t* b);
/* Reads the mappings, encodes the profile and gzips it into out. Samples whose
 * values are all zero are left out (pprof drops them anyway). Returns 0 or a
 * negative libuv code (UV_ENOMEM on any earlier allocation failure). */
int uv_pprof__builder_encode(uv_pprof__builder_t* b, uv_pprof__buf_t* out);

/* ---- src/pprof/gzip.c -------------------------------------------------- */

/* gzip (deflate level 1, like Go's gzip.BestSpeed) of data into out.
 * Returns 0 or UV_ENOMEM / UV_EIO. */
int uv_pprof__gzip(const void* data, size_t len, uv_pprof__buf_t* out);
/* Raw deflate (level 1, no wrapper) of data into out, and its inverse into
 * exactly `size` bytes: the history's snapshots (below 1 GiB). Return 0 or
 * UV_ENOMEM / UV_EIO; inflate UV_EINVAL when the data is not that. */
int uv_pprof__deflate(const void* data, size_t len, uv_pprof__buf_t* out);
int uv_pprof__inflate(const void* data, size_t len, void* out, size_t size);

/* ---- src/pprof/text.c: Go's debug=1 text -------------------------------- */

/* Go's debug=1 layout for count profiles: "<name> profile: total N", groups
 * "count @ pcs", "# labels: {...}" and "#\t0x..." frame lines. */
typedef struct uv_pprof__count_record_s {
  int64_t count;
  const uintptr_t* pcs; /* return addresses, leaf first */
  size_t npcs;
  const uv_pprof__label_t* labels; /* string labels are printed */
  size_t nlabels;
} uv_pprof__count_record_t;

int uv_pprof__text_count_profile(const char* name,
                                 uv_pprof__count_record_t* records, size_t n,
                                 uv_pprof__buf_t* out);
/* Appends "\n# labels: {"k":"v", ...}": the string labels, Go-quoted and
 * sorted as the count profiles print them; nothing without one. Returns 0
 * or UV_ENOMEM. */
int uv_pprof__text_labels(uv_pprof__buf_t* out, const uv_pprof__label_t* labels,
                          size_t n);
/* The "#\t0x<pc-1>\t<func>+0x<off>\t<file>:<line>" lines of one stack in
 * every debug=1 text (pcs: return addresses, leaf first; pass a function's
 * entry as entry + 1, as Go does for a goroutine's start). One line per
 * inlined frame, innermost first; "#\t0x<pc-1>" alone when nothing names
 * the address; no file:line when the file is unknown. Aligned as Go's
 * text/tabwriter aligns such a run of lines; no blank line after. Worker
 * thread only (it symbolizes). Returns 0 or UV_ENOMEM. */
int uv_pprof__text_frames(const uintptr_t* pcs, size_t npcs,
                          uv_pprof__buf_t* out);

#endif /* UV_PPROF_PPROF_H */
