/* uv-pprof-demo: a small libuv server to try uv_pprof on.
 *
 * A TCP echo server and a few repeating timers doing light work, plus one
 * call, uv_pprof_start(loop), so that UV_PPROF turns the pprof endpoints on.
 * Flags make it leak heap memory, timers or connections at a steady rate from
 * named functions, which the heap and goroutine profiles then point at, and
 * add the harmless kinds of memory and handles a real server has beside its
 * leaks: a big block held from the start, a buffer that swells and drains,
 * timers that come and go. It uses only uv_pprof's public API, as any host
 * would.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "uv_pprof.h"

#define DEFAULT_ECHO_PORT 7000
#define LEAK_TICK_MS 100  /* leaks happen in steps this far apart */
#define LEAK_MIN_BLOCK 64 /* smaller heap leaks wait until this size */
#define WORK_TICK_MS 20   /* the "light work" timers */
#define CHURN_TICK_MS 50
#define REPORT_TICK_MS 10000 /* one status line this often */
#define MAX_RATE 1000000     /* timers or connections per second */
#define LIFE_TICK_MS 100 /* the harmless memory and timers move this often */
#define BLOCK (1u << 20) /* of --hold and --swing */
#define SWING_PERIOD_MS 10000
#define MAX_HEAP_RATE (UINT64_C(1) << 40)

/* The leaking functions are global and never inlined, so that heap and
 * goroutine profiles show them under their own names. */
__attribute__((noinline)) int leak_heap_bytes(size_t size);
__attribute__((noinline)) int leak_timer_start(void);
__attribute__((noinline)) int leak_connection_open(void);
__attribute__((noinline)) void leaked_timer_cb(uv_timer_t* timer);
__attribute__((noinline)) int hold_cache_fill(uint64_t bytes);
__attribute__((noinline)) int swing_grow(void);
__attribute__((noinline)) int churn_timer_start(uint64_t due_ms);
__attribute__((noinline)) void churned_timer_cb(uv_timer_t* timer);

typedef struct {
  int echo_port;        /* 0: any free port */
  uint64_t leak_heap;   /* bytes per second */
  uint64_t leak_timers; /* per 1000 seconds (the flag takes decimals) */
  uint64_t leak_conns;  /* per 1000 seconds */
  uint64_t hold;        /* bytes held from the start */
  uint64_t swing;       /* bytes at the top of the swing */
  uint64_t timer_churn; /* short-lived timers per second */
  uint64_t duration_s;  /* 0: until SIGINT or SIGTERM */
} demo_options_t;

/* A connection accepted by the echo server. Kept on a list so that shutdown
 * can close the ones still open. */
typedef struct echo_conn_s {
  uv_tcp_t tcp;
  struct echo_conn_s* prev;
  struct echo_conn_s* next;
} echo_conn_t;

typedef struct {
  uv_write_t req;
  char* data;
} echo_write_t;

/* What the leaks leave behind. All of it stays reachable from the lists
 * below, as in most real leaks (a list or cache that only grows), which also
 * keeps a leak checker quiet at a clean exit. */
typedef struct leak_block_s {
  struct leak_block_s* next;
} leak_block_t;

typedef struct leaked_timer_s {
  uv_timer_t timer;
  struct leaked_timer_s* next;
} leaked_timer_t;

/* A timer that comes and goes: started with a short timeout, closed by its
 * own callback. On a list so that shutdown can close those still due. */
typedef struct churned_timer_s {
  uv_timer_t timer;
  struct churned_timer_s* prev;
  struct churned_timer_s* next;
} churned_timer_t;

typedef struct leaked_conn_s {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  struct leaked_conn_s* next;
} leaked_conn_t;

static demo_options_t opts = {DEFAULT_ECHO_PORT, 0, 0, 0, 0, 0, 0, 0};
static uv_loop_t loop_storage;
static uv_loop_t* loop = &loop_storage;
static struct sockaddr_in echo_addr;

static uv_tcp_t echo_server;
static uv_timer_t work_timer;
static uv_timer_t churn_timer;
static uv_timer_t report_timer;
static uv_timer_t leak_timer;
static uv_timer_t life_timer;
static uv_timer_t duration_timer;
static uv_signal_t sigint_handle;
static uv_signal_t sigterm_handle;
static int shutting_down;

static echo_conn_t* echo_conns;
static uint64_t echo_conn_count;
static uint64_t echo_bytes;

