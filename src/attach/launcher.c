/* uv-pprof: runs a program with uv_pprof attached, without rebuilding it.
 *
 *   uv-pprof [--listen ADDR] [--heap] [--track] [--timeline SECONDS]
 *            [--token-file FILE] [--stall-ms MS] [--mutex RATE] [--quiet]
 *            -- PROGRAM [ARGS...]
 *
 * The options become the environment uv_pprof_start() reads (UV_PPROF,
 * UV_PPROF_TRACK, UV_PPROF_TIMELINE, UV_PPROF_TOKEN, UV_PPROF_STALL_MS,
 * UV_PPROF_MUTEX, UV_PPROF_QUIET), the
 * listen address is tried once here (a busy port or a bad address stops
 * before the program starts), and the launcher then execs PROGRAM, so its
 * exit status is the program's own: with libuv_pprof_attach preloaded, or,
 * for node (whose libuv is inside its binary), with the uv-pprof Node
 * package's register.js in NODE_OPTIONS. --heap preloads jemalloc with
 * profiling on; --track and --mutex preload the tracker (the mutex profile's
 * pthread_mutex_lock is in it). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "uv_pprof.h"

#define JEMALLOC "libjemalloc.so.2"
#define HEAP_CONF "prof:true,prof_accum:true"
#define MAX_TOKEN 255
#define MAX_TIMELINE 86400
#define MAX_STALL_MS 3600000
#define MAX_MUTEX_RATE 2147483647ul

static const char usage[] =
    "usage: uv-pprof [--listen ADDR] [--heap] [--track] [--timeline SECONDS]\n"
    "                [--token-file FILE] [--stall-ms MS] [--mutex RATE]\n"
    "                [--quiet] -- PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM with uv_pprof serving Go's /debug/pprof/ endpoints on the\n"
    "libuv loop it runs (its main loop; further loops are registered).\n"
    "\n"
    "  --listen ADDR        where to serve, as UV_PPROF: 1 (127.0.0.1:6060,\n"
    "                       the default), PORT, HOST:PORT, [IPV6]:PORT, :PORT\n"
    "  --heap               heap and allocs profiles: preload jemalloc with\n"
    "                       MALLOC_CONF=" HEAP_CONF
    "\n"
    "  --track              creation stacks of handles (goroutine profile):\n"
    "                       preload libuv_pprof_track, UV_PPROF_TRACK=handles\n"
    "  --timeline SECONDS   memory timeline every SECONDS (UV_PPROF_TIMELINE)\n"
    "  --token-file FILE    require 'Authorization: Bearer <token>', the\n"
    "                       token being FILE's first line (UV_PPROF_TOKEN);\n"
    "                       needed for a non-loopback address\n"
    "  --stall-ms MS        loop stall threshold (UV_PPROF_STALL_MS; default\n"
    "                       50, 0 off, else 10 or more): /debug/pprof/block\n"
    "  --mutex RATE         lock contention, 1 in RATE contended locks\n"
    "                       (UV_PPROF_MUTEX): /debug/pprof/mutex; preloads\n"
    "                       libuv_pprof_track\n"
    "  --quiet              no banner (UV_PPROF_QUIET=1)\n"
    "  --help               this text\n"
    "\n"
    "The exit status is PROGRAM's; 2 for a bad option or address, 126 when\n"
    "PROGRAM cannot be run, 127 when it is not found. Only PROGRAM's own\n"
    "process serves: its children inherit the environment and leave it be.\n";

static void die(int status, const char* fmt, ...) {
  va_list ap;

  fputs("uv-pprof: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(status);
}

static void set(const char* name, const char* value) {
  if (setenv(name, value, 1) != 0)
    die(2, "cannot set %s: %s", name, strerror(errno));
}

/* The directory holding this executable, for the libraries beside it. */
static void own_dir(char* out, size_t size) {
  ssize_t n = readlink("/proc/self/exe", out, size - 1);
  char* slash;

  if (n <= 0)
    die(2, "cannot read /proc/self/exe: %s", strerror(errno));
  out[n] = '\0';
  slash = strrchr(out, '/');
  if (slash != NULL)
    *slash = '\0';
}

/* The first of `candidates` (relative to dir) that exists, made absolute;
 * NULL if none. Installed: <prefix>/bin and <prefix>/<libdir>; build tree:
 * beside the executable. */
static char* find_beside(const char* dir, const char* const candidates[]) {
  char path[PATH_MAX];
  int i;

  for (i = 0; candidates[i] != NULL; i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, candidates[i]);
    if (access(path, R_OK) == 0)
      return realpath(path, NULL);
  }
  return NULL;
}

