/* uv_pprof: Go's net/http/pprof endpoints for any libuv program.
 *
 * One call, uv_pprof_start(loop), serves /debug/pprof/ on the host's own
 * event loop. Everything uv_pprof opens is unref'd, so a host whose own work
 * is done leaves uv_run() exactly as it would without it. Every function
 * returns 0 or a negative libuv error code (usable with uv_strerror()).
 *
 * All functions must be called on the thread that runs the given loop.
 */
#ifndef UV_PPROF_H
#define UV_PPROF_H

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define UV_PPROF_EXTERN __attribute__((visibility("default")))
#else
#define UV_PPROF_EXTERN
#endif

#define UV_PPROF_VERSION_MAJOR 0
#define UV_PPROF_VERSION_MINOR 1
#define UV_PPROF_VERSION_PATCH 0

#define UV_PPROF_DEFAULT_PORT 6060

/* Explicit settings for uv_pprof_start_ex(). Fill with uv_pprof_options_init()
 * first, then change what you need: fields added in later versions then keep
 * their defaults. Strings are copied; they need not outlive the call. */
typedef struct uv_pprof_options_s {
  /* Listen address: an IPv4 or IPv6 literal, or "localhost".
   * Default "127.0.0.1". A non-loopback address requires a token of at
   * least 16 characters. On a loopback address without a token, only
   * requests whose Host is localhost or a loopback address (any port) are
   * answered (403 otherwise), so that no web page reaches the server
   * through a DNS name rebound to 127.0.0.1. */
  const char* host;
  /* TCP port; 0 picks a free one (read it back with uv_pprof_address()).
   * Default 6060. */
  int port;
  /* When non-empty, every request must carry "Authorization: Bearer <token>"
   * (checked when its headers are complete; 401 otherwise, at most 10 such
   * answers a second, the others wait their turn). Any Host is then
   * answered. Default NULL. */
  const char* token;
  /* Non-zero: do not print the "pprof enabled on ..." banner. Default 0. */
  int quiet;
  /* Simultaneous connections. At the cap, the connection idle the longest
   * is closed to make room (then one still sending its request); only when
   * every one is busy with an answer is a new one answered 503 and closed.
   * Default 64. */
  unsigned int max_connections;
  /* A keep-alive connection with no request for this long is closed.
   * Default 30000 ms. */
  unsigned int idle_timeout_ms;
  /* A request must arrive completely (headers and body) within this time of
   * its first byte, or the connection is closed. Default 10000 ms. */
  unsigned int request_timeout_ms;
  /* A response must be written completely within this time, or the
   * connection is closed. Default 60000 ms. */
  unsigned int write_timeout_ms;
  /* Non-zero: record where each libuv handle was created, for the goroutine
   * profile (its ?debug=2 then shows "created by"). Needs libuv_pprof_track
   * in the process (LD_PRELOAD=libuv_pprof_track.so, or linked; see the
   * README); without it a line on stderr says so. uv_pprof_start() sets it
   * from UV_PPROF_TRACK=handles. Default 0. */
  int track_handles;
  /* Non-zero: every this many seconds (at most 86400), note the heap's
   * allocated and in-use bytes, the live handle count and the RSS in a ring
   * of the last 10080 samples, served at /debug/pprof/timeline as CSV
   * (time,heap_alloc_bytes,heap_inuse_bytes,goroutines,rss_mb) and with
   * ?format=svg as a chart. One unref'd timer on the loop the server runs
   * on (ignored when this call only registers a further loop); nothing when
   * 0. uv_pprof_start() sets it from UV_PPROF_TIMELINE=<seconds>.
   * Default 0. */
  unsigned int timeline_seconds;
  /* With the timeline on: the memory budget, in KiB, of its history — a
   * compact heap and handle snapshot taken with each timeline sample,
   * thinned as it ages (every sample of the last hour, then one an hour,
   * then one a day), for ?base=<age> diffs and /debug/pprof/leaks. 0: no
   * history. Below 256 KiB it cannot hold a snapshot: a line on stderr
   * says so and history is off. uv_pprof_start() sets it from
   * UV_PPROF_HISTORY_MB=<MiB> (decimals allowed). Default 8192 (8 MiB). */
  unsigned int history_kb;
  /* The flight recorder, with the timeline on: when the process's RSS
   * crosses dump_rss_mb MiB — or dump_rss_percent % of its cgroup's
   * memory.max — at a timeline sample, the heap profile, the goroutine
   * profile and the timeline CSV are written into dump_dir as
   * uv-pprof-<UTC time>-<pid>-{heap.pb.gz,goroutine.pb.gz,timeline.csv},
   * from uv_pprof's own thread, each complete or not at all. The line then
   * moves up (twice as high; for a percentage, halfway to the limit), so
   * each crossing writes once. A directory that cannot be written costs one
   * line on stderr per crossing, never the process. NULL: off. Set one of
   * the two lines. uv_pprof_start() sets them from UV_PPROF_DUMP_DIR and
   * UV_PPROF_DUMP_RSS=<MiB> or <percent>%. Default NULL, 0, 0. */
  const char* dump_dir;
  unsigned int dump_rss_mb;
  unsigned int dump_rss_percent;
  /* Stall detection: a loop iteration whose callbacks run this many
   * milliseconds or longer (waiting for events never counts) is a stall,
   * sampled while it lasts and served at /debug/pprof/block (Go's block
   * profile: contentions, delay) and in /metrics. 10 to 3600000, or 0: off
   * (no hook, no thread). uv_pprof_start() sets it from UV_PPROF_STALL_MS.
   * Default 50. */
  unsigned int stall_ms;
  /* A stall that lasts this many seconds prints one report to stderr: the
   * loop, how long, the stack. 0: none. At most 86400. uv_pprof_start()
   * sets it from UV_PPROF_STALL_REPORT_S. Default 10. */
  unsigned int stall_report_s;
  /* Non-zero: /debug/pprof/mutex samples 1 in this many contended
   * pthread_mutex_lock calls (uv_mutex_lock included), as Go's
   * SetMutexProfileFraction. Needs libuv_pprof_track in the process (see
   * README). uv_pprof_start() sets it from UV_PPROF_MUTEX. Default 0: off,
   * and then nothing is measured. */
  unsigned int mutex_rate;
} uv_pprof_options_t;