static uint64_t leak_start_ms;
static leak_block_t* leak_blocks;
static uint64_t heap_leaked;  /* bytes */
static uint64_t heap_pending; /* due but not yet allocated (< LEAK_MIN_BLOCK) */
static leaked_timer_t* leaked_timers;
static uint64_t timers_leaked;
static uint64_t leaked_timer_fires;
static leaked_conn_t* leaked_conns;
static uint64_t conns_leaked;
static leak_block_t* held_blocks;  /* --hold */
static leak_block_t* swing_blocks; /* --swing, newest first */
static uint64_t swing_count;
static churned_timer_t* churned_timers;
static uint64_t timers_churned;
static int heap_leak_failed;
static int timer_leak_failed;
static int conn_leak_failed;

static uint32_t work_hash;
static unsigned char work_buf[4096];
static char read_buf[4096]; /* leaked connections read into it and forget */
static char greeting[] = "hello from a leaked connection\n";

/* ---- command line ------------------------------------------------------- */

static void usage(FILE* out, const char* argv0) {
  fprintf(
      out,
      "Usage: %s [options]\n"
      "\n"
      "A small libuv server (TCP echo + timers) with uv_pprof. Set UV_PPROF=1\n"
      "(or a port, or HOST:PORT) to serve the pprof endpoints.\n"
      "\n"
      "Options:\n"
      "  --echo-port N              TCP echo server port on 127.0.0.1 "
      "(default %d; 0: any)\n"
      "  --leak-heap BYTES_PER_SEC  leak heap memory from leak_heap_bytes()\n"
      "                             (suffix k, m or g for KiB, MiB, GiB)\n"
      "  --leak-timers N_PER_SEC    start timers that are never stopped, from\n"
      "                             leak_timer_start(), callback "
      "leaked_timer_cb\n"
      "                             (decimals allowed: 0.5 is one every 2 s)\n"
      "  --leak-conns N_PER_SEC     open connections to the echo server that\n"
      "                             are never closed, from "
      "leak_connection_open()\n"
      "  --hold BYTES               keep that much heap from the start, from\n"
      "                             hold_cache_fill() (not a leak: it stays "
      "flat)\n"
      "  --swing BYTES              grow a buffer to that size and back to 0\n"
      "                             every 10 s, from swing_grow() (not a "
      "leak)\n"
      "  --timer-churn N_PER_SEC    start timers that run once after 1-2 s "
      "and\n"
      "                             close, from churn_timer_start() (not a "
      "leak)\n"
      "  --duration SECONDS         exit cleanly after this long (default: "
      "run\n"
      "                             until SIGINT or SIGTERM)\n"
      "  --help                     this text\n",
      argv0, DEFAULT_ECHO_PORT);
}

/* Parses a decimal number with an optional binary suffix (when `suffixes`).
 * Returns 0, or -1 when s is not such a number or exceeds max. */
