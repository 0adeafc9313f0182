/* uv_pprof_stallhost: hosts whose loops stall on purpose, for the stall
 * and mutex tests (test-stall.c). uv_pprof_start() reads the environment;
 * the host prints "port=N loop=0xADDR" once it serves, then what it did,
 * and stops (uv_pprof_stop, exit 0) when its stdin ends or on SIGTERM; in
 * "stuck" it prints "stopped" and leaves the stuck loop behind.
 *
 *   spin N     timers: every second spin_long() holds the loop 150 ms and,
 *              half a second later, spin_short() 20 ms; N times each, then
 *              "done long=N short=N long_ms=T"
 *   two        a second loop, on its own thread, held once by hold_loop_b():
 *              2 s asleep (hold_sleeping), then 1 s spinning
 *              (hold_spinning): "holding" and "released"
 *   stuck      a second loop stuck for good in stuck_forever() (a mutex
 *              never unlocked): "stuck"
 *   outside N  500 ms of outside_work() before uv_run (the loop's thread
 *              busy, but not in the loop), then as "spin N"
 *   mutex N    two threads contend N times for a mutex in contend_lock(),
 *              holding it 50 us each time, while the loop serves: "done"
 *              when both are through (they stop early when the host does) */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "uv_pprof.h"

static uv_loop_t* main_loop;
static uv_signal_t on_term;
static uv_poll_t on_stdin;
static int stuck_mode;
static uv_timer_t long_timer;
static uv_timer_t short_timer;
static int cycles;
static int longs;
static int shorts;
static uint64_t long_ns;

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char* fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
}

/* Busy until `ns` of wall time have passed: the loop is held that long
 * whatever else the machine runs. */
static __attribute__((noinline)) void busy_for(uint64_t ns) {
  uint64_t end = now_ns() + ns;
  volatile uint64_t x = 0;

  while (now_ns() < end)
    x++;
}

static __attribute__((noinline)) void spin_long(void) {
  uint64_t t0 = now_ns();

  busy_for(150000000);
  long_ns += now_ns() - t0;
  __asm__ volatile("");
}

static __attribute__((noinline)) void spin_short(void) {
  busy_for(20000000);
  __asm__ volatile("");
}

static void finish_spin(void) {
  if (longs == cycles && shorts == cycles)
    say("done long=%d short=%d long_ms=%llu", longs, shorts,
        (unsigned long long)(long_ns / 1000000));
}

static void on_long(uv_timer_t* t) {
  spin_long();
  if (++longs == cycles)
    uv_timer_stop(t);
  finish_spin();
}

static void on_short(uv_timer_t* t) {
  spin_short();
  if (++shorts == cycles)
    uv_timer_stop(t);
  finish_spin();
}

/* ---- two loops ---------------------------------------------------------- */

static uv_loop_t loop_b;
static uv_timer_t hold_timer;
static uv_async_t b_quit;
static pthread_t b_thread;
static pthread_mutex_t never = PTHREAD_MUTEX_INITIALIZER;

static __attribute__((noinline)) void hold_sleeping(void) {
  struct timespec ts = {2, 0};

  while (nanosleep(&ts, &ts) != 0)
    ;
  __asm__ volatile("");
}

static __attribute__((noinline)) void hold_spinning(void) {
  busy_for(1000000000);
  __asm__ volatile("");
}

static __attribute__((noinline)) void hold_loop_b(void) {
  say("holding");
  hold_sleeping();
  hold_spinning();
  say("released");
}

static __attribute__((noinline)) void stuck_forever(void) {
  say("stuck");
  pthread_mutex_lock(&never); /* locked by main(): never returns */
  __asm__ volatile("");
}

static __attribute__((noinline)) void on_hold(uv_timer_t* t) {
  if (t->data != NULL)
    stuck_forever();
  else
    hold_loop_b();
  __asm__ volatile(""); /* no tail call: on_hold stays on the stack */
}

static void on_b_quit(uv_async_t* a) {
  uv_pprof_stop(&loop_b);
  uv_close((uv_handle_t*)&hold_timer, NULL);
  uv_close((uv_handle_t*)&b_quit, NULL);
}

static void* run_b(void* arg) {
  uv_loop_init(&loop_b);
  if (uv_pprof_start(&loop_b) != 0)
    exit(2);
  uv_timer_init(&loop_b, &hold_timer);
  hold_timer.data = arg;
  uv_timer_start(&hold_timer, on_hold, 300, 0);
  uv_async_init(&loop_b, &b_quit, on_b_quit);
  uv_run(&loop_b, UV_RUN_DEFAULT);
  uv_loop_close(&loop_b);
  return NULL;
}

