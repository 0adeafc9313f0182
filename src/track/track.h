/* The interface between libuv_pprof_track (the handle tracker, a library of
 * its own because it must define libuv's uv_*_init and uv_close names) and
 * libuv_pprof, which finds these functions at walk time with
 * dlsym(RTLD_DEFAULT). Not installed: both libraries come from one build, and
 * the _v1 suffix keeps a mismatched pair from talking. */
#ifndef UV_PPROF_TRACK_H
#define UV_PPROF_TRACK_H

#include <stddef.h>
#include <stdint.h>

/* Frames kept per creation stack (and per lock contention stack). */
#define UV_PPROF_TRACK_MAX_DEPTH 32

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

/* Lock contention (src/track/mutex.c): one stack's sampled waits. */
typedef struct uv_pprof_track_mutex_row_s {
  uint64_t count;    /* sampled contended calls */
  uint64_t delay_ns; /* their waits */
  uint32_t depth;
  uintptr_t pcs[UV_PPROF_TRACK_MAX_DEPTH]; /* return addresses, the caller
                                              of pthread_mutex_lock first */
} uv_pprof_track_mutex_row_t;

/* Sets the sampling rate (1 in `set` contended calls; 0: off) when set >=
 * 0, and returns the rate before; set < 0 only reads it. Any thread. */
typedef unsigned (*uv_pprof_track_mutex_rate_fn)(int set);
/* Copies the rows into out[0..max) and returns their number (which may
 * exceed max). Any thread. */
typedef size_t (*uv_pprof_track_mutex_rows_fn)(uv_pprof_track_mutex_row_t* out,
                                               size_t max);

#define UV_PPROF_TRACK_ENABLE_SYM "uv_pprof_track_enable_v1"
#define UV_PPROF_TRACK_LOOKUP_SYM "uv_pprof_track_lookup_v1"
#define UV_PPROF_TRACK_STACK_SYM "uv_pprof_track_stack_v1"
#define UV_PPROF_TRACK_MUTEX_RATE_SYM "uv_pprof_track_mutex_rate_v1"
#define UV_PPROF_TRACK_MUTEX_ROWS_SYM "uv_pprof_track_mutex_rows_v1"

/* Exported by libuv_pprof for the libraries that interpose uv_loop_close
 * (this one, and libuv_pprof_attach): called on the loop's thread right
 * before the real uv_loop_close(loop). When uv_pprof is attached to the
 * loop and nothing of the host's keeps the loop open (no handle uv_walk
 * shows, no request in flight but uv_pprof's), it stops uv_pprof there and
 * runs the loop without waiting until uv_pprof's handles have closed: only
 * their close callbacks run. Returns 1 when it did, else 0 (the host still
 * uses the loop, or uv_pprof is not on it: nothing changed). */
typedef int (*uv_pprof_release_loop_fn)(void* loop);
#define UV_PPROF_RELEASE_LOOP_SYM "uv_pprof_release_loop_v1"

#endif /* UV_PPROF_TRACK_H */