static int parse_u64(const char* s, int suffixes, uint64_t max, uint64_t* out) {
  char* end;
  unsigned long long v;
  unsigned shift = 0;

  if (s == NULL || *s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0)
    return -1;
  if (suffixes && *end != '\0' && end[1] == '\0') {
    switch (*end) {
      case 'k':
      case 'K':
        shift = 10;
        end++;
        break;
      case 'm':
      case 'M':
        shift = 20;
        end++;
        break;
      case 'g':
      case 'G':
        shift = 30;
        end++;
        break;
      default:
        break;
    }
  }
  if (*end != '\0' || v > (max >> shift))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

/* A decimal rate with up to three decimals ("0.5"), in thousandths.
 * Returns 0, or -1 when s is not such a number or exceeds max (per
 * second). */
static int parse_milli(const char* s, uint64_t max, uint64_t* out) {
  uint64_t whole;
  uint64_t frac = 0;
  int digits = 0;
  const char* dot = s != NULL ? strchr(s, '.') : NULL;
  char buf[32];

  if (s == NULL || dot == NULL)
    return parse_u64(s, 0, max, &whole) == 0 ? (*out = whole * 1000, 0) : -1;
  if ((size_t)(dot - s) >= sizeof(buf))
    return -1;
  memcpy(buf, s, (size_t)(dot - s));
  buf[dot - s] = '\0';
  if (parse_u64(buf, 0, max, &whole) != 0)
    return -1;
  for (s = dot + 1; *s != '\0'; s++, digits++) {
    if (*s < '0' || *s > '9' || digits == 3)
      return -1;
    frac = frac * 10 + (uint64_t)(*s - '0');
  }
  if (digits == 0)
    return -1;
  for (; digits < 3; digits++)
    frac *= 10;
  *out = whole * 1000 + frac;
  return 0;
}

/* Fills opts from argv. Returns 0 to run, 1 after --help, 2 on bad usage
 * (with a message on stderr). */
static int parse_args(int argc, char** argv) {
  static const struct {
    const char* name;
    uint64_t* value;
    int suffixes;
    uint64_t max;
  } flags[] = {
      {"--leak-heap", &opts.leak_heap, 1, MAX_HEAP_RATE},
      {"--leak-timers", &opts.leak_timers, 2, MAX_RATE},
      {"--leak-conns", &opts.leak_conns, 2, MAX_RATE},
      {"--hold", &opts.hold, 1, MAX_HEAP_RATE},
      {"--swing", &opts.swing, 1, MAX_HEAP_RATE},
      {"--timer-churn", &opts.timer_churn, 0, MAX_RATE},
      {"--duration", &opts.duration_s, 0, UINT64_C(1) << 32},
  };
  uint64_t port;
  size_t i;
  int a;

  for (a = 1; a < argc; a++) {
    const char* arg = argv[a];
    const char* value = NULL;
    const char* eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    int found = 0;

    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage(stdout, argv[0]);
      return 1;
    }
    if (eq != NULL)
      value = eq + 1;
    else if (a + 1 < argc)
      value = argv[a + 1];

    if (name_len == strlen("--echo-port") &&
        strncmp(arg, "--echo-port", name_len) == 0) {
      if (parse_u64(value, 0, 65535, &port) != 0)
        goto bad_value;
      opts.echo_port = (int)port;
      found = 1;
    }
    for (i = 0; !found && i < sizeof(flags) / sizeof(flags[0]); i++) {
      if (name_len != strlen(flags[i].name) ||
          strncmp(arg, flags[i].name, name_len) != 0)
        continue;
      /* suffixes: 1 for k/m/g, 2 for a decimal rate (in thousandths) */
      if (flags[i].suffixes == 2
              ? parse_milli(value, flags[i].max, flags[i].value) != 0
              : parse_u64(value, flags[i].suffixes, flags[i].max,
                          flags[i].value) != 0)
        goto bad_value;
      found = 1;
    }
    if (!found) {
      fprintf(stderr, "%s: unknown option %s (try --help)\n", argv[0], arg);
      return 2;
    }
    if (eq == NULL)
      a++;
    continue;

  bad_value:
    fprintf(stderr, "%s: %.*s needs a number%s, got %s\n", argv[0],
            (int)name_len, arg,
            strncmp(arg, "--leak-heap", name_len) == 0 ||
                    strncmp(arg, "--hold", name_len) == 0 ||
                    strncmp(arg, "--swing", name_len) == 0
                ? " (k, m, g allowed)"
                : "",
            value ? value : "nothing");
    return 2;
  }
  return 0;
}

/* ---- the echo server ---------------------------------------------------- */

static void on_echo_closed(uv_handle_t* handle) {
  echo_conn_t* c = (echo_conn_t*)handle;

  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    echo_conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  echo_conn_count--;
  free(c);
}

static void on_echo_alloc(uv_handle_t* handle, size_t suggested,
                          uv_buf_t* buf) {
  buf->base = malloc(suggested);
  buf->len = buf->base != NULL ? suggested : 0;
}

static void on_echo_written(uv_write_t* req, int status) {
  echo_write_t* w = (echo_write_t*)req;

  free(w->data);
  free(w);
}

static void on_echo_read(uv_stream_t* stream, ssize_t nread,
                         const uv_buf_t* buf) {
  echo_write_t* w;
  uv_buf_t out;

  if (nread <= 0) {
    free(buf->base);
    if (nread < 0 && !uv_is_closing((uv_handle_t*)stream))
      uv_close((uv_handle_t*)stream, on_echo_closed);
    return;
  }
  echo_bytes += (uint64_t)nread;
  w = malloc(sizeof(*w));
  if (w == NULL) {
    free(buf->base);
    uv_close((uv_handle_t*)stream, on_echo_closed);
    return;
  }
  w->data = buf->base;
  out = uv_buf_init(buf->base, (unsigned int)nread);
  if (uv_write(&w->req, stream, &out, 1, on_echo_written) != 0) {
    free(w->data);
    free(w);
    uv_close((uv_handle_t*)stream, on_echo_closed);
  }
}

