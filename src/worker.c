/* uv_pprof's own worker thread: heavy work (dumps, symbolization, encoding,
 * gzip) runs here, never on the host's loop thread nor in the host's libuv
 * threadpool. The thread starts on the first job and exits after
 * UV_PPROF__WORKER_IDLE_MS without work (light jobs, the periodic ones, do
 * not count), so an idle server has none. Finished jobs go back to the loop
 * through a wake-up of its own (src/wakeup.c), never uv_async_t: a job may
 * finish after a host closed its loop without uv_pprof_stop(). The loop
 * thread never waits for the thread: it is detached, never joined, and a
 * job still running when the server stops finishes on the thread, which
 * then frees it (see uv_pprof__done_cb). */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "loop.h"

struct uv_pprof__worker_s {
  uv_loop_t* loop;
  uv_pprof__wakeup_t wakeup;
  uv_mutex_t mu;
  uv_cond_t cond;
  int running;   /* a thread is alive: serving, or freeing its tables */
  int cancelled; /* atomic: uv_pprof__worker_close() began */
  int refs;      /* the loop's (until the wake-up has closed) + threads alive */
  uv_pprof__job_t* todo;
  uv_pprof__job_t** todo_tail;
  uv_pprof__job_t* done;
  uv_pprof__job_t** done_tail;
};

/* Every worker's work and idle teardown, whatever its server, runs under
 * `exclusive`: the symbolizer's and the unwinder's tables, the stack table,
 * the history and the flight recorder are the process's, and a thread
 * finishing a job of a stopped server may overlap the next server's thread
 * (or the loop thread resetting them: uv_pprof__worker_exclusive). `nthreads`
 * (under it) counts the worker threads alive, so that the last one to leave
 * frees those tables. */
static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t exclusive;
static int nthreads;
/* Calls waiting for `exclusive` (uv_pprof__worker_exclusive), in order;
 * under `pending_mu`, which is taken with or without `exclusive`, never
 * the other way round. */
static uv_mutex_t pending_mu;
static uv_pprof__exclusive_t* pending;
static uv_pprof__exclusive_t** pending_tail = &pending;
static int alive; /* atomic: worker threads not exited yet, every server's */
static int busy;  /* atomic: threads in a job or freeing their tables */

/* The process is exiting (exit(), or main returning): its libraries' own
 * destructors (libdw's, OpenSSL's under libdw's debuginfod client) run next,
 * and must not run under a worker thread still using them, which nothing
 * joins. Long jobs are told to give up, and exit waits for them, 2 s at
 * most (a jemalloc dump in progress cannot be interrupted). */
static void on_process_exit(void) {
  int i;

  uv_pprof__stopping_everywhere();
  for (i = 0; i < 2000 && __atomic_load_n(&busy, __ATOMIC_ACQUIRE) != 0; i++)
    usleep(1000);
}

static void init_once(void) {
  if (uv_mutex_init(&exclusive) != 0 || uv_mutex_init(&pending_mu) != 0 ||
      atexit(on_process_exit) != 0)
    abort();
}

/* The next call waiting for `exclusive`, taken off the queue, or NULL. */
static uv_pprof__exclusive_t* next_pending(void) {
  uv_pprof__exclusive_t* e;

  uv_mutex_lock(&pending_mu);
  e = pending;
  if (e != NULL) {
    pending = e->next;
    if (pending == NULL)
      pending_tail = &pending;
    e->queued = 0;
  }
  uv_mutex_unlock(&pending_mu);
  return e;
}

static int any_pending(void) {
  int any;

  uv_mutex_lock(&pending_mu);
  any = pending != NULL;
  uv_mutex_unlock(&pending_mu);
  return any;
}

/* Takes `exclusive` and makes the calls waiting for it first. */
static void exclusive_lock(void) {
  uv_pprof__exclusive_t* e;

  uv_mutex_lock(&exclusive);
  while ((e = next_pending()) != NULL)
    e->fn(e->arg);
}

/* Makes the calls waiting for `exclusive`, then lets it go. A call queued
 * after the last look but before the unlock found the lock held: it is
 * made here, after taking the lock again, unless another thread has taken
 * it (which does the same when it lets go). */
static void exclusive_unlock(void) {
  uv_pprof__exclusive_t* e;

  for (;;) {
    while ((e = next_pending()) != NULL)
      e->fn(e->arg);
    uv_mutex_unlock(&exclusive);
    if (!any_pending() || uv_mutex_trylock(&exclusive) != 0)
      return;
  }
}

void uv_pprof__worker_exclusive(uv_pprof__exclusive_t* e) {
  uv_once(&once, init_once);
  uv_mutex_lock(&pending_mu);
  if (!e->queued) {
    e->queued = 1;
    e->next = NULL;
    *pending_tail = e;
    pending_tail = &e->next;
  }
  uv_mutex_unlock(&pending_mu);
  if (uv_mutex_trylock(&exclusive) == 0)
    exclusive_unlock();
}

