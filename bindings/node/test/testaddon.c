/* A Node-API addon for the uv-pprof tests: native work with names the
 * profiles must show. leak() keeps 32 MiB from one malloc in
 * uv_pprof_node_test_leak (the heap test); spin(ms) burns ms of the calling
 * thread's CPU time in uv_pprof_node_test_spin (the CPU tests). */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <node_api.h>

#define LEAK_BYTES (32u << 20)

static void* leaked;

__attribute__((noinline)) void* uv_pprof_node_test_leak(size_t size);
__attribute__((noinline)) uint64_t uv_pprof_node_test_spin(int64_t ms);

void* uv_pprof_node_test_leak(size_t size) {
  void* p = malloc(size);

  __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call into malloc */
  return p;
}

static int64_t cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Mostly arithmetic, so that samples land in this function itself and not
 * in the clock read. */
uint64_t uv_pprof_node_test_spin(int64_t ms) {
  int64_t end = cpu_ns() + ms * 1000000;
  uint64_t x = 88172645463325252u;
  int i;

  do {
    for (i = 0; i < 200000; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  } while (cpu_ns() < end);
  return x;
}

static napi_value js_leak(napi_env env, napi_callback_info info) {
  napi_value v;

  if (leaked == NULL)
    leaked = uv_pprof_node_test_leak(LEAK_BYTES);
  napi_create_uint32(env, leaked != NULL ? LEAK_BYTES : 0, &v);
  return v;
}

static napi_value js_spin(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_value v;
  size_t argc = 1;
  int64_t ms = 0;

  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int64(env, argv[0], &ms) != napi_ok) {
    napi_throw_type_error(env, NULL, "spin(ms): ms must be a number");
    return NULL;
  }
  napi_create_double(env, (double)(uv_pprof_node_test_spin(ms) & 0xffff), &v);
  return v;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn;

  napi_create_function(env, "leak", NAPI_AUTO_LENGTH, js_leak, NULL, &fn);
  napi_set_named_property(env, exports, "leak", fn);
  napi_create_function(env, "spin", NAPI_AUTO_LENGTH, js_spin, NULL, &fn);
  napi_set_named_property(env, exports, "spin", fn);
  return exports;
}