static void on_echo_connection(uv_stream_t* server, int status) {
  static int reported;
  echo_conn_t* c;

  if (status == 0) {
    c = calloc(1, sizeof(*c));
    if (c == NULL)
      status = UV_ENOMEM;
  }
  if (status != 0) {
    /* Most likely out of file descriptors (--leak-conns does that in the
     * end): say it once and keep serving. */
    if (!reported++)
      printf("echo: cannot accept a connection: %s\n", uv_strerror(status));
    return;
  }
  uv_tcp_init(loop, &c->tcp);
  c->next = echo_conns;
  if (echo_conns != NULL)
    echo_conns->prev = c;
  echo_conns = c;
  echo_conn_count++;
  if (uv_accept(server, (uv_stream_t*)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t*)&c->tcp, on_echo_alloc, on_echo_read) != 0)
    uv_close((uv_handle_t*)&c->tcp, on_echo_closed);
}

static int echo_listen(void) {
  struct sockaddr_storage bound;
  int len = sizeof(bound);
  int rc;

  uv_ip4_addr("127.0.0.1", opts.echo_port, &echo_addr);
  uv_tcp_init(loop, &echo_server);
  rc = uv_tcp_bind(&echo_server, (const struct sockaddr*)&echo_addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t*)&echo_server, 128, on_echo_connection);
  if (rc == 0)
    rc = uv_tcp_getsockname(&echo_server, (struct sockaddr*)&bound, &len);
  if (rc != 0) {
    fprintf(stderr, "uv-pprof-demo: echo server on 127.0.0.1:%d: %s\n",
            opts.echo_port, uv_strerror(rc));
    return rc;
  }
  echo_addr.sin_port = ((struct sockaddr_in*)&bound)->sin_port;
  return 0;
}

/* ---- light work -----------------------------------------------------------
 */

/* How late the work timer fired in this report's period, in µs: the
 * status line shows its p99, so that a long run shows whether the host's
 * own timers ever suffer (test/soak.py reads it). */
#define LATE_MAX (REPORT_TICK_MS / WORK_TICK_MS + 64)
static uint64_t late_us[LATE_MAX];
static size_t nlate;
static uint64_t work_last_ns;

static int compare_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a;
  uint64_t y = *(const uint64_t*)b;

  return (x > y) - (x < y);
}

/* FNV-1a over a small buffer: a little CPU for the CPU profile to see. */
static void on_work_tick(uv_timer_t* timer) {
  uint32_t h = 2166136261u;
  uint64_t now = uv_hrtime();
  size_t i;

  if (work_last_ns != 0 && nlate < LATE_MAX) {
    uint64_t gap = now - work_last_ns;
    uint64_t due = (uint64_t)WORK_TICK_MS * 1000000;
    late_us[nlate++] = gap > due ? (gap - due) / 1000 : 0;
  }
  work_last_ns = now;

  work_buf[work_hash % sizeof(work_buf)]++;
  for (i = 0; i < sizeof(work_buf); i++)
    h = (h ^ work_buf[i]) * 16777619u;
  work_hash = h;
}

/* Allocates and frees a few blocks: traffic for the allocs profile that
 * leaves nothing behind in the heap profile. */
static void on_churn_tick(uv_timer_t* timer) {
  void* blocks[8];
  size_t i;

  for (i = 0; i < 8; i++) {
    blocks[i] = malloc(256u << (i % 6));
    if (blocks[i] != NULL)
      memset(blocks[i], (int)i, 256u << (i % 6));
  }
  for (i = 0; i < 8; i++)
    free(blocks[i]);
}

static void on_report_tick(uv_timer_t* timer) {
  uint64_t p99 = 0;

  if (nlate > 0) {
    qsort(late_us, nlate, sizeof(late_us[0]), compare_u64);
    p99 = late_us[nlate * 99 / 100];
  }
  printf("[%5" PRIu64 " s] echo: %" PRIu64 " connections, %" PRIu64
         " bytes echoed; leaked: %" PRIu64 " KiB heap, %" PRIu64
         " timers, %" PRIu64 " connections; work timer late p99 %" PRIu64
         " us\n",
         (uv_now(loop) - leak_start_ms + 500) / 1000, echo_conn_count,
         echo_bytes, heap_leaked >> 10, timers_leaked, conns_leaked, p99);
  nlate = 0;
}

/* ---- the leaks ------------------------------------------------------------
 */

static void on_close_free(uv_handle_t* handle) {
  free(handle);
}

/* Allocates `size` bytes (at least a pointer's worth), writes to every byte so
 * that the memory counts in RSS, and never frees it. What counts as leaked
 * is the block's usable size, the bytes the allocator gave (jemalloc rounds
 * ~100 KiB up to 112 KiB, and its profiles count those): --leak-heap is the
 * rate at which the program's memory grows, as a profile shows it. Returns 0
 * or UV_ENOMEM. */
