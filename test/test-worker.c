/* uv_pprof's worker never makes the loop thread wait for it: closing it
 * while a job runs returns at once (the job finishes on the worker, which
 * frees it there), a job sees the stop through uv_pprof__stopping(),
 * and a thread that idled out is never joined. The jobs here block on
 * semaphores the test holds, so a wait would hang the test instead of
 * passing. End to end: uv_pprof_stop while a long /debug/pprof/symbol runs. */
#include <inttypes.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "profile.h"
#include "task.h"

typedef struct {
  uv_pprof__job_t job;
  uv_sem_t started;
  uv_sem_t release;
  int saw_stopping; /* atomic */
  int done_calls;   /* atomic */
  int cancelled;
  pid_t done_tid;
  int light;
  int ended; /* atomic: the work returned */
} block_job_t;

static void work_block(uv_pprof__job_t* job) {
  block_job_t* b = job->data;

  uv_sem_post(&b->started);
  uv_sem_wait(&b->release);
  __atomic_store_n(&b->saw_stopping, uv_pprof__stopping(), __ATOMIC_RELAXED);
  __atomic_store_n(&b->ended, 1, __ATOMIC_RELEASE);
}

static void on_block_done(uv_pprof__job_t* job, int cancelled) {
  block_job_t* b = job->data;

  b->cancelled = cancelled;
  b->done_tid = (pid_t)syscall(SYS_gettid);
  __atomic_fetch_add(&b->done_calls, 1, __ATOMIC_RELEASE);
}

static void block_init(block_job_t* b) {
  memset(b, 0, sizeof(*b));
  ASSERT_EQ(uv_sem_init(&b->started, 0), 0);
  ASSERT_EQ(uv_sem_init(&b->release, 0), 0);
  b->job.work = work_block;
  b->job.done = on_block_done;
  b->job.data = b;
}

static void block_destroy(block_job_t* b) {
  uv_sem_destroy(&b->started);
  uv_sem_destroy(&b->release);
}

static void wait_done(block_job_t* b) {
  int i;

  for (i = 0;
       i < 2000 && __atomic_load_n(&b->done_calls, __ATOMIC_ACQUIRE) == 0; i++)
    usleep(5000);
  ASSERT_EQ(__atomic_load_n(&b->done_calls, __ATOMIC_ACQUIRE), 1);
}

/* Closing the worker while its job runs returns before the job ends (the
 * job is still blocked then); the job sees the stop; its done runs once,
 * cancelled, on the worker thread; the loop closes. */
TEST_IMPL(worker_close_never_waits) {
  uv_loop_t loop;
  uv_pprof__worker_t* w;
  block_job_t running;
  block_job_t queued;
  pid_t loop_tid = (pid_t)syscall(SYS_gettid);

  ASSERT_EQ(uv_loop_init(&loop), 0);
  block_init(&running);
  block_init(&queued);
  w = uv_pprof__worker_new(&loop);
  ASSERT(w != NULL);
  ASSERT_EQ(uv_pprof__worker_submit(w, &running.job), 0);
  ASSERT_EQ(uv_pprof__worker_submit(w, &queued.job), 0);
  uv_sem_wait(&running.started);

  uv_pprof__worker_close(w); /* the job is blocked: this must not wait */
  ASSERT_EQ(__atomic_load_n(&running.done_calls, __ATOMIC_ACQUIRE), 0);
  /* The queued job was handed back at once, on this thread. */
  ASSERT_EQ(queued.done_calls, 1);
  ASSERT_EQ(queued.cancelled, 1);
  ASSERT_EQ(queued.done_tid, loop_tid);
  ASSERT_EQ(uv_pprof__worker_submit(w, &queued.job), UV_ECANCELED);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(uv_loop_close(&loop), 0);

  uv_sem_post(&running.release);
  wait_done(&running);
  ASSERT_EQ(running.cancelled, 1);
  ASSERT(running.done_tid != loop_tid);
  ASSERT_EQ(__atomic_load_n(&running.saw_stopping, __ATOMIC_RELAXED), 1);
  ASSERT_EQ(uv_pprof__stopping(), 0); /* not on a worker thread */
  block_destroy(&running);
  block_destroy(&queued);
  return 0;
}

static void on_keep(uv_timer_t* t) {
  (void)t;
}

/* A second worker (another server's) may start while the first still
 * runs: their jobs take turns (the symbol tables are the process's), and
 * submitting to the second never waits for the first's job. */
