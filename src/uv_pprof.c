/* The public entry points: options and the UV_PPROF / UV_PPROF_TOKEN
 * environment, validation, the banner, and which registered loop serves.
 * Arguments are validated here once; the server trusts them. The loops
 * themselves are loops.c's registry. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "track/track.h"

/* The one server, on the first loop started with uv_pprof_start, and its
 * timeline. mu serialises start and stop. */
static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static uv_loop_t* serving;
static uv_pprof__server_t* server;
static uv_pprof__timeline_t* timeline;

/* The process-wide state the worker's jobs use that a start sets and a stop
 * clears: the history's budget and the flight recorder's settings. A stop
 * never waits for a job still running, so the change is applied under the
 * workers' lock (apply_wanted through uv_pprof__worker_exclusive), from
 * `want` (under want_mu, a lock under mu). */
static uv_mutex_t want_mu;
static struct {
  size_t history; /* bytes; 0: no history */
  char* dump_dir; /* NULL: no flight recorder */
  unsigned dump_mb;
  unsigned dump_percent;
} want;
static void apply_wanted(void* arg);
static uv_pprof__exclusive_t apply_call = {apply_wanted, NULL, NULL, 0};

/* fork(): every lock a thread of uv_pprof's may hold is taken before and
 * given back after, so that the child inherits none held: this file's,
 * the registry's, the walks', the own-set's, the worker's (the order every
 * other path takes them in; the sampler has handlers of its own). In the
 * child they are made anew (libuv's mutexes check their owner, and the
 * child's thread id is not the parent's), and the server's sockets are
 * replaced (server.c): it stops itself the first time the child runs its
 * loop, never serves what it inherited, never accepts on the parent's
 * socket. */
static void on_fork_prepare(void) {
  uv_mutex_lock(&mu);
  uv_pprof__loops_fork_prepare();
  uv_pprof__handles_fork_prepare();
  uv_pprof__own_lock();
  if (server != NULL)
    uv_pprof__worker_fork_prepare(uv_pprof__server_worker(server));
  uv_mutex_lock(&want_mu);
}

static void on_fork_parent(void) {
  uv_mutex_unlock(&want_mu);
  if (server != NULL)
    uv_pprof__worker_fork_parent(uv_pprof__server_worker(server));
  uv_pprof__own_unlock();
  uv_pprof__handles_fork_parent();
  uv_pprof__loops_fork_parent();
  uv_mutex_unlock(&mu);
}

static void on_fork_child(void) {
  if (server != NULL)
    uv_pprof__server_fork_child(server);
  uv_pprof__own_fork_child();
  uv_pprof__handles_fork_child();
  uv_pprof__loops_fork_child();
  uv_mutex_init(&want_mu);
  uv_mutex_init(&mu);
}

/* A token guarding a non-loopback address is this long at least: at the
 * server's pace of 10 refusals a second, 16 random lowercase letters take
 * some 10^14 years to guess. */
#define MIN_PUBLIC_TOKEN 16

static void init_once(void) {
  if (uv_mutex_init(&mu) != 0 || uv_mutex_init(&want_mu) != 0 ||
      pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child) != 0)
    abort();
}

/* config.on_forked: the inherited server of a fork's child, stopped on the
 * child's loop thread. */
static void on_forked(uv_loop_t* loop) {
  uv_pprof_stop(loop);
}

void uv_pprof_options_init(uv_pprof_options_t* options) {
  memset(options, 0, sizeof(*options));
  options->host = "127.0.0.1";
  options->port = UV_PPROF_DEFAULT_PORT;
  options->max_connections = 64;
  options->idle_timeout_ms = 30000;
  options->request_timeout_ms = 10000;
  options->write_timeout_ms = 60000;
  options->history_kb = UV_PPROF__HISTORY_DEFAULT_MB * 1024;
  options->stall_ms = UV_PPROF__STALL_DEFAULT_MS;
  options->stall_report_s = UV_PPROF__STALL_REPORT_DEFAULT_S;
}