int leak_heap_bytes(size_t size) {
  leak_block_t* b;

  if (size < sizeof(*b))
    size = sizeof(*b);
  b = malloc(size);
  if (b == NULL)
    return UV_ENOMEM;
  size = malloc_usable_size(b);
  memset(b, 0xA5, size);
  b->next = leak_blocks;
  leak_blocks = b;
  heap_leaked += size;
  return 0;
}

/* The callback of every leaked timer: global, so that the goroutine profile
 * names it. */
void leaked_timer_cb(uv_timer_t* timer) {
  leaked_timer_fires++;
}

/* Starts a 1 s repeating timer that nobody ever stops or closes. Returns 0 or
 * a negative libuv code. */
int leak_timer_start(void) {
  leaked_timer_t* t = malloc(sizeof(*t));
  int rc;

  if (t == NULL)
    return UV_ENOMEM;
  uv_timer_init(loop, &t->timer);
  rc = uv_timer_start(&t->timer, leaked_timer_cb, 1000, 1000);
  if (rc != 0) {
    uv_close((uv_handle_t*)&t->timer, on_close_free);
    return rc;
  }
  t->next = leaked_timers;
  leaked_timers = t;
  timers_leaked++;
  return 0;
}

static void on_leaked_conn_alloc(uv_handle_t* handle, size_t suggested,
                                 uv_buf_t* buf) {
  *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_leaked_conn_read(uv_stream_t* stream, ssize_t nread,
                                const uv_buf_t* buf) {
  /* The echo comes back and is dropped. On EOF or error the handle stays
   * open anyway: that is the leak. */
  if (nread < 0)
    uv_read_stop(stream);
}

static void on_leaked_conn(uv_connect_t* req, int status) {
  leaked_conn_t* c = req->data;
  uv_buf_t buf = uv_buf_init(greeting, sizeof(greeting) - 1);

  if (status != 0) {
    if (status != UV_ECANCELED && !conn_leak_failed++)
      printf("leak-conns: connect failed: %s; no more connections\n",
             uv_strerror(status));
    return;
  }
  if (uv_write(&c->write, (uv_stream_t*)&c->tcp, &buf, 1, NULL) == 0)
    uv_read_start((uv_stream_t*)&c->tcp, on_leaked_conn_alloc,
                  on_leaked_conn_read);
}

/* Opens a connection to our own echo server, says hello, and never closes
 * it. Returns 0 or a negative libuv code (UV_EMFILE in the end). */
int leak_connection_open(void) {
  leaked_conn_t* c = calloc(1, sizeof(*c));
  int rc;

  if (c == NULL)
    return UV_ENOMEM;
  uv_tcp_init(loop, &c->tcp);
  c->connect.data = c;
  rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr*)&echo_addr,
                      on_leaked_conn);
  if (rc != 0) {
    uv_close((uv_handle_t*)&c->tcp, on_close_free);
    return rc;
  }
  c->next = leaked_conns;
  leaked_conns = c;
  conns_leaked++;
  return 0;
}

/* How many of `rate` per second are due by now, minus those already done. */
static uint64_t due(uint64_t rate, uint64_t done) {
  uint64_t elapsed = uv_now(loop) - leak_start_ms;
  uint64_t target = rate / 1000 * elapsed + rate % 1000 * elapsed / 1000;
  return target > done ? target - done : 0;
}

/* The same for a rate in thousandths per second. */
static uint64_t due_milli(uint64_t milli, uint64_t done) {
  uint64_t elapsed = uv_now(loop) - leak_start_ms;
  uint64_t target =
      milli / 1000 * elapsed / 1000 + milli % 1000 * elapsed / 1000000;
  return target > done ? target - done : 0;
}

/* Every LEAK_TICK_MS: catch each leak up with its rate. A failure stops that
 * leak (with one line on stdout); the others go on. */
static void on_leak_tick(uv_timer_t* timer) {
  uint64_t n;
  int rc;

  if (opts.leak_heap && !heap_leak_failed) {
    heap_pending += due(opts.leak_heap, heap_leaked + heap_pending);
    if (heap_pending >= LEAK_MIN_BLOCK) {
      rc = leak_heap_bytes((size_t)heap_pending);
      heap_pending = 0;
      if (rc != 0 && !heap_leak_failed++)
        printf("leak-heap: %s; no more heap leaks\n", uv_strerror(rc));
    }
  }
  if (opts.leak_timers && !timer_leak_failed) {
    for (n = due_milli(opts.leak_timers, timers_leaked); n > 0; n--) {
      rc = leak_timer_start();
      if (rc != 0 && !timer_leak_failed++) {
        printf("leak-timers: %s; no more timer leaks\n", uv_strerror(rc));
        break;
      }
    }
  }
  if (opts.leak_conns && !conn_leak_failed) {
    for (n = due_milli(opts.leak_conns, conns_leaked); n > 0; n--) {
      rc = leak_connection_open();
      if (rc != 0 && !conn_leak_failed++) {
        printf("leak-conns: %s after %" PRIu64
               " connections; no more "
               "connection leaks\n",
               uv_strerror(rc), conns_leaked);
        break;
      }
    }
  }
}

