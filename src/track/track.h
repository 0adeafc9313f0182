/* The interface between libuv_pprof_track (the handle tracker, a library of
 * its own because it must define libuv's uv_*_init and uv_close names) and
 * libuv_pprof, which finds these functions at walk time with
 * dlsym(RTLD_DEFAULT). Not installed: both libraries come from one build, and
 * the _v1 suffix keeps a mismatched pair from talking. */
#ifndef UV_PPROF_TRACK_H
#define UV_PPROF_TRACK_H

#include <stddef.h>
#include <stdint.h>

/* What the tracker knows of one live handle. */
typedef struct uv_pprof_track_info_s {
  uint32_t stack;   /* creation stack id for uv_pprof_track_stack_v1; 0: none */
  uint32_t known;   /* 1 when the handle's init was seen */
  uint64_t seq;     /* init sequence number: differs for every init */
  uint64_t init_ns; /* CLOCK_MONOTONIC time of the init */
} uv_pprof_track_info_t;

/* Starts capturing creation stacks (from now on, in every thread). Also
 * started by UV_PPROF_TRACK=handles in the environment. Returns 0. */
typedef int (*uv_pprof_track_enable_fn)(void);
/* Fills out[i] for the handle at addrs[i], i < n, under one lock. */
typedef void (*uv_pprof_track_lookup_fn)(const uintptr_t* addrs, size_t n,
                                         uv_pprof_track_info_t* out);
/* Copies the return addresses of stack `id` (leaf first: the caller of the
 * init function first) into pcs[0..max) and returns how many there are
 * (possibly more than max), 0 for an unknown id. Any thread. */
typedef size_t (*uv_pprof_track_stack_fn)(uint32_t id, uintptr_t* pcs,
                                          size_t max);

#define UV_PPROF_TRACK_ENABLE_SYM "uv_pprof_track_enable_v1"
#define UV_PPROF_TRACK_LOOKUP_SYM "uv_pprof_track_lookup_v1"
#define UV_PPROF_TRACK_STACK_SYM "uv_pprof_track_stack_v1"

/* Frames kept per creation stack. */
#define UV_PPROF_TRACK_MAX_DEPTH 32

#endif /* UV_PPROF_TRACK_H */