static void on_done(uv_pprof__wakeup_t* wakeup);

/* The stall watchdog symbolizes its report (src/report.c) under the same
 * lock as the worker's jobs: the symbolizer's tables have one user at a
 * time. */
void uv_pprof__symbolizer_lock(void) {
  uv_once(&once, init_once);
  exclusive_lock();
}

void uv_pprof__symbolizer_unlock(void) {
  exclusive_unlock();
}

uv_pprof__worker_t* uv_pprof__worker_new(uv_loop_t* loop) {
  uv_pprof__worker_t* w = calloc(1, sizeof(*w));

  uv_once(&once, init_once);
  if (w == NULL)
    return NULL;
  w->loop = loop;
  w->refs = 1;
  w->todo_tail = &w->todo;
  w->done_tail = &w->done;
  if (uv_mutex_init(&w->mu) != 0) {
    free(w);
    return NULL;
  }
  if (uv_cond_init(&w->cond) != 0) {
    uv_mutex_destroy(&w->mu);
    free(w);
    return NULL;
  }
  if (uv_pprof__wakeup_init(loop, &w->wakeup, on_done) != 0) {
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->mu);
    free(w);
    return NULL;
  }
  w->wakeup.data = w;
  return w;
}

/* Drops one reference; the last one frees w. Any thread, without w->mu. */
static void release(uv_pprof__worker_t* w) {
  int last;

  uv_mutex_lock(&w->mu);
  last = --w->refs == 0;
  uv_mutex_unlock(&w->mu);
  if (!last)
    return;
  uv_cond_destroy(&w->cond);
  uv_mutex_destroy(&w->mu);
  free(w);
}

/* Runs jobs until none came for UV_PPROF__WORKER_IDLE_MS (light ones do
 * not count) or the worker is cancelled. Called and returns with w->mu
 * held; returns the job that was running when the worker was cancelled,
 * if any: its loop may be gone. */
static uv_pprof__job_t* serve(uv_pprof__worker_t* w) {
  const uint64_t idle_ns = UV_PPROF__WORKER_IDLE_MS * (uint64_t)1000000;
  uint64_t deadline = uv_hrtime() + idle_ns;
  uv_pprof__job_t* job;

  for (;;) {
    while (w->todo == NULL && !w->cancelled) {
      uint64_t now = uv_hrtime();
      if (now >= deadline ||
          (uv_cond_timedwait(&w->cond, &w->mu, deadline - now) ==
               UV_ETIMEDOUT &&
           w->todo == NULL))
        return NULL;
    }
    if (w->cancelled)
      return NULL;
    job = w->todo;
    w->todo = job->next;
    if (w->todo == NULL)
      w->todo_tail = &w->todo;
    __atomic_add_fetch(&busy, 1, __ATOMIC_RELAXED);
    uv_mutex_unlock(&w->mu);

    exclusive_lock();
    job->work(job);
    exclusive_unlock();
    __atomic_sub_fetch(&busy, 1, __ATOMIC_RELEASE);
    /* Light jobs do not push the deadline back: a periodic sample must not
     * keep a heavy profile's symbol tables resident for ever. */
    if (!job->light)
      deadline = uv_hrtime() + idle_ns;

    uv_mutex_lock(&w->mu);
    if (w->cancelled)
      return job;
    job->next = NULL;
    *w->done_tail = job;
    w->done_tail = &job->next;
    uv_pprof__wakeup_send(&w->wakeup);
  }
}

static void run(void* arg) {
  uv_pprof__worker_t* w = arg;
  uv_pprof__job_t* orphan;

  struct sched_param batch = {0};

  uv_pprof__stopping_watch(&w->cancelled);
  pthread_setname_np(pthread_self(), "uv_pprof");
  /* SCHED_BATCH: the worker's wake-ups never preempt the host's loop
   * thread (measured: a waking worker made a host's 1 ms timer 2.4 ms late
   * per heap request; 0.1-0.2 ms as a batch thread). Its share of the CPU
   * stays fair. */
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
  uv_pprof__je_thread_unsampled();
  for (;;) {
    exclusive_lock();
    nthreads++;
    exclusive_unlock();
    uv_mutex_lock(&w->mu);
    orphan = serve(w);
    __atomic_add_fetch(&busy, 1, __ATOMIC_RELAXED);
    uv_mutex_unlock(&w->mu);
    if (orphan != NULL)
      orphan->done(orphan, 1);
    /* Back to the idle footprint when no other worker thread is left: the
     * symbol tables, the heap stacks nobody holds and the CPU unwinder's
     * state, rebuilt by the next profile. No malloc_trim(): it holds every
     * glibc arena's lock in turn, the host's threads' too, for as long as it
     * takes to walk them; the worker's own arena returns its top by itself once
     * the tables are freed. */
    exclusive_lock();
    if (--nthreads == 0) {
      uv_pprof__symbolizer_reset();
      uv_pprof__stacks_collect();
      uv_pprof__sampler_trim();
    }
    exclusive_unlock();
    __atomic_sub_fetch(&busy, 1, __ATOMIC_RELEASE);
    /* Jobs that came meanwhile are this thread's: the loop thread starts
     * none while one is alive, so it never creates a thread while this one
     * unmaps its tables (both need the process's memory map lock). */
    uv_mutex_lock(&w->mu);
    if (w->cancelled || w->todo == NULL)
      break;
    uv_mutex_unlock(&w->mu);
  }
  w->running = 0;
  uv_mutex_unlock(&w->mu);
  uv_pprof__stopping_watch(NULL);
  release(w);
  __atomic_sub_fetch(&alive, 1, __ATOMIC_RELEASE);
}