/* ---- memory and timers that are not leaks ---------------------------------
 */

/* Keeps `bytes` of heap in 1 MiB blocks, every byte written (resident), as
 * a cache filled at start and never grown would. Returns 0 or UV_ENOMEM. */
int hold_cache_fill(uint64_t bytes) {
  for (; bytes > 0; bytes -= bytes < BLOCK ? bytes : BLOCK) {
    leak_block_t* b = malloc(BLOCK);
    if (b == NULL)
      return UV_ENOMEM;
    memset(b, 0x5A, BLOCK);
    b->next = held_blocks;
    held_blocks = b;
  }
  return 0;
}

/* One more 1 MiB block of the swinging buffer. Returns 0 or UV_ENOMEM. */
int swing_grow(void) {
  leak_block_t* b = malloc(BLOCK);

  if (b == NULL)
    return UV_ENOMEM;
  memset(b, 0x3C, BLOCK);
  b->next = swing_blocks;
  swing_blocks = b;
  swing_count++;
  return 0;
}

static void swing_shrink(void) {
  leak_block_t* b = swing_blocks;

  swing_blocks = b->next;
  swing_count--;
  free(b);
}

static void on_churned_close(uv_handle_t* handle) {
  churned_timer_t* t = (churned_timer_t*)handle;

  if (t->prev != NULL)
    t->prev->next = t->next;
  else
    churned_timers = t->next;
  if (t->next != NULL)
    t->next->prev = t->prev;
  free(t);
}

/* Runs once, then closes its timer: a timer that comes and goes. */
void churned_timer_cb(uv_timer_t* timer) {
  uv_close((uv_handle_t*)timer, on_churned_close);
}

/* Starts a timer that runs once after due_ms and closes itself. Returns 0
 * or a negative libuv code. */
int churn_timer_start(uint64_t due_ms) {
  churned_timer_t* t = calloc(1, sizeof(*t));

  if (t == NULL)
    return UV_ENOMEM;
  uv_timer_init(loop, &t->timer);
  uv_timer_start(&t->timer, churned_timer_cb, due_ms, 0);
  t->next = churned_timers;
  if (churned_timers != NULL)
    churned_timers->prev = t;
  churned_timers = t;
  timers_churned++;
  return 0;
}

/* Every LIFE_TICK_MS: the swinging buffer follows a triangle between 0 and
 * --swing over SWING_PERIOD_MS; --timer-churn timers are started to their
 * rate, each due after 1 to 2 s. */
static void on_life_tick(uv_timer_t* timer) {
  uint64_t phase = (uv_now(loop) - leak_start_ms) % SWING_PERIOD_MS;
  uint64_t half = SWING_PERIOD_MS / 2;
  uint64_t level = phase < half ? phase : SWING_PERIOD_MS - phase;
  uint64_t target = opts.swing / BLOCK * level / half;
  uint64_t n;

  while (swing_count < target && swing_grow() == 0)
    ;
  while (swing_count > target)
    swing_shrink();
  for (n = due(opts.timer_churn, timers_churned); n > 0; n--)
    if (churn_timer_start(1000 + timers_churned * 397 % 1000) != 0)
      break;
}

/* ---- start and shutdown ---------------------------------------------------
 */

static void close_if_open(uv_handle_t* handle, uv_close_cb cb) {
  if (handle->loop != NULL && !uv_is_closing(handle))
    uv_close(handle, cb);
}

/* Stops uv_pprof and closes every handle of ours, so that uv_run() returns
 * and uv_loop_close() succeeds. */