TEST_IMPL(worker_two_servers_take_turns) {
  uv_loop_t loop;
  uv_pprof__worker_t* a;
  uv_pprof__worker_t* b;
  uv_timer_t keep;
  block_job_t first;
  block_job_t second;

  ASSERT_EQ(uv_loop_init(&loop), 0);
  block_init(&first);
  block_init(&second);
  a = uv_pprof__worker_new(&loop);
  b = uv_pprof__worker_new(&loop);
  ASSERT(a != NULL && b != NULL);
  ASSERT_EQ(uv_pprof__worker_submit(a, &first.job), 0);
  uv_sem_wait(&first.started);
  ASSERT_EQ(uv_pprof__worker_submit(b, &second.job), 0); /* returns */
  usleep(50000);
  /* The second job waits for the first one's turn to end. */
  ASSERT_EQ(uv_sem_trywait(&second.started), UV_EAGAIN);
  uv_sem_post(&first.release);
  uv_sem_wait(&second.started);
  uv_sem_post(&second.release);
  /* The workers' handles are unref'd: a timer keeps the loop polling. */
  ASSERT_EQ(uv_timer_init(&loop, &keep), 0);
  ASSERT_EQ(uv_timer_start(&keep, on_keep, 1, 1), 0);
  while (__atomic_load_n(&first.done_calls, __ATOMIC_ACQUIRE) == 0 ||
         __atomic_load_n(&second.done_calls, __ATOMIC_ACQUIRE) == 0)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t*)&keep, NULL);
  ASSERT_EQ(first.cancelled, 0);
  ASSERT_EQ(second.cancelled, 0);
  uv_pprof__worker_close(a);
  uv_pprof__worker_close(b);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  block_destroy(&first);
  block_destroy(&second);
  return 0;
}

/* Sends a /debug/pprof/symbol POST of the most addresses a request may
 * hold (cold: libdw, libc's tables) and gives it 20 ms to be read, routed
 * and in the worker's hands. Returns the connection. */
static int send_long_symbol(test_host_t* h) {
  uintptr_t pc = (uintptr_t)&printf;
  uv_pprof__buf_t body;
  char head[256];
  int fd;
  int i;

  uv_pprof__buf_init(&body);
  for (i = 0; i < UV_PPROF__MAX_SYMBOL_ADDRS; i++)
    uv_pprof__buf_printf(&body, "%s0x%" PRIxPTR, i == 0 ? "" : "+",
                         pc + (uintptr_t)i * 16);
  ASSERT(!body.oom);
  snprintf(head, sizeof(head),
           "POST /debug/pprof/symbol HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Content-Length: %zu\r\n\r\n",
           body.len);
  fd = tcp_connect(host_port(h));
  ASSERT_EQ(tcp_send(fd, head, strlen(head)), 0);
  ASSERT_EQ(tcp_send(fd, body.base, body.len), 0);
  uv_pprof__buf_free(&body);
  usleep(20000);
  return fd;
}

/* uv_pprof_stop while /debug/pprof/symbol symbolizes 65536 addresses (cold:
 * libdw, libc's tables): the host's loop closes, the client's connection is
 * closed unanswered, and the job, left to finish on the worker, frees all
 * it holds (the sanitized build checks) as the thread exits. */
TEST_IMPL(worker_stop_during_symbol) {
  test_host_t* h = host_start(NULL);
  int fd = send_long_symbol(h);
  size_t len;
  char* out;

  host_stop(h); /* asserts uv_loop_close() == 0 */
  out = tcp_read_all(fd, 20000, &len);
  ASSERT_EQ(len, 0);
  free(out);
  close(fd);
  return 0;
}

/* uv_pprof__worker_exclusive: while a job runs, the call is left to the
 * worker (it returns without running it, and without waiting), which makes
 * it once the job's work is done and before the next job's starts; with no
 * job running, it is made at once on the calling thread. */
typedef struct {
  uv_pprof__exclusive_t call;
  block_job_t* job; /* the job the call must not overlap */
  int calls;        /* atomic */
  pid_t tid;        /* the thread of the last call */
  int job_ended;    /* the job's work had returned at the last call */
} excl_t;

static void on_exclusive(void* arg) {
  excl_t* e = arg;

  e->tid = (pid_t)syscall(SYS_gettid);
  e->job_ended =
      e->job != NULL && __atomic_load_n(&e->job->ended, __ATOMIC_ACQUIRE);
  __atomic_fetch_add(&e->calls, 1, __ATOMIC_RELEASE);
}

typedef struct {
  uv_pprof__job_t job;
  excl_t* e;
  int calls_seen; /* e->calls when this job's work began */
  int done;       /* atomic */
} after_job_t;

static void work_after(uv_pprof__job_t* job) {
  after_job_t* a = job->data;

  a->calls_seen = __atomic_load_n(&a->e->calls, __ATOMIC_ACQUIRE);
}

static void on_after_done(uv_pprof__job_t* job, int cancelled) {
  after_job_t* a = job->data;

  (void)cancelled;
  __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
}