/* ---- outside the loop -------------------------------------------------------
 */

static __attribute__((noinline)) void outside_work(void) {
  busy_for(500000000);
  __asm__ volatile("");
}

/* ---- mutex contention ------------------------------------------------------
 */

static pthread_mutex_t contended = PTHREAD_MUTEX_INITIALIZER;
static int rounds;
static int quit;     /* atomic: the host stops */
static int finished; /* atomic: contending threads done */

static __attribute__((noinline)) void contend_lock(void) {
  pthread_mutex_lock(&contended);
  busy_for(50000);
  pthread_mutex_unlock(&contended);
}

static void* contend(void* arg) {
  int i;

  for (i = 0; i < rounds && !__atomic_load_n(&quit, __ATOMIC_RELAXED); i++)
    contend_lock();
  if (__atomic_add_fetch(&finished, 1, __ATOMIC_ACQ_REL) == 2)
    say("done");
  return NULL;
}

/* ---- common -----------------------------------------------------------------
 */

static int stopping;

static void stop_all(void) {
  if (stopping++)
    return;
  __atomic_store_n(&quit, 1, __ATOMIC_RELAXED);
  uv_pprof_stop(main_loop);
  uv_close((uv_handle_t*)&on_term, NULL);
  if (on_stdin.type == UV_POLL)
    uv_close((uv_handle_t*)&on_stdin, NULL);
  if (!uv_is_closing((uv_handle_t*)&long_timer))
    uv_close((uv_handle_t*)&long_timer, NULL);
  if (!uv_is_closing((uv_handle_t*)&short_timer))
    uv_close((uv_handle_t*)&short_timer, NULL);
}

static void stop(void) {
  stop_all();
  if (stuck_mode) { /* loop b never ends: leave now */
    uv_run(main_loop, UV_RUN_NOWAIT);
    say("stopped");
    exit(0);
  }
}

static void on_signal(uv_signal_t* s, int signum) {
  stop();
}

static void on_input(uv_poll_t* p, int status, int events) {
  char buf[64];

  if (status < 0 || read(0, buf, sizeof(buf)) <= 0)
    stop();
}

int main(int argc, char** argv) {
  struct sockaddr_storage addr;
  const char* mode = argc > 1 ? argv[1] : "";
  int n = argc > 2 ? atoi(argv[2]) : 1;
  pthread_t threads[2];
  int contending = 0;

  main_loop = uv_default_loop();
  if (strcmp(mode, "outside") == 0) {
    if (uv_pprof_start(main_loop) != 0)
      return 2;
    outside_work();
  } else if (uv_pprof_start(main_loop) != 0) {
    return 2;
  }
  if (uv_pprof_address(main_loop, &addr) != 0)
    return 2;
  uv_signal_init(main_loop, &on_term);
  uv_signal_start(&on_term, on_signal, SIGTERM);
  if (uv_poll_init(main_loop, &on_stdin, 0) == 0) /* a pipe, not a file */
    uv_poll_start(&on_stdin, UV_READABLE, on_input);
  else
    on_stdin.type = UV_UNKNOWN_HANDLE;
  uv_timer_init(main_loop, &long_timer);
  uv_timer_init(main_loop, &short_timer);
  say("port=%d loop=%p", ntohs(((struct sockaddr_in*)&addr)->sin_port),
      (void*)main_loop);
  if (strcmp(mode, "spin") == 0 || strcmp(mode, "outside") == 0) {
    cycles = n;
    uv_timer_start(&long_timer, on_long, 1000, 1000);
    uv_timer_start(&short_timer, on_short, 1500, 1000);
  } else if (strcmp(mode, "two") == 0 || strcmp(mode, "stuck") == 0) {
    stuck_mode = strcmp(mode, "stuck") == 0;
    if (stuck_mode)
      pthread_mutex_lock(&never);
    pthread_create(&b_thread, NULL, run_b,
                   strcmp(mode, "stuck") == 0 ? (void*)1 : NULL);
  } else if (strcmp(mode, "mutex") == 0) {
    rounds = n;
    pthread_create(&threads[0], NULL, contend, NULL);
    pthread_create(&threads[1], NULL, contend, NULL);
    contending = 1;
  }
  uv_run(main_loop, UV_RUN_DEFAULT);
  if (contending) {
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
  }
  if (strcmp(mode, "two") == 0) {
    uv_async_send(&b_quit);
    pthread_join(b_thread, NULL);
  }
  uv_loop_close(main_loop);
  return 0;
}
