/* libuv_pprof_attach: uv_pprof in a program that was not built for it.
 * Preloaded (by the uv-pprof launcher, or LD_PRELOAD by hand), it defines
 * libuv's uv_run, uv_loop_init and uv_loop_close: the first loop the
 * program runs serves (uv_pprof_start, so UV_PPROF and the rest of the
 * environment decide everything), the loops run later are registered, and
 * uv_pprof leaves each loop before the program closes it. When the serving
 * loop closes (a short-lived loop run for a moment), the next loop run
 * serves. Only the process the library was first loaded into serves: its
 * children, which inherit LD_PRELOAD and UV_PPROF, leave everything alone.
 * The real functions are found through real.h. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "../track/real.h"
#include "../track/track.h"
#include "uv_pprof.h"

#define EXPORT __attribute__((visibility("default")))
/* Set in the environment of the process that serves; a process whose pid
 * differs (a child) stays out of the way. */
#define OWNER_ENV "UV_PPROF_ATTACH_PID"
#define MAX_LOOPS 256

typedef struct {
  uv_loop_t* loop;
  int released; /* uv_pprof left it for its uv_loop_close: not again */
} known_t;

/* The fast path of uv_run: a loop this thread already handled, and nothing
 * changed since (gen counts every change of the known set). */
/* initial-exec: no __tls_get_addr call on the fast path (the library is
 * preloaded, so the static TLS block has room for it). */
static _Thread_local uv_loop_t* seen __attribute__((tls_model("initial-exec")));
static _Thread_local unsigned seen_gen
    __attribute__((tls_model("initial-exec")));
/* The real uv_run of this thread's last call site: a loop runs from one
 * place, so most calls skip even real.h's table. */
static _Thread_local void* last_ra __attribute__((tls_model("initial-exec")));
static _Thread_local void* last_run __attribute__((tls_model("initial-exec")));
static unsigned gen = 1;

static int dormant = 1; /* disabled, not the owner, or given up */
static int any_run;     /* some loop was run: for the exit note */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static known_t known[MAX_LOOPS];
static size_t nknown;
static uv_loop_t* serving;
static void* our_libuv; /* the object of the libuv uv_pprof calls */

static void bump(void) {
  __atomic_add_fetch(&gen, 1, __ATOMIC_RELEASE);
}

static known_t* find(uv_loop_t* loop) {
  size_t i;

  for (i = 0; i < nknown; i++)
    if (known[i].loop == loop)
      return &known[i];
  return NULL;
}

static void forget(uv_loop_t* loop) {
  known_t* k = find(loop);

  if (k == NULL)
    return;
  *k = known[--nknown];
  if (serving == loop)
    serving = NULL;
  bump();
}

/* A loop run for the first time (or again after a change) on its thread:
 * serve on it, or register it, or leave it. mu held. */
static void attach(uv_loop_t* loop, void* real_run) {
  known_t* k = find(loop);
  int err;

  if (k != NULL) {
    /* Registered while another loop served, which has closed since: this
     * one serves now. */
    if (!k->released && serving == NULL) {
      uv_pprof_stop(loop);
      forget(loop);
      k = NULL;
    } else {
      return;
    }
  }
  if (uv_pprof__object_of(real_run) != our_libuv) {
    static int told;
    if (!told++)
      fprintf(stderr,
              "uv-pprof: this program runs a libuv of its own (not the "
              "shared libuv uv_pprof uses): not attached\n");
    dormant = 1;
    return;
  }
  if (nknown == MAX_LOOPS)
    return;
  err = uv_pprof_start(loop);
  if (err != 0) {
    /* The reason is on stderr already; trying every loop would repeat it. */
    dormant = 1;
    return;
  }
  known[nknown].loop = loop;
  known[nknown].released = 0;
  nknown++;
  if (serving == NULL &&
      uv_pprof_address(loop, &(struct sockaddr_storage){0}) == 0)
    serving = loop;
  bump();
}

/* libuv_pprof's hook (track.h). */
int uv_pprof_release_loop_v1(void* loop);

typedef int (*run_fn)(uv_loop_t*, uv_run_mode);
typedef int (*loop_fn)(uv_loop_t*);

EXPORT int uv_run(uv_loop_t* loop, uv_run_mode mode);
EXPORT int uv_loop_init(uv_loop_t* loop);
EXPORT int uv_loop_close(uv_loop_t* loop);

