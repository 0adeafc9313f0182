/* The test harness shared by every test file: TEST_IMPL, assertions that
 * print what they compared, and the helpers of helpers.c (real clients and
 * children beside the test, a host loop on its own thread, a named thread,
 * raw sockets). One process per test, as in libuv's runner. */
#ifndef UV_PPROF_TEST_TASK_H
#define UV_PPROF_TEST_TASK_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <uv.h>

#include "uv_pprof.h"

#define TEST_IMPL(name)      \
  int run_test_##name(void); \
  int run_test_##name(void)

#define ASSERT(expr)                                                       \
  do {                                                                     \
    if (!(expr)) {                                                         \
      fprintf(stderr, "Assertion failed in %s on line %d: %s\n", __FILE__, \
              __LINE__, #expr);                                            \
      abort();                                                             \
    }                                                                      \
  } while (0)

/* Comparisons that print both values on failure: ASSERT_EQ, _NE, _LT, _LE,
 * _GT and _GE(a, b) hold when a OP b does, for operands of any integer or
 * floating type. Each operand is evaluated once, a before b, and kept as
 * intmax_t, uintmax_t or long double as its type says (_Generic), then
 * compared by value: a signed and an unsigned operand compare as numbers
 * (C would convert a negative one, but the bare a OP b is also compiled,
 * unevaluated, so -Wsign-compare rejects such mixes as it always did); a
 * floating operand makes the comparison exact in long double. Pointers and
 * structs do not compile: compare pointers with ASSERT, strings with
 * ASSERT_STR_EQ. */
typedef enum {
  ASSERT_OP_EQ,
  ASSERT_OP_NE,
  ASSERT_OP_LT,
  ASSERT_OP_LE,
  ASSERT_OP_GT,
  ASSERT_OP_GE
} assert_op_t;

typedef struct {
  enum { ASSERT_SIGNED, ASSERT_UNSIGNED, ASSERT_FLOATING } kind;
  intmax_t i;
  uintmax_t u;
  long double f;
} assert_value_t;

assert_value_t assert_signed(intmax_t v);
assert_value_t assert_unsigned(uintmax_t v);
assert_value_t assert_floating(long double v);
/* Aborts, printing both expressions and values, unless a OP b holds. */
void assert_compare(assert_value_t a, assert_op_t op, assert_value_t b,
                    const char* file, int line, const char* a_expr,
                    const char* b_expr);

/* clang-format off */
#define ASSERT_VALUE_(x)                                                  \
  _Generic((x),                                                           \
    char: assert_signed, signed char: assert_signed,                      \
    short: assert_signed, int: assert_signed,                             \
    long: assert_signed, long long: assert_signed,                        \
    _Bool: assert_unsigned, unsigned char: assert_unsigned,               \
    unsigned short: assert_unsigned, unsigned int: assert_unsigned,       \
    unsigned long: assert_unsigned, unsigned long long: assert_unsigned,  \
    float: assert_floating, double: assert_floating,                      \
    long double: assert_floating)(x)
/* clang-format on */

#define ASSERT_CMP_(a, op, code, b)                                         \
  do {                                                                      \
    assert_value_t assert_a_ = ASSERT_VALUE_(a);                            \
    assert_value_t assert_b_ = ASSERT_VALUE_(b);                            \
    if (0)                                                                  \
      (void)((a)op(b));                                                     \
    assert_compare(assert_a_, code, assert_b_, __FILE__, __LINE__, #a, #b); \
  } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, ASSERT_OP_EQ, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, ASSERT_OP_NE, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, ASSERT_OP_LT, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, ASSERT_OP_LE, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, ASSERT_OP_GT, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, ASSERT_OP_GE, b)

#define ASSERT_STR_EQ(a, b)                                   \
  do {                                                        \
    const char *a_ = (a), *b_ = (b);                          \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {    \
      fprintf(stderr,                                         \
              "Assertion failed in %s on line %d: %s == %s\n" \
              "  got:      \"%s\"\n  expected: \"%s\"\n",     \
              __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", \
              b_ ? b_ : "(null)");                            \
      abort();                                                \
    }                                                         \
  } while (0)

/* needle is in hay; prints hay if not. */
#define ASSERT_CONTAINS(hay, needle)                              \
  do {                                                            \
    const char *h_ = (hay), *n_ = (needle);                       \
    if (h_ == NULL || strstr(h_, n_) == NULL) {                   \
      fprintf(stderr,                                             \
              "Assertion failed in %s on line %d: \"%s\" not in " \
              "%s:\n%s\n",                                        \
              __FILE__, __LINE__, n_, #hay, h_ ? h_ : "(null)");  \
      abort();                                                    \
    }                                                             \
  } while (0)

/* needle is not in hay; prints where it is if it is. */
#define ASSERT_NOT_CONTAINS(hay, needle)                                      \
  do {                                                                        \
    const char *h_ = (hay), *n_ = (needle);                                   \
    const char* at_ = h_ != NULL ? strstr(h_, n_) : NULL;                     \
    if (h_ == NULL || at_ != NULL) {                                          \
      fprintf(stderr,                                                         \
              "Assertion failed in %s on line %d: \"%s\" in %s%s:\n%.300s\n", \
              __FILE__, __LINE__, n_, #hay, h_ ? ", here" : " (null)",        \
              at_ ? at_ : "");                                                \
      abort();                                                                \
    }                                                                         \
  } while (0)

/* s begins with prefix; prints the beginning of s if not. */
#define ASSERT_STARTS_WITH(s, prefix)                                  \
  do {                                                                 \
    const char *s_ = (s), *p_ = (prefix);                              \
    if (s_ == NULL || strncmp(s_, p_, strlen(p_)) != 0) {              \
      fprintf(stderr,                                                  \
              "Assertion failed in %s on line %d: %s starts with %s\n" \
              "  got:      \"%.*s\"\n  expected: \"%s\"\n",            \
              __FILE__, __LINE__, #s, #prefix, (int)strlen(p_) + 40,   \
              s_ ? s_ : "(null)", p_);                                 \
      abort();                                                         \
    }                                                                  \
  } while (0)

/* ---- helpers.c ---------------------------------------------------------- */

/* Output of a child process. */
typedef struct {
  char* out; /* stdout, NUL-terminated (may contain NULs: see out_len) */
  size_t out_len;
  char* err;  /* stderr, NUL-terminated */
  int status; /* exit code, or 128 + signal, or -1 on timeout */
} run_result_t;

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null, killing it
 * after timeout_ms. `env` (NULL-terminated "K=V" list, may be NULL) is added
 * to the environment; an entry "K" without '=' removes K from it, "K*" every
 * variable whose name starts with K. */
void run_cmd(const char* const argv[], const char* const env[], int timeout_ms,
             run_result_t* r);
/* The same through "sh -c". */
void run_sh(const char* script, int timeout_ms, run_result_t* r);
void run_free(run_result_t* r);

/* A child process running beside the test (a host, a server): stdin and
 * stdout on pipes, stderr into a file, in a process group of its own. It
 * dies with the thread that started it (PR_SET_PDEATHSIG): start children
 * from the test's main thread. */
typedef struct {
  pid_t pid;
  int in;        /* write end of its stdin: closing it ends the hosts */
  int out;       /* read end of its stdout */
  char log[512]; /* its stderr: NAME-N.log in a test_tmpdir() */
} child_t;

/* Starts argv[0] (a path) with the environment changed by `env` as run_cmd
 * does. Asserts that it was executed. */
void child_start(child_t* c, const char* name, const char* const argv[],
                 const char* const env[]);
/* One line of its stdout into `line` (without the '\n'); asserts that it
 * comes within timeout_ms and fits. */
void child_line(child_t* c, char* line, size_t size, int timeout_ms);
/* Closes its stdin, reads its stdout until EOF and reaps it, killing its
 * group if it takes more than timeout_ms in all. Returns its status as
 * run_result_t's; its stdout (malloc'd) in *out unless out is NULL. */
int child_end(child_t* c, int timeout_ms, char** out);
/* SIGTERM, then SIGKILL to its group after 10 s; reaps it. */
void child_stop(child_t* c);
/* Prints the last 20 lines of its stderr to ours. */
void child_dump_log(const child_t* c);

/* A host: its own loop on its own thread, with a 1 ms repeating timer that
 * records how late it fires, and uv_pprof started on it. */
typedef struct test_host_s test_host_t;
/* Starts uv_pprof_start_ex(options) on a new host loop (options NULL: port
 * 0, quiet). Asserts success. */
test_host_t* host_start(const uv_pprof_options_t* options);
/* Runs fn(arg) on the host's loop thread and waits for it. */
void host_call(test_host_t* h, void (*fn)(uv_loop_t*, void*), void* arg);
int host_port(test_host_t* h);
/* "http://127.0.0.1:PORT" */
const char* host_base(test_host_t* h);
/* Largest lateness of the 1 ms timer so far, in ms. */
double host_max_lateness_ms(test_host_t* h);
/* Number of times the 1 ms timer has fired so far. */
uint64_t host_ticks(test_host_t* h);
/* uv_pprof_stop, closes the host's own handles, joins the thread and asserts
 * uv_loop_close() == 0. */
void host_stop(test_host_t* h);

/* curl -s -i (headers + body) of base+path; extra args appended. The body of
 * the answer starts after the first "\r\n\r\n". */
void curl_get(test_host_t* h, const char* path, const char* const extra[],
              run_result_t* r);
/* HTTP status of a curl -i answer. */
int http_status(const run_result_t* r);
/* Value of header `name` (case-insensitive) in a curl -i answer, or NULL;
 * returns a static buffer. */
const char* http_header(const run_result_t* r, const char* name);
/* Body of a curl -i answer and its length. */
const char* http_body(const run_result_t* r, size_t* len);

/* A thread named "uvpp-helper" that waits until stopped: a second thread
 * whose name and tid the tests know. */
typedef struct {
  pthread_t thread;
  pthread_barrier_t ready;
  pthread_barrier_t done;
  int tid;
} helper_thread_t;

/* Starts it and waits until it has its name and tid. */
void helper_thread_start(helper_thread_t* h);
/* Lets it end and joins it. */
void helper_thread_stop(helper_thread_t* h);

/* Raw TCP client on 127.0.0.1:port. Returns an fd (blocking, with a 5 s
 * receive timeout) or asserts. */
int tcp_connect(int port);
/* Sends all of data. Returns 0 or -errno. */
int tcp_send(int fd, const void* data, size_t len);
/* Reads until EOF or timeout_ms into a malloc'd NUL-terminated buffer. */
char* tcp_read_all(int fd, int timeout_ms, size_t* len);

/* ---- failalloc.c -------------------------------------------------------- */

/* The calling thread's next calloc (through the test binary's
 * -Wl,--wrap=calloc: uv_pprof's objects and the tests, not libuv) returns
 * NULL with ENOMEM. */
void failalloc_calloc_next(void);
/* How many callocs have failed so far, every thread. */
int failalloc_failures(void);

/* ---- profiles ----------------------------------------------------------- */

struct uv_pprof__buf_s;
typedef struct Perftools__Profiles__Profile Perftools__Profiles__Profile;

/* Gunzips gz[0..len) into raw (appending), asserting gzip's magic and that
 * exactly one gzip member is there. */
void profile_gunzip(const void* gz, size_t len, struct uv_pprof__buf_s* raw);
/* Gunzips and decodes a profile; asserts on any failure. Free it with
 * perftools__profiles__profile__free_unpacked(p, NULL). */
Perftools__Profiles__Profile* profile_decode(const void* gz, size_t len);
/* p's string i, asserting the index is in range. */
const char* profile_str(const Perftools__Profiles__Profile* p, int64_t i);

/* The entries of p with that id; asserts there is one. */
const struct Perftools__Profiles__Location* profile_location(
    const Perftools__Profiles__Profile* p, uint64_t id);
const struct Perftools__Profiles__Function* profile_function(
    const Perftools__Profiles__Profile* p, uint64_t id);
/* The mapping with that id, or NULL. */
const struct Perftools__Profiles__Mapping* profile_mapping(
    const Perftools__Profiles__Profile* p, uint64_t id);
/* Runs `go tool pprof ARGS...` (NULL-terminated, at most 28) with its HOME
 * and PPROF_TMPDIR in test_tmpdir(); asserts it exits 0. */
void go_pprof(const char* const args[], run_result_t* r);

/* The path of the test binary (/proc/self/exe). */
void read_exe(char* exe, size_t size);
/* This process's name, as /proc/self/comm says (without the '\n'). */
void read_comm(char* name, size_t size);
/* A fresh temporary directory (removed by the runner at exit). */
const char* test_tmpdir(void);
/* Path of a file next to the test binary's sources: test/fixtures/NAME. */
const char* fixture_path(const char* name);

#endif /* UV_PPROF_TEST_TASK_H */