/* PROGRAM as execv() needs it: a path with a slash as is, else the first
 * executable match in PATH. Exits 127 or 126 as a shell would. */
static char* resolve_program(const char* name) {
  const char* path = getenv("PATH");
  char buf[PATH_MAX];
  int denied = 0;

  if (strchr(name, '/') != NULL) {
    if (access(name, F_OK) != 0)
      die(127, "%s: no such file", name);
    if (access(name, X_OK) != 0)
      die(126, "%s: not executable", name);
    return strdup(name);
  }
  if (path == NULL || path[0] == '\0')
    path = "/usr/local/bin:/usr/bin:/bin";
  while (*path != '\0') {
    size_t len = strcspn(path, ":");
    snprintf(buf, sizeof(buf), "%.*s/%s", (int)(len != 0 ? len : 1),
             len != 0 ? path : ".", name);
    if (access(buf, X_OK) == 0)
      return strdup(buf);
    denied |= access(buf, F_OK) == 0;
    path += len + (path[len] == ':');
  }
  if (denied)
    die(126, "%s: not executable", name);
  die(127, "%s: command not found", name);
  return NULL;
}

static int is_node_name(const char* base) {
  return strcmp(base, "node") == 0 || strcmp(base, "nodejs") == 0;
}

/* node itself, or a script whose #! line runs node ("#!/usr/bin/env node"). */
static int is_node(const char* program) {
  const char* base = strrchr(program, '/');
  char line[256];
  FILE* f;
  int node = 0;

  base = base != NULL ? base + 1 : program;
  if (is_node_name(base))
    return 1;
  f = fopen(program, "r");
  if (f == NULL)
    return 0;
  if (fgets(line, sizeof(line), f) != NULL && line[0] == '#' &&
      line[1] == '!') {
    char* tok = strtok(line + 2, " \t\r\n");
    while (tok != NULL && !node) {
      const char* b = strrchr(tok, '/');
      node = is_node_name(b != NULL ? b + 1 : tok);
      tok = strtok(NULL, " \t\r\n");
    }
  }
  fclose(f);
  return node;
}

static char* read_token(const char* file) {
  char buf[MAX_TOKEN + 2];
  FILE* f = fopen(file, "r");
  size_t len;
  size_t i;

  if (f == NULL)
    die(2, "--token-file %s: %s", file, strerror(errno));
  if (fgets(buf, sizeof(buf), f) == NULL)
    buf[0] = '\0';
  fclose(f);
  len = strcspn(buf, "\r\n");
  if (len > MAX_TOKEN)
    die(2, "--token-file %s: the token is longer than %d bytes", file,
        MAX_TOKEN);
  buf[len] = '\0';
  if (len == 0)
    die(2, "--token-file %s: the first line is empty", file);
  for (i = 0; i < len; i++)
    if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f)
      die(2, "--token-file %s: the token has a space or control character",
          file);
  return strdup(buf);
}

static unsigned parse_seconds(const char* v) {
  char* end;
  unsigned long n;

  errno = 0;
  n = strtoul(v, &end, 10);
  if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n == 0 ||
      n > MAX_TIMELINE)
    die(2, "--timeline %s: expected whole seconds from 1 to %d", v,
        MAX_TIMELINE);
  return (unsigned)n;
}

/* A whole number from `min` to `max` for option `opt`, as text. */
static const char* whole(const char* opt, const char* v, unsigned long min,
                         unsigned long max) {
  char* end;
  unsigned long n;

  errno = 0;
  n = strtoul(v, &end, 10);
  if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min ||
      n > max)
    die(2, "%s %s: expected a whole number from %lu to %lu", opt, v, min, max);
  return v;
}

/* Serves for a moment on a scratch loop, with the environment the program
 * will have: a bad address, a busy port or a missing token fails here, with
 * uv_pprof's own one-line reason, before the program runs. */
