/* The base layer: what every file of uv_pprof may use. Array and printf
 * helpers, the growable byte buffer (buf.c), the wall clock, and whether a
 * long job's server has stopped (stop.c). Nothing here
 * knows of libuv loops, requests or profiles; nothing is exported (the
 * library is built with hidden visibility: only include/uv_pprof.h's
 * uv_pprof_* functions leave it). The layers above, each including the ones
 * below: proc.h, pprof.h, loop.h, request.h, profile.h, router.h, server.h
 * (docs/INTERNALS.md draws them). */
#ifndef UV_PPROF_BASE_H
#define UV_PPROF_BASE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <uv.h>

#include "uv_pprof.h"

#define UV_PPROF__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define UV_PPROF__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define UV_PPROF__PRINTF(f, a)
#endif

/* Wall clock in ns since the Unix epoch. Any thread. */
static inline int64_t uv_pprof__now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A wall-clock time (ns since the epoch) as ISO 8601 local time with its
 * UTC offset, as mem-monitor.sh writes it (date +%Y-%m-%dT%H:%M:%S%:z):
 * "2026-11-26T03:55:55+00:00". Any thread. */
static inline void uv_pprof__format_time(int64_t ns, char* buf, size_t size) {
  time_t sec = (time_t)(ns / 1000000000);
  struct tm tm;
  char zone[8];
  size_t n;

  localtime_r(&sec, &tm);
  n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
  if (strftime(zone, sizeof(zone), "%z", &tm) == 5)
    snprintf(buf + n, size - n, "%.3s:%.2s", zone, zone + 3);
}

/* ---- buf.c: growable byte buffer with a sticky out-of-memory flag ------- */

typedef struct uv_pprof__buf_s {
  char* base;
  size_t len;
  size_t cap;
  int oom; /* set once an append failed; later appends do nothing */
} uv_pprof__buf_t;

void uv_pprof__buf_init(uv_pprof__buf_t* b);
void uv_pprof__buf_free(uv_pprof__buf_t* b);
/* Both return 0 or UV_ENOMEM (and set b->oom). */
int uv_pprof__buf_append(uv_pprof__buf_t* b, const void* data, size_t len);
int uv_pprof__buf_printf(uv_pprof__buf_t* b, const char* fmt, ...)
    UV_PPROF__PRINTF(2, 3);
/* Room for `extra` more bytes after b->len (which is unchanged): where to
 * write them before adding them to b->len. NULL once out of memory. */
void* uv_pprof__buf_room(uv_pprof__buf_t* b, size_t extra);
/* Appends s with &, <, >, ' and " escaped for HTML. */
int uv_pprof__buf_html(uv_pprof__buf_t* b, const char* s);
/* Moves src's contents into dst (dst's old contents are freed). */
void uv_pprof__buf_move(uv_pprof__buf_t* dst, uv_pprof__buf_t* src);

/* ---- stop.c: long jobs of a stopped server give up --------------------- */

/* Nonzero when the calling thread works for a server that has stopped (0 on
 * any thread not tied to one): long loops poll it and give up, their answer
 * being dropped anyway. Any thread. */
int uv_pprof__stopping(void);
/* Ties the calling thread to `flag`, an atomic int that becomes nonzero
 * when its server stops; NULL unties it. */
void uv_pprof__stopping_watch(const int* flag);
/* From now on every thread tied to a flag is stopping (the process exits). */
void uv_pprof__stopping_everywhere(void);

#endif /* UV_PPROF_BASE_H */