/* Fills *options with the defaults listed above. */
UV_PPROF_EXTERN void uv_pprof_options_init(uv_pprof_options_t* options);

/* Starts serving pprof endpoints on `loop` as configured by the environment:
 *
 *   UV_PPROF        unset, empty or "0": disabled; returns 0 and does nothing
 *                   at all (no allocation, socket, thread or signal handler).
 *                   "1": 127.0.0.1:6060. "PORT", "HOST:PORT", "[V6]:PORT",
 *                   ":PORT" (all interfaces).
 *   UV_PPROF_TOKEN  bearer token; required for a non-loopback address, and
 *                   then at least 16 characters.
 *   UV_PPROF_TRACK  "handles": record handle creation stacks (see
 *                   track_handles below).
 *   UV_PPROF_TIMELINE  seconds between the samples of the memory timeline
 *                   (see timeline_seconds below); unset or 0: none.
 *   UV_PPROF_QUIET  non-empty and not "0": no banner (see quiet above).
 *   UV_PPROF_HISTORY_MB  the timeline's history budget in MiB (see
 *                   history_kb below); default 8, 0: none.
 *   UV_PPROF_DUMP_DIR, UV_PPROF_DUMP_RSS  the flight recorder (see dump_dir
 *                   below).
 *   UV_PPROF_STALL_MS  the stall threshold in ms (see stall_ms); 0: off.
 *   UV_PPROF_STALL_REPORT_S  seconds before a stall is reported on stderr
 *                   (see stall_report_s); 0: never.
 *   UV_PPROF_MUTEX  1 in N contended locks sampled (see mutex_rate).
 *   An invalid value of these last three prints one line and keeps the
 *   default.
 *
 * On success prints "pprof enabled on http://localhost:PORT/debug/pprof/" to
 * stderr and returns 0. On failure prints one line to stderr, leaves nothing
 * behind and returns UV_EINVAL (bad value, or a token shorter than 16
 * characters for a non-loopback address), UV_EADDRINUSE, UV_EACCES
 * (non-loopback address without a token), UV_EBUSY (already serving on this
 * loop) or another negative libuv code.
 *
 * When uv_pprof already serves on another loop, this registers `loop` instead
 * (so that later profiles can include its handles) and serves nothing more. */
UV_PPROF_EXTERN int uv_pprof_start(uv_loop_t* loop);

/* As uv_pprof_start(), with explicit settings. The environment is not read:
 * the server is always started. `options` NULL means all defaults. */
UV_PPROF_EXTERN int uv_pprof_start_ex(uv_loop_t* loop,
                                      const uv_pprof_options_t* options);

/* Stops what uv_pprof_start*() started on `loop`: the listener, every open
 * connection (requests in flight are abandoned), uv_pprof's worker thread
 * (waiting for the job it is running, if any) and every handle. The handles
 * finish closing when the loop next runs; after that uv_loop_close() returns 0.
 * Returns 0, also when nothing was started on `loop`.
 *
 * uv_pprof's handles are hidden from uv_walk() and not counted by
 * uv_loop_close() (libuv's UV_HANDLE_INTERNAL), so a host may close every
 * handle it sees first. A host that closes its loop without this call gets
 * uv_loop_close() == 0 and a server left behind (README, "Shutting down"),
 * unless libuv_pprof_track is linked or preloaded. */
UV_PPROF_EXTERN int uv_pprof_stop(uv_loop_t* loop);

/* Copies the address the server on `loop` listens on into *addr (useful with
 * port 0). Returns 0, or UV_ENOENT when uv_pprof does not serve on `loop`. */
UV_PPROF_EXTERN int uv_pprof_address(uv_loop_t* loop,
                                     struct sockaddr_storage* addr);

/* Writes the index URL ("http://localhost:PORT/debug/pprof/", as in the
 * banner) into buf, NUL-terminated. Returns 0, UV_ENOENT when uv_pprof does
 * not serve on `loop`, or UV_ENOBUFS when `size` is too small. */
UV_PPROF_EXTERN int uv_pprof_url(uv_loop_t* loop, char* buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* UV_PPROF_H */