/* ---- parsing ----------------------------------------------------------- */

static int parse_port(const char* s, size_t len, int* port) {
  int p = 0;
  size_t i;

  if (len == 0 || len > 5)
    return -1;
  for (i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    p = p * 10 + (s[i] - '0');
  }
  if (p > 65535)
    return -1;
  *port = p;
  return 0;
}

/* Fills addr from a host literal ("localhost", IPv4, IPv6 without
 * brackets) and a port. No name resolution: it would block the loop. */
static int make_addr(const char* host, int port,
                     struct sockaddr_storage* addr) {
  memset(addr, 0, sizeof(*addr));
  if (strcmp(host, "localhost") == 0)
    host = "127.0.0.1";
  if (uv_ip4_addr(host, port, (struct sockaddr_in*)addr) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6*)addr) == 0)
    return 0;
  return UV_EINVAL;
}

/* UV_PPROF_TIMELINE: whole seconds, 0 (off) to the maximum. */
static int parse_seconds(const char* s, unsigned* out) {
  unsigned long v = 0;
  size_t i;

  for (i = 0; s[i] != '\0'; i++) {
    if (!isdigit((unsigned char)s[i]) || i >= 6)
      return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v > UV_PPROF__TIMELINE_MAX_SECONDS)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* UV_PPROF_HISTORY_MB: MiB, with up to three decimals, into KiB (at most
 * 4 GiB). */
static int parse_mib(const char* s, unsigned* kib) {
  uint64_t milli = 0;
  int decimals = -1;
  size_t i;

  for (i = 0; s[i] != '\0'; i++) {
    if (s[i] == '.' && decimals < 0 && i > 0) {
      decimals = 0;
      continue;
    }
    if (!isdigit((unsigned char)s[i]) || decimals == 3 || i >= 12)
      return -1;
    milli = milli * 10 + (uint64_t)(s[i] - '0');
    if (decimals >= 0)
      decimals++;
  }
  if (i == 0 || decimals == 0)
    return -1;
  for (; decimals < 3; decimals++)
    milli *= 10;
  if (milli > (uint64_t)4096 * 1000)
    return -1;
  *kib = (unsigned)(milli * 1024 / 1000);
  return 0;
}

/* UV_PPROF_DUMP_RSS: "<MiB>" (1 to 2^20) or "<percent>%" (1 to 100). */
static int parse_line(const char* s, unsigned* mib, unsigned* percent) {
  unsigned long v = 0;
  size_t i;

  for (i = 0; isdigit((unsigned char)s[i]); i++) {
    v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > (1ul << 20))
      return -1;
  }
  if (i == 0 || v == 0)
    return -1;
  if (s[i] == '%' && s[i + 1] == '\0' && v <= 100) {
    *percent = (unsigned)v;
    return 0;
  }
  if (s[i] != '\0')
    return -1;
  *mib = (unsigned)v;
  return 0;
}

