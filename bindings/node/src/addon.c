/* The Node-API addon of the uv-pprof package: start(), startFromEnv() and
 * stop() over uv_pprof_start_ex(), uv_pprof_start() and uv_pprof_stop() on
 * the calling environment's own libuv loop (napi_get_uv_event_loop). It uses
 * the libuv that node exports and links uv_pprof's static library; options
 * are validated in index.js, the C library validates them again. Each
 * environment (the main thread, every worker thread) keeps its own state and
 * stops uv_pprof from its cleanup hook, so a worker's loop closes cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "uv_pprof.h"

typedef struct {
  uv_loop_t* loop;
  int started; /* uv_pprof_start*() succeeded here; cleanup hook added */
} env_state_t;

#define CHECK(env, call)                                                  \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), NULL, "uv-pprof: Node-API failed: " #call); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static void on_env_cleanup(void* arg) {
  env_state_t* st = arg;

  if (st->started)
    uv_pprof_stop(st->loop);
  st->started = 0;
}

static void on_state_free(napi_env env, void* data, void* hint) {
  free(data);
}

static env_state_t* state_of(napi_env env) {
  void* data = NULL;

  if (napi_get_instance_data(env, &data) != napi_ok)
    return NULL;
  return data;
}

/* Throws "uv-pprof: <what>: <libuv message>" with .code = the libuv error
 * name (EADDRINUSE, EINVAL, ...). */
static void throw_uv(napi_env env, const char* what, int err) {
  char msg[256];

  snprintf(msg, sizeof(msg), "uv-pprof: %s: %s", what, uv_strerror(err));
  napi_throw_error(env, uv_err_name(err), msg);
}

/* The URL string of the server on st->loop, or JS null when none serves
 * there (uv_pprof disabled, or this loop only registered). */
static napi_value url_value(napi_env env, env_state_t* st) {
  char url[128];
  napi_value v;

  if (!st->started || uv_pprof_url(st->loop, url, sizeof(url)) != 0) {
    CHECK(env, napi_get_null(env, &v));
    return v;
  }
  CHECK(env, napi_create_string_utf8(env, url, NAPI_AUTO_LENGTH, &v));
  return v;
}

static napi_value after_start(napi_env env, env_state_t* st, int err) {
  if (err != 0) {
    throw_uv(env, "cannot start", err);
    return NULL;
  }
  if (!st->started) {
    CHECK(env, napi_add_env_cleanup_hook(env, on_env_cleanup, st));
    st->started = 1;
  }
  return url_value(env, st);
}

/* Reads property `name` of `obj` as a string into buf (empty when the
 * property is undefined or null). Returns 0, or -1 with a JS error thrown. */
static int get_string(napi_env env, napi_value obj, const char* name, char* buf,
                      size_t size) {
  napi_value v;
  napi_valuetype t;
  size_t len;

  buf[0] = '\0';
  if (napi_get_named_property(env, obj, name, &v) != napi_ok ||
      napi_typeof(env, v, &t) != napi_ok)
    return -1;
  if (t == napi_undefined || t == napi_null)
    return 0;
  if (t != napi_string) {
    char msg[96];
    snprintf(msg, sizeof(msg), "uv-pprof: options.%s must be a string", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok)
    return -1;
  if (len + 1 >= size) {
    char msg[96];
    snprintf(msg, sizeof(msg), "uv-pprof: options.%s is too long", name);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* Reads property `name` as an integer into *out; leaves *out when undefined.
 * Returns 0, or -1 with a JS error thrown. */
static int get_int(napi_env env, napi_value obj, const char* name, int* out) {
  napi_value v;
  napi_valuetype t;
  int32_t i;

  if (napi_get_named_property(env, obj, name, &v) != napi_ok ||
      napi_typeof(env, v, &t) != napi_ok)
    return -1;
  if (t == napi_undefined)
    return 0;
  if (t != napi_number || napi_get_value_int32(env, v, &i) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof(msg), "uv-pprof: options.%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  *out = i;
  return 0;
}

/* start({host, port, token, quiet}) -> URL. Throws with .code EBUSY when
 * already started on this loop, EADDRINUSE, EACCES, EINVAL. */
static napi_value js_start(napi_env env, napi_callback_info info) {
  env_state_t* st = state_of(env);
  uv_pprof_options_t o;
  napi_value argv[1];
  napi_valuetype t;
  size_t argc = 1;
  char host[256];
  char token[1024];
  int quiet = 0;

  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uv_pprof_options_init(&o);
  if (argc >= 1) {
    CHECK(env, napi_typeof(env, argv[0], &t));
    if (t != napi_object) {
      napi_throw_type_error(env, NULL, "uv-pprof: options must be an object");
      return NULL;
    }
    if (get_string(env, argv[0], "host", host, sizeof(host)) != 0 ||
        get_string(env, argv[0], "token", token, sizeof(token)) != 0 ||
        get_int(env, argv[0], "port", &o.port) != 0 ||
        get_int(env, argv[0], "quiet", &quiet) != 0)
      return NULL;
    if (host[0] != '\0')
      o.host = host;
    if (token[0] != '\0')
      o.token = token;
    o.quiet = quiet;
  }
  return after_start(env, st, uv_pprof_start_ex(st->loop, &o));
}

/* startFromEnv() -> URL, or null when UV_PPROF leaves uv_pprof disabled (or
 * when another thread's loop serves and this one is only registered). */
static napi_value js_start_from_env(napi_env env, napi_callback_info info) {
  env_state_t* st = state_of(env);
  int err = uv_pprof_start(st->loop);

  if (err != 0) {
    throw_uv(env, "cannot start from UV_PPROF", err);
    return NULL;
  }
  /* Disabled or not, the hook's uv_pprof_stop() is right: it does nothing
   * on a loop uv_pprof never touched. */
  return after_start(env, st, 0);
}

/* stop(): closes everything uv_pprof opened on this loop. */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  env_state_t* st = state_of(env);

  if (st->started) {
    napi_remove_env_cleanup_hook(env, on_env_cleanup, st);
    on_env_cleanup(st);
  }
  return NULL;
}

/* url() -> the URL while serving, else null. */
static napi_value js_url(napi_env env, napi_callback_info info) {
  return url_value(env, state_of(env));
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  static const struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"start", js_start},
             {"startFromEnv", js_start_from_env},
             {"stop", js_stop},
             {"url", js_url}};
  env_state_t* st;
  napi_value fn;
  size_t i;

  st = calloc(1, sizeof(*st));
  if (st == NULL) {
    napi_throw_error(env, NULL, "uv-pprof: out of memory");
    return NULL;
  }
  if (napi_get_uv_event_loop(env, &st->loop) != napi_ok ||
      napi_set_instance_data(env, st, on_state_free, NULL) != napi_ok) {
    free(st);
    napi_throw_error(env, NULL, "uv-pprof: cannot reach the libuv loop");
    return NULL;
  }
  for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    CHECK(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH,
                                    fns[i].cb, NULL, &fn));
    CHECK(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return exports;
}