TEST_IMPL(worker_exclusive_after_job) {
  uv_loop_t loop;
  uv_pprof__worker_t* w;
  uv_timer_t keep;
  block_job_t running;
  after_job_t after;
  excl_t e;
  pid_t self = (pid_t)syscall(SYS_gettid);

  memset(&e, 0, sizeof(e));
  e.call.fn = on_exclusive;
  e.call.arg = &e;
  /* No job anywhere: at once, here. */
  uv_pprof__worker_exclusive(&e.call);
  ASSERT_EQ(__atomic_load_n(&e.calls, __ATOMIC_ACQUIRE), 1);
  ASSERT_EQ(e.tid, self);

  ASSERT_EQ(uv_loop_init(&loop), 0);
  block_init(&running);
  memset(&after, 0, sizeof(after));
  after.job.work = work_after;
  after.job.done = on_after_done;
  after.job.data = &after;
  after.e = &e;
  e.job = &running;
  w = uv_pprof__worker_new(&loop);
  ASSERT(w != NULL);
  ASSERT_EQ(uv_pprof__worker_submit(w, &running.job), 0);
  ASSERT_EQ(uv_pprof__worker_submit(w, &after.job), 0);
  uv_sem_wait(&running.started);

  /* The job is blocked: this must neither wait nor make the call; asked
   * twice, it is made once. */
  uv_pprof__worker_exclusive(&e.call);
  uv_pprof__worker_exclusive(&e.call);
  usleep(50000);
  ASSERT_EQ(__atomic_load_n(&e.calls, __ATOMIC_ACQUIRE), 1);
  uv_sem_post(&running.release);
  ASSERT_EQ(uv_timer_init(&loop, &keep), 0);
  ASSERT_EQ(uv_timer_start(&keep, on_keep, 1, 1), 0);
  while (!__atomic_load_n(&after.done, __ATOMIC_ACQUIRE))
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t*)&keep, NULL);
  /* Made once more, by the worker, after the job and before the next. */
  ASSERT_EQ(__atomic_load_n(&e.calls, __ATOMIC_ACQUIRE), 2);
  ASSERT(e.tid != self);
  ASSERT_EQ(e.job_ended, 1);
  ASSERT_EQ(after.calls_seen, 2);
  uv_pprof__worker_close(w);
  ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ASSERT_EQ(uv_loop_close(&loop), 0);
  block_destroy(&running);
  return 0;
}

/* uv_pprof_stop then uv_pprof_start at once, on the loop thread, while a
 * long /debug/pprof/symbol runs on the stopped server's worker: the restart
 * does not wait for that job, the old connection is closed unanswered, and
 * the new server's history (reset and configured under the workers' lock,
 * after that job) keeps snapshots, which /debug/pprof/leaks reads. */
typedef struct {
  uv_pprof_options_t options;
  int rc;
  int port;
} restart_t;

static void restart(uv_loop_t* loop, void* arg) {
  restart_t* r = arg;
  struct sockaddr_storage addr;

  uv_pprof_stop(loop);
  r->rc = uv_pprof_start_ex(loop, &r->options);
  if (r->rc == 0 && uv_pprof_address(loop, &addr) == 0)
    r->port = ntohs(((struct sockaddr_in*)&addr)->sin_port);
}

static int get_status(int port, const char* path) {
  char req[256];
  char* out;
  size_t len;
  int status = 0;
  int fd = tcp_connect(port);

  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           path);
  ASSERT_EQ(tcp_send(fd, req, strlen(req)), 0);
  out = tcp_read_all(fd, 20000, &len);
  if (sscanf(out, "HTTP/1.1 %d ", &status) != 1)
    status = 0;
  free(out);
  close(fd);
  return status;
}

TEST_IMPL(worker_restart_during_job) {
  restart_t r;
  test_host_t* h;
  size_t len;
  char* out;
  int status = 0;
  int fd;
  int i;

  memset(&r, 0, sizeof(r));
  uv_pprof_options_init(&r.options);
  r.options.port = 0;
  r.options.quiet = 1;
  r.options.timeline_seconds = 1;
  h = host_start(&r.options);
  fd = send_long_symbol(h);
  host_call(h, restart, &r);
  ASSERT_EQ(r.rc, 0);
  ASSERT_GT(r.port, 0);
  out = tcp_read_all(fd, 20000, &len);
  ASSERT_EQ(len, 0);
  free(out);
  close(fd);
  for (i = 0;
       i < 100 && (status = get_status(r.port, "/debug/pprof/leaks")) != 200;
       i++)
    usleep(100000);
  ASSERT_EQ(status, 200);
  host_stop(h);
  return 0;
}