/* The worker runs with every signal blocked, so a host's signal handlers
 * (and later our own sampler) never interrupt it. It is detached: nothing
 * ever waits for it. */
static int spawn(uv_pprof__worker_t* w) {
  uv_thread_t thread;
  sigset_t all;
  sigset_t old;
  int err;

  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = uv_thread_create(&thread, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0)
    pthread_detach(thread);
  return err;
}

int uv_pprof__worker_submit(uv_pprof__worker_t* w, uv_pprof__job_t* job) {
  int err = 0;

  uv_mutex_lock(&w->mu);
  if (w->cancelled) {
    uv_mutex_unlock(&w->mu);
    return UV_ECANCELED;
  }
  /* A thread that is freeing its tables after idling out is still
   * running: it takes this job when done (see run). */
  if (!w->running) {
    __atomic_add_fetch(&alive, 1, __ATOMIC_RELAXED);
    err = spawn(w);
    if (err == 0) {
      w->running = 1;
      w->refs++;
    } else {
      __atomic_sub_fetch(&alive, 1, __ATOMIC_RELAXED);
    }
  }
  if (err == 0) {
    job->next = NULL;
    *w->todo_tail = job;
    w->todo_tail = &job->next;
    uv_cond_signal(&w->cond);
  }
  uv_mutex_unlock(&w->mu);
  return err;
}

int uv_pprof__worker_threads(void) {
  return __atomic_load_n(&alive, __ATOMIC_ACQUIRE);
}

static void deliver(uv_pprof__job_t* list, int cancelled) {
  while (list != NULL) {
    uv_pprof__job_t* next = list->next;
    list->done(list, cancelled);
    list = next;
  }
}

static void on_done(uv_pprof__wakeup_t* wakeup) {
  uv_pprof__worker_t* w = wakeup->data;
  uv_pprof__job_t* list;

  uv_mutex_lock(&w->mu);
  list = w->done;
  w->done = NULL;
  w->done_tail = &w->done;
  uv_mutex_unlock(&w->mu);
  deliver(list, 0);
}

void uv_pprof__worker_fork_prepare(uv_pprof__worker_t* w) {
  uv_mutex_lock(&w->mu);
}

void uv_pprof__worker_fork_parent(uv_pprof__worker_t* w) {
  uv_mutex_unlock(&w->mu);
}

void uv_pprof__worker_fork_child(uv_pprof__worker_t* w) {
  /* The thread was not copied: its reference goes; a job it was running
   * is lost (its request is abandoned when the inherited server stops). */
  if (w->running)
    w->refs--;
  w->running = 0;
  /* Made anew: the condition still counts the parent's waiting thread
   * (uv_cond_destroy() would wait for it for ever), and the lock is owned
   * by the parent's thread id (libuv's error-checking mutexes refuse an
   * unlock from the child's). The same for the process-wide lock, which a
   * parent's thread may have held, and its counts. */
  uv_cond_init(&w->cond);
  uv_mutex_init(&w->mu);
  uv_mutex_init(&exclusive);
  uv_mutex_init(&pending_mu);
  nthreads = 0;
  __atomic_store_n(&alive, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&busy, 0, __ATOMIC_RELAXED);
}

static void on_close(uv_handle_t* handle) {
  release(((uv_pprof__wakeup_t*)handle->data)->data);
}

void uv_pprof__worker_close(uv_pprof__worker_t* w) {
  uv_pprof__job_t* todo;
  uv_pprof__job_t* done;

  uv_mutex_lock(&w->mu);
  __atomic_store_n(&w->cancelled, 1, __ATOMIC_RELAXED);
  uv_cond_signal(&w->cond);
  todo = w->todo;
  done = w->done;
  w->todo = w->done = NULL;
  w->todo_tail = &w->todo;
  w->done_tail = &w->done;
  uv_mutex_unlock(&w->mu);
  deliver(done, 1);
  deliver(todo, 1);
  uv_pprof__wakeup_close(&w->wakeup, on_close);
}