static void demo_shutdown(const char* why) {
  echo_conn_t* c;
  leaked_timer_t* t;
  leaked_conn_t* lc;
  churned_timer_t* ct;
  int rc;

  if (shutting_down)
    return;
  shutting_down = 1;
  on_report_tick(NULL);
  printf("%s: shutting down\n", why);
  rc = uv_pprof_stop(loop);
  if (rc != 0)
    fprintf(stderr, "uv-pprof-demo: uv_pprof_stop: %s\n", uv_strerror(rc));

  close_if_open((uv_handle_t*)&echo_server, NULL);
  close_if_open((uv_handle_t*)&work_timer, NULL);
  close_if_open((uv_handle_t*)&churn_timer, NULL);
  close_if_open((uv_handle_t*)&report_timer, NULL);
  close_if_open((uv_handle_t*)&leak_timer, NULL);
  close_if_open((uv_handle_t*)&life_timer, NULL);
  /* Unlinked by their close callbacks, later: the list stays walkable. */
  for (ct = churned_timers; ct != NULL; ct = ct->next)
    close_if_open((uv_handle_t*)&ct->timer, on_churned_close);
  close_if_open((uv_handle_t*)&duration_timer, NULL);
  close_if_open((uv_handle_t*)&sigint_handle, NULL);
  close_if_open((uv_handle_t*)&sigterm_handle, NULL);
  for (c = echo_conns; c != NULL; c = c->next)
    close_if_open((uv_handle_t*)&c->tcp, on_echo_closed);
  /* The leaked handles stay on their lists (freed at exit) so that nothing
   * is freed while a callback may still use it. */
  for (t = leaked_timers; t != NULL; t = t->next)
    close_if_open((uv_handle_t*)&t->timer, NULL);
  for (lc = leaked_conns; lc != NULL; lc = lc->next)
    close_if_open((uv_handle_t*)&lc->tcp, NULL);
}