static __attribute__((noinline)) void on_run(uv_loop_t* loop, void* real) {
  unsigned g = __atomic_load_n(&gen, __ATOMIC_ACQUIRE);

  pthread_mutex_lock(&mu);
  any_run = 1;
  if (!dormant)
    attach(loop, real);
  pthread_mutex_unlock(&mu);
  seen = loop;
  seen_gen = g;
}

int uv_run(uv_loop_t* loop, uv_run_mode mode) {
  void* ra = __builtin_return_address(0);
  run_fn real;

  if (ra != last_ra) {
    last_run = uv_pprof__real("uv_run", (void*)uv_run, ra);
    last_ra = ra;
  }
  real = (run_fn)last_run;
  if (real == NULL)
    return 0;
  if (loop != seen || seen_gen != __atomic_load_n(&gen, __ATOMIC_RELAXED))
    on_run(loop, (void*)real);
  return real(loop, mode);
}

/* A loop initialised at the address of one that was never closed through
 * us is a new loop. */
int uv_loop_init(uv_loop_t* loop) {
  loop_fn real = (loop_fn)uv_pprof__real("uv_loop_init", (void*)uv_loop_init,
                                         __builtin_return_address(0));

  if (real == NULL)
    return UV_ENOSYS;
  if (!__atomic_load_n(&dormant, __ATOMIC_RELAXED)) {
    pthread_mutex_lock(&mu);
    if (find(loop) != NULL && serving != loop)
      forget(loop);
    pthread_mutex_unlock(&mu);
  }
  return real(loop);
}

int uv_loop_close(uv_loop_t* loop) {
  loop_fn real = (loop_fn)uv_pprof__real("uv_loop_close", (void*)uv_loop_close,
                                         __builtin_return_address(0));
  known_t* k;
  int release = 0;
  int rc;

  if (real == NULL)
    return UV_ENOSYS;
  /* Marked released first: the loop runs inside the hook (uv_pprof's close
   * callbacks), and this uv_run must not attach again. */
  pthread_mutex_lock(&mu);
  k = find(loop);
  if (k != NULL && !k->released) {
    k->released = release = 1;
    bump();
  }
  pthread_mutex_unlock(&mu);
  if (release) {
    int released = uv_pprof_release_loop_v1(loop);
    pthread_mutex_lock(&mu);
    k = find(loop);
    if (k != NULL) {
      /* Still in use by the program: uv_pprof stays, as it did. */
      k->released = released;
      if (released && serving == loop)
        serving = NULL;
      bump();
    }
    pthread_mutex_unlock(&mu);
  }
  rc = real(loop);
  if (rc == 0) {
    pthread_mutex_lock(&mu);
    forget(loop);
    pthread_mutex_unlock(&mu);
  }
  return rc;
}

/* ---- the process ------------------------------------------------------- */

static void on_fork_child(void) {
  /* A forked child is not the owner: what it inherited is left to
   * uv_pprof's own fork handling, and no new loop serves. */
  dormant = 1;
  pthread_mutex_init(&mu, NULL);
}

static int enabled(void) {
  const char* v = getenv("UV_PPROF");

  return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

__attribute__((constructor)) static void on_load(void) {
  const char* owner = getenv(OWNER_ENV);
  char pid[32];

  if (!enabled())
    return;
  snprintf(pid, sizeof(pid), "%ld", (long)getpid());
  if (owner == NULL || owner[0] == '\0') {
    /* The first process: it serves, its children will know they are not
     * it. Constructors run before main and before any thread. */
    setenv(OWNER_ENV, pid, 1);
  } else if (strcmp(owner, pid) != 0) {
    return;
  }
  our_libuv = uv_pprof__object_of(dlsym(RTLD_NEXT, "uv_run"));
  pthread_atfork(NULL, NULL, on_fork_child);
  dormant = 0;
}

__attribute__((destructor)) static void on_unload(void) {
  const char* quiet = getenv("UV_PPROF_QUIET");

  if (dormant || any_run ||
      (quiet != NULL && quiet[0] != '\0' && strcmp(quiet, "0") != 0))
    return;
  fprintf(stderr,
          "uv-pprof: the program ran no libuv loop through the shared libuv: "
          "nothing was served\n");
}
