/* uv_pprof's own worker thread: heavy work (jemalloc dumps, symbolization,
 * unwinding, profile encoding, gzip) runs here, never on the host's loop
 * thread nor in the host's libuv threadpool. The thread starts on the first job
 * and exits after UV_PPROF__WORKER_IDLE_MS without work (light jobs, the
 * periodic ones, do not count), so an idle server has none. Finished jobs go
 * back to the loop through a wake-up of its own (src/wakeup.c), never
 * uv_async_t: a job may finish after a host closed its loop without
 * uv_pprof_stop(). */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>

#include "loop.h"

struct uv_pprof__worker_s {
  uv_loop_t* loop;
  uv_pprof__wakeup_t wakeup;
  uv_mutex_t mu;
  uv_cond_t cond;
  uv_thread_t thread;
  int running;  /* the thread is alive and takes jobs */
  int joinable; /* a thread was started and not joined yet */
  int cancelled;
  uv_pprof__job_t* todo;
  uv_pprof__job_t** todo_tail;
  uv_pprof__job_t* done;
  uv_pprof__job_t** done_tail;
};

static void on_done(uv_pprof__wakeup_t* wakeup);

/* The symbolizer's tables (and the rest the worker keeps between jobs) have
 * one user at a time: the worker while it runs a job or frees them, the
 * stall watchdog while it writes a report (src/report.c). */
static uv_once_t symbolizer_once = UV_ONCE_INIT;
static uv_mutex_t symbolizer_mu;

static void init_symbolizer_mu(void) {
  if (uv_mutex_init(&symbolizer_mu) != 0)
    abort();
}

void uv_pprof__symbolizer_lock(void) {
  uv_once(&symbolizer_once, init_symbolizer_mu);
  uv_mutex_lock(&symbolizer_mu);
}

void uv_pprof__symbolizer_unlock(void) {
  uv_mutex_unlock(&symbolizer_mu);
}

uv_pprof__worker_t* uv_pprof__worker_new(uv_loop_t* loop) {
  uv_pprof__worker_t* w = calloc(1, sizeof(*w));

  if (w == NULL)
    return NULL;
  w->loop = loop;
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

static void run(void* arg) {
  uv_pprof__worker_t* w = arg;
  uv_pprof__job_t* job;
  const uint64_t idle_ns = UV_PPROF__WORKER_IDLE_MS * (uint64_t)1000000;
  uint64_t deadline;

  struct sched_param batch = {0};

  pthread_setname_np(pthread_self(), "uv_pprof");
  /* SCHED_BATCH: the worker's wake-ups never preempt the host's loop
   * thread (measured: a waking worker made a host's 1 ms timer 2.4 ms late
   * per heap request; 0.1-0.2 ms as a batch thread). Its share of the CPU
   * stays fair. */
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
  uv_pprof__je_thread_unsampled();
  uv_mutex_lock(&w->mu);
  /* Light jobs do not push the deadline back: a periodic sample must not
   * keep a heavy profile's symbol tables resident for ever. */
  deadline = uv_hrtime() + idle_ns;
  for (;;) {
    while (w->todo == NULL && !w->cancelled) {
      uint64_t now = uv_hrtime();
      if (now >= deadline ||
          (uv_cond_timedwait(&w->cond, &w->mu, deadline - now) ==
               UV_ETIMEDOUT &&
           w->todo == NULL))
        goto out;
    }
    if (w->cancelled)
      break;
    job = w->todo;
    w->todo = job->next;
    if (w->todo == NULL)
      w->todo_tail = &w->todo;
    uv_mutex_unlock(&w->mu);

    uv_pprof__symbolizer_lock();
    job->work(job);
    uv_pprof__symbolizer_unlock();
    if (!job->light)
      deadline = uv_hrtime() + idle_ns;

    uv_mutex_lock(&w->mu);
    job->next = NULL;
    *w->done_tail = job;
    w->done_tail = &job->next;
    uv_pprof__wakeup_send(&w->wakeup);
  }
out:
  w->running = 0;
  uv_mutex_unlock(&w->mu);
  /* Back to the idle footprint: the symbol tables, the heap stacks nobody
   * holds and the CPU unwinder's state (rebuilt by the next profile), then
   * what glibc's per-thread malloc arena still holds. */
  uv_pprof__symbolizer_lock();
  uv_pprof__symbolizer_reset();
  uv_pprof__stacks_collect();
  uv_pprof__sampler_trim();
  uv_pprof__symbolizer_unlock();
  malloc_trim(0);
}

/* The worker runs with every signal blocked, so a host's signal handlers
 * (and later our own sampler) never interrupt it. */
static int spawn(uv_pprof__worker_t* w) {
  sigset_t all;
  sigset_t old;
  int err;

  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = uv_thread_create(&w->thread, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return err;
}

int uv_pprof__worker_submit(uv_pprof__worker_t* w, uv_pprof__job_t* job) {
  int err = 0;

  uv_mutex_lock(&w->mu);
  if (w->cancelled) {
    uv_mutex_unlock(&w->mu);
    return UV_ECANCELED;
  }
  if (!w->running && w->joinable) {
    /* The previous thread gave up for idleness; it is past its last use of
     * the lock, so joining it is immediate. */
    uv_mutex_unlock(&w->mu);
    uv_thread_join(&w->thread);
    uv_mutex_lock(&w->mu);
    w->joinable = 0;
  }
  if (!w->running) {
    err = spawn(w);
    if (err == 0) {
      w->running = 1;
      w->joinable = 1;
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

int uv_pprof__worker_cancelled(const uv_pprof__worker_t* w) {
  return __atomic_load_n(&w->cancelled, __ATOMIC_RELAXED);
}

int uv_pprof__worker_threads(const uv_pprof__worker_t* w) {
  uv_pprof__worker_t* mw = (uv_pprof__worker_t*)w;
  int n;

  uv_mutex_lock(&mw->mu);
  n = mw->running;
  uv_mutex_unlock(&mw->mu);
  return n;
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
  /* The thread was not copied: nothing to join; a job it was running is
   * lost (its request is abandoned when the inherited server stops). */
  w->running = 0;
  w->joinable = 0;
  /* Made anew: the condition still counts the parent's waiting thread
   * (uv_cond_destroy() would wait for it for ever), and the lock is owned
   * by the parent's thread id (libuv's error-checking mutexes refuse an
   * unlock from the child's). */
  uv_cond_init(&w->cond);
  uv_mutex_init(&w->mu);
}

static void on_close(uv_handle_t* handle) {
  uv_pprof__worker_t* w = ((uv_pprof__wakeup_t*)handle->data)->data;

  uv_cond_destroy(&w->cond);
  uv_mutex_destroy(&w->mu);
  free(w);
}

void uv_pprof__worker_close(uv_pprof__worker_t* w) {
  uv_pprof__job_t* todo;
  uv_pprof__job_t* done;
  int joinable;

  uv_mutex_lock(&w->mu);
  __atomic_store_n(&w->cancelled, 1, __ATOMIC_RELAXED);
  uv_cond_signal(&w->cond);
  joinable = w->joinable;
  w->joinable = 0;
  uv_mutex_unlock(&w->mu);
  if (joinable)
    uv_thread_join(&w->thread);

  todo = w->todo;
  done = w->done;
  w->todo = w->done = NULL;
  deliver(done, 1);
  deliver(todo, 1);
  uv_pprof__wakeup_close(&w->wakeup, on_close);
}