/* A whole number from 0 to max: digits only. */
static int parse_uint(const char* s, unsigned long max, unsigned* out) {
  unsigned long v = 0;
  size_t i;

  if (s[0] == '\0')
    return -1;
  for (i = 0; s[i] != '\0'; i++) {
    if (!isdigit((unsigned char)s[i]) || i >= 10)
      return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* UV_PPROF_STALL_MS, UV_PPROF_STALL_REPORT_S, UV_PPROF_MUTEX: a bad value
 * is said once and the default kept (these only tune what is measured). */
static void env_uint(const char* name, unsigned min, unsigned long max,
                     const char* what, unsigned* value) {
  const char* v = getenv(name);
  unsigned parsed;

  if (v == NULL || v[0] == '\0')
    return;
  if (parse_uint(v, max, &parsed) == 0 && (parsed == 0 || parsed >= min)) {
    *value = parsed;
    return;
  }
  fprintf(stderr,
          "uv_pprof: %s=\"%s\" is not valid: expected %s from %u to %lu, "
          "or 0 (off); keeping %u\n",
          name, v, what, min, max, *value);
}

/* UV_PPROF: "1", "PORT", "HOST:PORT", "[V6]:PORT" or ":PORT". */
static int parse_env(const char* v, char* host, size_t host_size, int* port) {
  const char* colon;
  size_t hlen;

  if (strcmp(v, "1") == 0) {
    snprintf(host, host_size, "127.0.0.1");
    *port = UV_PPROF_DEFAULT_PORT;
    return 0;
  }
  if (parse_port(v, strlen(v), port) == 0) {
    snprintf(host, host_size, "127.0.0.1");
    return 0;
  }
  if (v[0] == '[') {
    const char* close = strchr(v, ']');
    if (close == NULL || close[1] != ':')
      return UV_EINVAL;
    hlen = (size_t)(close - v - 1);
    if (hlen == 0 || hlen >= host_size)
      return UV_EINVAL;
    memcpy(host, v + 1, hlen);
    host[hlen] = '\0';
    return parse_port(close + 2, strlen(close + 2), port) == 0 ? 0 : UV_EINVAL;
  }
  colon = strrchr(v, ':');
  if (colon == NULL || strchr(v, ':') != colon)
    return UV_EINVAL;
  hlen = (size_t)(colon - v);
  if (hlen >= host_size)
    return UV_EINVAL;
  if (hlen == 0) {
    snprintf(host, host_size, "0.0.0.0");
  } else {
    memcpy(host, v, hlen);
    host[hlen] = '\0';
  }
  return parse_port(colon + 1, strlen(colon + 1), port) == 0 ? 0 : UV_EINVAL;
}

/* ---- registry ---------------------------------------------------------- */

static void format_url(const struct sockaddr_storage* addr, char* buf,
                       size_t size) {
  char ip[64] = "";
  int port;

  if (addr->ss_family == AF_INET6) {
    const struct sockaddr_in6* a6 = (const struct sockaddr_in6*)addr;
    uv_ip6_name(a6, ip, sizeof(ip));
    port = ntohs(a6->sin6_port);
  } else {
    const struct sockaddr_in* a4 = (const struct sockaddr_in*)addr;
    uv_ip4_name(a4, ip, sizeof(ip));
    port = ntohs(a4->sin_port);
  }
  if (uv_pprof__is_loopback((const struct sockaddr*)addr))
    snprintf(buf, size, "http://localhost:%d/debug/pprof/", port);
  else if (addr->ss_family == AF_INET6)
    snprintf(buf, size, "http://[%s]:%d/debug/pprof/", ip, port);
  else
    snprintf(buf, size, "http://%s:%d/debug/pprof/", ip, port);
}

/* ---- API --------------------------------------------------------------- */

/* jemalloc's sampling is turned on when profiling is enabled but paused
 * (MALLOC_CONF=prof:true,prof_active:false, the configuration README.md
 * recommends); otherwise one line says why there is no heap profile. */
static void start_heap_profiling(int quiet) {
  uv_pprof__je_state_t st;
  const char* howto;

  uv_pprof__je_activate();
  uv_pprof__je_state(&st);
  howto = uv_pprof__je_howto(st.mode);
  if (howto != NULL && !quiet)
    fprintf(stderr, "uv_pprof: %s\n", howto);
}

/* Runs under the workers' lock, on whichever thread (see `want`). */
static void apply_wanted(void* arg) {
  size_t history;
  char* dir = NULL;
  unsigned mb;
  unsigned percent;
  int oom;

  (void)arg;
  uv_mutex_lock(&want_mu);
  history = want.history;
  if (want.dump_dir != NULL)
    dir = strdup(want.dump_dir);
  oom = want.dump_dir != NULL && dir == NULL;
  mb = want.dump_mb;
  percent = want.dump_percent;
  uv_mutex_unlock(&want_mu);
  uv_pprof__history_configure(history);
  uv_pprof__recorder_configure(dir, mb, percent);
  if (oom)
    fprintf(stderr, "uv_pprof: the flight recorder is off: out of memory\n");
  free(dir);
}

/* Sets `want` (dump_dir copied; NULL: off) and has it applied. */
static void set_wanted(size_t history, const char* dump_dir, unsigned mb,
                       unsigned percent) {
  char* dir = dump_dir != NULL && dump_dir[0] != '\0' ? strdup(dump_dir) : NULL;

  if (dump_dir != NULL && dump_dir[0] != '\0' && dir == NULL)
    fprintf(stderr, "uv_pprof: the flight recorder is off: out of memory\n");
  uv_mutex_lock(&want_mu);
  free(want.dump_dir);
  want.history = history;
  want.dump_dir = dir;
  want.dump_mb = mb;
  want.dump_percent = percent;
  uv_mutex_unlock(&want_mu);
  uv_pprof__worker_exclusive(&apply_call);
}

/* The timeline's history budget in bytes, when it can hold a snapshot;
 * otherwise one line says why there is none, and 0. */
static size_t history_budget(unsigned kib) {
  size_t budget = (size_t)kib * 1024;

  if (budget != 0 && budget < UV_PPROF__HISTORY_MIN) {
    fprintf(stderr,
            "uv_pprof: a history budget of %.3f MiB cannot hold one "
            "snapshot (at least %.2f MiB): history is off. Set "
            "UV_PPROF_HISTORY_MB (default %d) or options.history_kb\n",
            kib / 1024.0, UV_PPROF__HISTORY_MIN / 1048576.0,
            UV_PPROF__HISTORY_DEFAULT_MB);
    return 0;
  }
  return budget;
}

int uv_pprof_start_ex(uv_loop_t* loop, const uv_pprof_options_t* options) {
  uv_pprof_options_t defaults;
  uv_pprof__server_config_t cfg;
  uv_pprof__server_t* started = NULL;
  char url[128];
  int err;

  if (options == NULL) {
    uv_pprof_options_init(&defaults);
    options = &defaults;
  }
  if (loop == NULL) {
    fprintf(stderr, "uv_pprof: uv_pprof_start: loop is NULL\n");
    return UV_EINVAL;
  }
  memset(&cfg, 0, sizeof(cfg));
  if (options->port < 0 || options->port > 65535 || options->host == NULL ||
      make_addr(options->host, options->port, &cfg.addr) != 0) {
    fprintf(stderr,
            "uv_pprof: cannot listen on \"%s\" port %d: expected an IPv4 or "
            "IPv6 address (or localhost) and a port from 0 to 65535\n",
            options->host ? options->host : "(null)", options->port);
    return UV_EINVAL;
  }
  if (options->token != NULL) {
    cfg.token_len = strlen(options->token);
    if (cfg.token_len >= sizeof(cfg.token)) {
      fprintf(stderr, "uv_pprof: the token is longer than %zu bytes\n",
              sizeof(cfg.token) - 1);
      return UV_EINVAL;
    }
    memcpy(cfg.token, options->token, cfg.token_len);
  }
  if (options->timeline_seconds > UV_PPROF__TIMELINE_MAX_SECONDS) {
    fprintf(stderr, "uv_pprof: timeline_seconds %u is too long: at most %u\n",
            options->timeline_seconds, UV_PPROF__TIMELINE_MAX_SECONDS);
    return UV_EINVAL;
  }
  if ((options->stall_ms != 0 && options->stall_ms < UV_PPROF__STALL_MIN_MS) ||
      options->stall_ms > UV_PPROF__STALL_MAX_MS ||
      options->stall_report_s > UV_PPROF__STALL_REPORT_MAX_S) {
    fprintf(stderr,
            "uv_pprof: stall_ms must be 0 (off) or from %u to %u, "
            "stall_report_s from 0 to %u\n",
            UV_PPROF__STALL_MIN_MS, UV_PPROF__STALL_MAX_MS,
            UV_PPROF__STALL_REPORT_MAX_S);
    return UV_EINVAL;
  }
  if (options->max_connections == 0 || options->idle_timeout_ms == 0 ||
      options->request_timeout_ms == 0 || options->write_timeout_ms == 0) {
    fprintf(stderr,
            "uv_pprof: max_connections and the timeouts must be positive\n");
    return UV_EINVAL;
  }
  if (!uv_pprof__is_loopback((struct sockaddr*)&cfg.addr) &&
      cfg.token_len == 0) {
    fprintf(stderr,
            "uv_pprof: refusing to serve on non-loopback address %s without "
            "a token: set UV_PPROF_TOKEN (or options.token)\n",
            options->host);
    return UV_EACCES;
  }
  if (!uv_pprof__is_loopback((struct sockaddr*)&cfg.addr) &&
      cfg.token_len < MIN_PUBLIC_TOKEN) {
    fprintf(stderr,
            "uv_pprof: refusing to serve on non-loopback address %s with a "
            "token of %zu characters: it must have at least %d\n",
            options->host, cfg.token_len, MIN_PUBLIC_TOKEN);
    return UV_EINVAL;
  }
  cfg.max_connections = options->max_connections;
  cfg.idle_timeout_ms = options->idle_timeout_ms;
  cfg.request_timeout_ms = options->request_timeout_ms;
  cfg.write_timeout_ms = options->write_timeout_ms;
  cfg.on_forked = on_forked;

  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  if (uv_pprof__loops_registered(loop)) {
    uv_mutex_unlock(&mu);
    fprintf(stderr, "uv_pprof: already started on this loop\n");
    return UV_EBUSY;
  }
  if (server == NULL) {
    err = uv_pprof__server_start(loop, &cfg, &started);
    if (err != 0) {
      uv_mutex_unlock(&mu);
      fprintf(stderr, "uv_pprof: cannot listen on %s port %d: %s (%s)\n",
              options->host, options->port, uv_strerror(err), uv_err_name(err));
      return err;
    }
    uv_pprof__sampler_prepare();
  }
  err = uv_pprof__loops_add(loop, started != NULL, options->stall_ms,
                            options->stall_report_s);
  if (err != 0) {
    uv_mutex_unlock(&mu);
    if (started != NULL)
      uv_pprof__server_close(started);
    fprintf(stderr, "uv_pprof: cannot register the loop: %s\n",
            uv_strerror(err));
    return err;
  }
  if (started != NULL) {
    server = started;
    serving = loop;
    int recorder = options->dump_dir != NULL && options->dump_dir[0] != '\0';
    if (recorder && options->timeline_seconds == 0)
      fprintf(stderr,
              "uv_pprof: the flight recorder checks RSS at each timeline "
              "sample: set UV_PPROF_TIMELINE too (or options.timeline_seconds)"
              "; it is off\n");
    recorder = recorder && options->timeline_seconds > 0;
    set_wanted(
        options->timeline_seconds > 0 ? history_budget(options->history_kb) : 0,
        recorder ? options->dump_dir : NULL, options->dump_rss_mb,
        options->dump_rss_percent);
    if (options->timeline_seconds > 0 &&
        uv_pprof__timeline_start(
            loop, uv_pprof__server_worker(started), options->timeline_seconds,
            recorder ? uv_pprof__recorder_check : NULL, &timeline) != 0)
      fprintf(stderr, "uv_pprof: cannot start the timeline: out of memory\n");
  }
  uv_mutex_unlock(&mu);

  if (options->mutex_rate > 0 && uv_pprof__mutex_set_rate(options->mutex_rate))
    fprintf(stderr,
            "uv_pprof: mutex profiling needs libuv_pprof_track: "
            "LD_PRELOAD=libuv_pprof_track.so, or link it (see README)\n");
  /* Without the tracker the profile still works, minus creation stacks. */
  if (options->track_handles && uv_pprof__handles_track() != 0)
    fprintf(stderr,
            "uv_pprof: handle tracking needs libuv_pprof_track: "
            "LD_PRELOAD=libuv_pprof_track.so, or link it (see README)\n");
  if (started != NULL && !options->quiet) {
    struct sockaddr_storage bound;
    uv_pprof__server_address(started, &bound);
    format_url(&bound, url, sizeof(url));
    fprintf(stderr, "pprof enabled on %s\n", url);
  }
  if (started != NULL)
    start_heap_profiling(options->quiet);
  return 0;
}

int uv_pprof_start(uv_loop_t* loop) {
  uv_pprof_options_t options;
  const char* v = getenv("UV_PPROF");
  const char* token;
  const char* track;
  const char* seconds;
  const char* quiet;
  const char* history;
  const char* dump_dir;
  const char* dump_rss;
  char host[64];

  if (v == NULL || v[0] == '\0' || strcmp(v, "0") == 0)
    return 0;
  uv_pprof_options_init(&options);
  if (parse_env(v, host, sizeof(host), &options.port) != 0) {
    fprintf(stderr,
            "uv_pprof: UV_PPROF=\"%s\" is not valid: expected 1, PORT, "
            "HOST:PORT or [IPV6]:PORT (unset or 0 disables)\n",
            v);
    return UV_EINVAL;
  }
  options.host = host;
  token = getenv("UV_PPROF_TOKEN");
  if (token != NULL && token[0] != '\0')
    options.token = token;
  track = getenv("UV_PPROF_TRACK");
  options.track_handles = track != NULL && strstr(track, "handles") != NULL;
  quiet = getenv("UV_PPROF_QUIET");
  options.quiet = quiet != NULL && quiet[0] != '\0' && strcmp(quiet, "0") != 0;
  env_uint("UV_PPROF_STALL_MS", UV_PPROF__STALL_MIN_MS, UV_PPROF__STALL_MAX_MS,
           "milliseconds", &options.stall_ms);
  env_uint("UV_PPROF_STALL_REPORT_S", 1, UV_PPROF__STALL_REPORT_MAX_S,
           "seconds", &options.stall_report_s);
  env_uint("UV_PPROF_MUTEX", 1, INT32_MAX, "a sampling rate",
           &options.mutex_rate);
  seconds = getenv("UV_PPROF_TIMELINE");
  if (seconds != NULL && seconds[0] != '\0' &&
      parse_seconds(seconds, &options.timeline_seconds) != 0) {
    fprintf(stderr,
            "uv_pprof: UV_PPROF_TIMELINE=\"%s\" is not valid: expected whole "
            "seconds from 1 to %u (unset or 0: no timeline)\n",
            seconds, UV_PPROF__TIMELINE_MAX_SECONDS);
    return UV_EINVAL;
  }
  dump_dir = getenv("UV_PPROF_DUMP_DIR");
  dump_rss = getenv("UV_PPROF_DUMP_RSS");
  if (dump_dir != NULL && dump_dir[0] != '\0')
    options.dump_dir = dump_dir;
  if (dump_rss != NULL && dump_rss[0] != '\0' &&
      parse_line(dump_rss, &options.dump_rss_mb, &options.dump_rss_percent) !=
          0) {
    fprintf(stderr,
            "uv_pprof: UV_PPROF_DUMP_RSS=\"%s\" is not valid: expected MiB "
            "(such as 512) or a percentage of the cgroup's memory.max (such "
            "as 80%%)\n",
            dump_rss);
    return UV_EINVAL;
  }
  history = getenv("UV_PPROF_HISTORY_MB");
  if (history != NULL && history[0] != '\0' &&
      parse_mib(history, &options.history_kb) != 0) {
    fprintf(stderr,
            "uv_pprof: UV_PPROF_HISTORY_MB=\"%s\" is not valid: expected "
            "MiB from 0 to 4096, such as 8 or 0.5 (0: no history)\n",
            history);
    return UV_EINVAL;
  }
  return uv_pprof_start_ex(loop, &options);
}

int uv_pprof_stop(uv_loop_t* loop) {
  uv_pprof__server_t* s = NULL;
  uv_pprof__timeline_t* t = NULL;

  if (loop == NULL)
    return 0;
  /* Never started anywhere: touch nothing (not even the mutex). */
  if (!uv_pprof__loops_any())
    return 0;
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  if (uv_pprof__loops_remove(loop) != 0) {
    uv_mutex_unlock(&mu);
    return 0;
  }
  if (loop == serving) {
    s = server;
    t = timeline;
    server = NULL;
    timeline = NULL;
    serving = NULL;
  }
  uv_mutex_unlock(&mu);
  if (s != NULL)
    uv_pprof__server_close(s);
  if (t != NULL)
    uv_pprof__timeline_stop(t);
  if (s != NULL) /* the history dropped, the recorder off */
    set_wanted(0, NULL, 0, 0);
  return 0;
}

static uv_pprof__server_t* server_of(uv_loop_t* loop) {
  uv_pprof__server_t* s = NULL;

  if (!uv_pprof__loops_any())
    return NULL;
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  if (loop == serving)
    s = server;
  uv_mutex_unlock(&mu);
  return s;
}

int uv_pprof_address(uv_loop_t* loop, struct sockaddr_storage* addr) {
  uv_pprof__server_t* s = server_of(loop);

  if (s == NULL)
    return UV_ENOENT;
  uv_pprof__server_address(s, addr);
  return 0;
}

int uv_pprof_url(uv_loop_t* loop, char* buf, size_t size) {
  struct sockaddr_storage addr;
  char url[128];

  if (uv_pprof_address(loop, &addr) != 0)
    return UV_ENOENT;
  format_url(&addr, url, sizeof(url));
  if (strlen(url) >= size)
    return UV_ENOBUFS;
  memcpy(buf, url, strlen(url) + 1);
  return 0;
}

/* ---- before uv_loop_close (the interposers' hook: track/track.h) -------- */

static void count_handle(uv_handle_t* h, void* arg) {
  (*(size_t*)arg)++;
}

/* Whether the host still uses the loop, so that uv_loop_close() would fail
 * without uv_pprof too: a handle its walk shows (uv_pprof's are hidden), or
 * a request in flight while no connection of uv_pprof's could own it. */
static int host_uses(uv_loop_t* loop, uv_pprof__server_t* s) {
  size_t handles = 0;

  uv_walk(loop, count_handle, &handles);
  if (handles > 0)
    return 1;
  return uv_pprof__uvi_active_reqs(loop) > 0 &&
         (s == NULL || uv_pprof__server_connections(s) == 0);
}

UV_PPROF_EXTERN int uv_pprof_release_loop_v1(void* arg);

int uv_pprof_release_loop_v1(void* arg) {
  uv_loop_t* loop = arg;
  uv_pprof__server_t* s;
  int i;

  if (loop == NULL || !uv_pprof__loops_any() ||
      !uv_pprof__loops_registered(loop))
    return 0;
  /* Only this thread starts or stops uv_pprof on this loop: s stays. */
  s = server_of(loop);
  if (host_uses(loop, s))
    return 0;
  uv_pprof_stop(loop);
  /* Without host handles or requests an iteration runs nothing but
   * closing: uv_pprof's close callbacks (which cancel its writes). A close
   * callback that closes another handle needs one more; the bound is a
   * guard, two suffice. */
  for (i = 0; i < 16 && uv_pprof__uvi_closing(loop); i++)
    uv_run(loop, UV_RUN_NOWAIT);
  return 1;
}