static void on_signal(uv_signal_t* handle, int signum) {
  demo_shutdown(signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_duration(uv_timer_t* timer) {
  char why[64];

  snprintf(why, sizeof(why), "%" PRIu64 " s elapsed", opts.duration_s);
  demo_shutdown(why);
}

/* Once the loop is closed: frees what the leaks kept, so that a leak checker
 * sees a clean exit. */
static void free_leftovers(void) {
  while (leaked_timers != NULL) {
    leaked_timer_t* t = leaked_timers;
    leaked_timers = t->next;
    free(t);
  }
  while (leaked_conns != NULL) {
    leaked_conn_t* c = leaked_conns;
    leaked_conns = c->next;
    free(c);
  }
  while (leak_blocks != NULL) {
    leak_block_t* b = leak_blocks;
    leak_blocks = b->next;
    free(b);
  }
  while (held_blocks != NULL) {
    leak_block_t* b = held_blocks;
    held_blocks = b->next;
    free(b);
  }
  while (swing_blocks != NULL)
    swing_shrink();
}

typedef int (*mallctl_fn)(const char*, void*, size_t*, void*, size_t);

/* 1 when jemalloc is in the process with profiling on (heap profiles then
 * have samples), 0 otherwise. */
static int heap_profiling_on(void) {
  mallctl_fn mallctl;
  _Bool on = 0;
  size_t len = sizeof(on);

  mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
  if (mallctl == NULL || mallctl("opt.prof", &on, &len, NULL, 0) != 0)
    return 0;
  return on;
}

static void print_banner(const char* argv0, int pprof_rc) {
  char url[256];
  int port = ntohs(echo_addr.sin_port);

  printf("uv-pprof-demo (pid %d), libuv %s\n", (int)getpid(),
         uv_version_string());
  printf("  echo server   tcp://127.0.0.1:%d (every byte sent comes back)\n",
         port);
  printf(
      "  timers        every %d ms: hash 4 KiB; every %d ms: malloc/free "
      "churn; every %d s: status line\n",
      WORK_TICK_MS, CHURN_TICK_MS, REPORT_TICK_MS / 1000);
  if (opts.leak_heap)
    printf("  leak heap     %" PRIu64 " bytes/s from leak_heap_bytes()\n",
           opts.leak_heap);
  if (opts.leak_timers)
    printf(
        "  leak timers   %g/s from leak_timer_start(), callback "
        "leaked_timer_cb\n",
        (double)opts.leak_timers / 1000);
  if (opts.leak_conns)
    printf(
        "  leak conns    %g/s to the echo server from "
        "leak_connection_open()\n",
        (double)opts.leak_conns / 1000);
  if (opts.hold)
    printf("  hold          %" PRIu64 " bytes from hold_cache_fill()\n",
           opts.hold);
  if (opts.swing)
    printf("  swing         0 to %" PRIu64
           " bytes and back every 10 s, from swing_grow()\n",
           opts.swing);
  if (opts.timer_churn)
    printf("  timer churn   %" PRIu64
           "/s from churn_timer_start(), each closed after 1-2 s\n",
           opts.timer_churn);
  if (opts.duration_s)
    printf("  duration      %" PRIu64 " s, then a clean exit\n",
           opts.duration_s);
  else
    printf("  duration      until Ctrl-C (SIGINT) or SIGTERM\n");

  if (uv_pprof_url(loop, url, sizeof(url)) != 0) {
    if (pprof_rc != 0)
      printf("\npprof failed to start (%s); the demo runs without it.\n",
             uv_strerror(pprof_rc));
    else
      printf(
          "\npprof is off. Turn it on with UV_PPROF=1 (port %d), "
          "UV_PPROF=PORT or UV_PPROF=HOST:PORT:\n  UV_PPROF=1 %s\n",
          UV_PPROF_DEFAULT_PORT, argv0);
    return;
  }
  printf("\npprof: %s\nTry:\n", url);
  printf("  curl -s %s\n", url);
  printf("  curl -s '%sgoroutine?debug=1' | head -1\n", url);
  if (opts.leak_timers)
    printf("  curl -s '%sgoroutine?debug=2' | grep -c leaked_timer_cb\n", url);
  printf("  curl -s '%sheap?debug=1' | head -30\n", url);
  printf(
      "  curl -s -o heap1.prof %sheap; sleep 30; "
      "curl -s -o heap2.prof %sheap\n",
      url, url);
  printf("  go tool pprof -top -base heap1.prof heap2.prof\n");
  printf("  go tool pprof -top '%sprofile?seconds=10'\n", url);
  printf("  go tool pprof -http=:8080 %sheap\n", url);
  if (!heap_profiling_on())
    printf(
        "Heap profiles need jemalloc with profiling on, e.g.:\n"
        "  LD_PRELOAD=libjemalloc.so.2 "
        "MALLOC_CONF=prof:true,prof_accum:true %s ...\n",
        argv0);
}

int main(int argc, char** argv) {
  int pprof_rc;
  int rc;

  setvbuf(stdout, NULL, _IOLBF, 0);
  rc = parse_args(argc, argv);
  if (rc != 0)
    return rc == 1 ? 0 : 2;
  signal(SIGPIPE, SIG_IGN);

  rc = uv_loop_init(loop);
  if (rc != 0) {
    fprintf(stderr, "uv-pprof-demo: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }
  if (echo_listen() != 0) {
    uv_close((uv_handle_t*)&echo_server, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }

  uv_timer_init(loop, &work_timer);
  uv_timer_start(&work_timer, on_work_tick, WORK_TICK_MS, WORK_TICK_MS);
  uv_timer_init(loop, &churn_timer);
  uv_timer_start(&churn_timer, on_churn_tick, CHURN_TICK_MS, CHURN_TICK_MS);
  uv_timer_init(loop, &report_timer);
  uv_timer_start(&report_timer, on_report_tick, REPORT_TICK_MS, REPORT_TICK_MS);
  leak_start_ms = uv_now(loop);
  if (opts.leak_heap || opts.leak_timers || opts.leak_conns) {
    uv_timer_init(loop, &leak_timer);
    uv_timer_start(&leak_timer, on_leak_tick, LEAK_TICK_MS, LEAK_TICK_MS);
  }
  if (opts.hold && hold_cache_fill(opts.hold) != 0)
    printf("hold: out of memory; holding less\n");
  if (opts.swing || opts.timer_churn) {
    uv_timer_init(loop, &life_timer);
    uv_timer_start(&life_timer, on_life_tick, LIFE_TICK_MS, LIFE_TICK_MS);
  }
  if (opts.duration_s) {
    uv_timer_init(loop, &duration_timer);
    uv_timer_start(&duration_timer, on_duration, opts.duration_s * 1000, 0);
  }
  uv_signal_init(loop, &sigint_handle);
  uv_signal_start(&sigint_handle, on_signal, SIGINT);
  uv_signal_init(loop, &sigterm_handle);
  uv_signal_start(&sigterm_handle, on_signal, SIGTERM);

  /* The one line a host needs. It prints its own line to stderr on failure;
   * the host keeps running either way. */
  pprof_rc = uv_pprof_start(loop);
  print_banner(argv[0], pprof_rc);

  uv_run(loop, UV_RUN_DEFAULT);

  rc = uv_loop_close(loop);
  free_leftovers();
  if (rc != 0) {
    fprintf(stderr, "uv-pprof-demo: uv_loop_close: %s; open handles:\n",
            uv_strerror(rc));
    uv_print_all_handles(loop, stderr);
    return 1;
  }
  printf("clean exit: every handle closed, uv_loop_close() == 0\n");
  return 0;
}