static void try_listen(void) {
  const char* quiet = getenv("UV_PPROF_QUIET");
  char* saved = quiet != NULL ? strdup(quiet) : NULL;
  uv_loop_t loop;
  int err;

  if (uv_loop_init(&loop) != 0)
    die(2, "cannot create a libuv loop");
  set("UV_PPROF_QUIET", "1");
  err = uv_pprof_start(&loop);
  uv_pprof_stop(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (saved != NULL)
    set("UV_PPROF_QUIET", saved);
  else
    unsetenv("UV_PPROF_QUIET");
  free(saved);
  if (err != 0)
    exit(2);
}

/* Prepends `lib` to LD_PRELOAD, unless a library of that file name is in
 * it already (the user's own jemalloc, say). */
static void preload(const char* lib) {
  const char* old = getenv("LD_PRELOAD");
  const char* base = strrchr(lib, '/');
  char* value;

  base = base != NULL ? base + 1 : lib;
  if (old != NULL && strstr(old, base) != NULL)
    return;
  if (old == NULL || old[0] == '\0') {
    set("LD_PRELOAD", lib);
    return;
  }
  value = malloc(strlen(lib) + strlen(old) + 2);
  if (value == NULL)
    die(2, "out of memory");
  sprintf(value, "%s:%s", lib, old);
  set("LD_PRELOAD", value);
  free(value);
}

/* The absolute path of jemalloc's shared library. Not dlopen()ed to find
 * it: jemalloc's thread-local storage is initial-exec, which only a
 * library loaded at startup can have. Looked for where the loader looks:
 * LD_LIBRARY_PATH, libc's own directory (multiarch) and the usual ones. */
static char* find_jemalloc(void) {
  const char* lpath = getenv("LD_LIBRARY_PATH");
  char dirs[PATH_MAX * 4] = "";
  char path[PATH_MAX];
  Dl_info info;
  char* dir;
  char* save = NULL;

  if (lpath != NULL)
    snprintf(dirs, sizeof(dirs), "%s:", lpath);
  if (dladdr((void*)printf, &info) != 0 && info.dli_fname != NULL) {
    char libc[PATH_MAX];
    char* slash;
    snprintf(libc, sizeof(libc), "%s", info.dli_fname);
    slash = strrchr(libc, '/');
    if (slash != NULL) {
      *slash = '\0';
      snprintf(dirs + strlen(dirs), sizeof(dirs) - strlen(dirs),
               "%s:/usr%s:", libc, libc);
    }
  }
  snprintf(dirs + strlen(dirs), sizeof(dirs) - strlen(dirs),
           "/usr/local/lib:/usr/lib:/lib");
  for (dir = strtok_r(dirs, ":", &save); dir != NULL;
       dir = strtok_r(NULL, ":", &save)) {
    snprintf(path, sizeof(path), "%s/%s", dir, JEMALLOC);
    if (access(path, R_OK) == 0)
      return realpath(path, NULL);
  }
  die(2,
      "--heap needs jemalloc (%s), which is not installed "
      "(Debian: apt-get install libjemalloc2)",
      JEMALLOC);
  return NULL;
}

static void heap_conf(void) {
  const char* old = getenv("MALLOC_CONF");
  char* value;

  if (old == NULL || old[0] == '\0') {
    set("MALLOC_CONF", HEAP_CONF);
    return;
  }
  /* jemalloc lets a later option win: the user's own settings stay. */
  value = malloc(strlen(HEAP_CONF) + strlen(old) + 2);
  if (value == NULL)
    die(2, "out of memory");
  sprintf(value, "%s,%s", HEAP_CONF, old);
  set("MALLOC_CONF", value);
  free(value);
}

static void node_options(const char* reg) {
  const char* old = getenv("NODE_OPTIONS");
  size_t size = strlen(reg) + (old != NULL ? strlen(old) : 0) + 16;
  char* value = malloc(size);

  if (value == NULL)
    die(2, "out of memory");
  if (strchr(reg, '"') != NULL)
    die(2, "the uv-pprof Node package's path has a '\"': %s", reg);
  snprintf(value, size, "--require \"%s\"%s%s", reg,
           old != NULL && old[0] != '\0' ? " " : "", old != NULL ? old : "");
  set("NODE_OPTIONS", value);
  free(value);
}

/* The option's value: "--opt=VALUE" or "--opt VALUE". */
static const char* value_of(int argc, char** argv, int* i, const char* opt) {
  size_t len = strlen(opt);

  if (argv[*i][len] == '=')
    return argv[*i] + len + 1;
  if (*i + 1 >= argc)
    die(2, "%s needs a value (see uv-pprof --help)", opt);
  return argv[++*i];
}

static int is_opt(const char* arg, const char* opt) {
  size_t len = strlen(opt);

  return strncmp(arg, opt, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

int main(int argc, char** argv) {
  const char* listen = "1";
  const char* token_file = NULL;
  unsigned timeline = 0;
  int heap = 0;
  int track = 0;
  const char* stall_ms = NULL;
  const char* mutex = NULL;
  int quiet = 0;
  char dir[PATH_MAX];
  char pid[32];
  char* program;
  int i;

  for (i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-')
      break;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    } else if (is_opt(a, "--listen")) {
      listen = value_of(argc, argv, &i, "--listen");
      if (listen[0] == '\0' || strcmp(listen, "0") == 0)
        die(2,
            "--listen %s: expected 1, PORT, HOST:PORT, [IPV6]:PORT or "
            ":PORT",
            listen[0] != '\0' ? listen : "''");
    } else if (strcmp(a, "--heap") == 0) {
      heap = 1;
    } else if (strcmp(a, "--track") == 0) {
      track = 1;
    } else if (is_opt(a, "--timeline")) {
      timeline = parse_seconds(value_of(argc, argv, &i, "--timeline"));
    } else if (is_opt(a, "--token-file")) {
      token_file = value_of(argc, argv, &i, "--token-file");
    } else if (is_opt(a, "--stall-ms")) {
      stall_ms = whole("--stall-ms", value_of(argc, argv, &i, "--stall-ms"), 0,
                       MAX_STALL_MS);
      if (strcmp(stall_ms, "0") != 0 && strtoul(stall_ms, NULL, 10) < 10)
        die(2, "--stall-ms %s: expected 0 (off) or 10 to %d", stall_ms,
            MAX_STALL_MS);
    } else if (is_opt(a, "--mutex")) {
      mutex = whole("--mutex", value_of(argc, argv, &i, "--mutex"), 0,
                    MAX_MUTEX_RATE);
    } else if (strcmp(a, "--quiet") == 0) {
      quiet = 1;
    } else {
      die(2, "unknown option %s (see uv-pprof --help)", a);
    }
  }
  if (i >= argc)
    die(2,
        "no PROGRAM to run (usage: uv-pprof [OPTIONS] -- PROGRAM "
        "[ARGS...])");

  set("UV_PPROF", listen);
  if (token_file != NULL) {
    char* token = read_token(token_file);
    set("UV_PPROF_TOKEN", token);
    free(token);
  }
  if (quiet)
    set("UV_PPROF_QUIET", "1");
  if (timeline != 0) {
    char v[16];
    snprintf(v, sizeof(v), "%u", timeline);
    set("UV_PPROF_TIMELINE", v);
  }
  if (stall_ms != NULL)
    set("UV_PPROF_STALL_MS", stall_ms);
  if (mutex != NULL)
    set("UV_PPROF_MUTEX", mutex);
  program = resolve_program(argv[i]);
  try_listen();

  own_dir(dir, sizeof(dir));
  if (track || (mutex != NULL && strcmp(mutex, "0") != 0)) {
    const char* const where[] = {"../" UV_PPROF_LIBDIR
                                 "/" UV_PPROF_TRACK_SONAME,
                                 UV_PPROF_TRACK_SONAME, NULL};
    char* lib = find_beside(dir, where);
    if (lib == NULL)
      die(2, "%s: %s is not installed beside %s", track ? "--track" : "--mutex",
          UV_PPROF_TRACK_SONAME, dir);
    if (track)
      set("UV_PPROF_TRACK", "handles");
    preload(lib);
    free(lib);
  }
  if (is_node(program)) {
    const char* const where[] = {"../lib/node_modules/uv-pprof/register.js",
                                 "bindings/node/uv-pprof/register.js", NULL};
    char* reg = find_beside(dir, where);
    if (reg == NULL)
      die(2,
          "%s runs node, and the uv-pprof Node package is not installed "
          "beside %s (build uv_pprof with Node's headers: libnode-dev)",
          argv[i], dir);
    node_options(reg);
    free(reg);
  } else {
    const char* const where[] = {"../" UV_PPROF_LIBDIR
                                 "/" UV_PPROF_ATTACH_SONAME,
                                 UV_PPROF_ATTACH_SONAME, NULL};
    char* lib = find_beside(dir, where);
    if (lib == NULL)
      die(2, "%s is not installed beside %s", UV_PPROF_ATTACH_SONAME, dir);
    preload(lib);
    free(lib);
  }
  if (heap) {
    char* je = find_jemalloc();
    heap_conf();
    preload(je);
    free(je);
  }
  /* This process becomes PROGRAM: it is the one that serves. */
  snprintf(pid, sizeof(pid), "%ld", (long)getpid());
  set("UV_PPROF_ATTACH_PID", pid);
  execv(program, argv + i);
  die(errno == ENOENT ? 127 : 126, "cannot run %s: %s", argv[i],
      strerror(errno));
  return 126;
}
