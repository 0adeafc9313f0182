/* libFuzzer target: what a client puts in a URL or a /debug/pprof/symbol
 * body. The first byte picks the reader: the symbol protocol's address
 * list (a body or a query), the query-string lookup every endpoint uses,
 * Go's `seconds` parsing, percent-decoding, and Go's path cleaning. Each
 * must answer within its bounds, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* Go's path.Clean leaves no "//", "/./" or "/../" and starts with '/'. */
static void check_clean(const char* p) {
  size_t len = strlen(p);

  if (p[0] != '/' || strstr(p, "//") != NULL || strstr(p, "/./") != NULL ||
      strstr(p, "/../") != NULL)
    abort();
  if ((len >= 3 && strcmp(p + len - 3, "/..") == 0) ||
      (len >= 2 && strcmp(p + len - 2, "/.") == 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  char* text;
  char value[64];
  uv_pprof__buf_t out;
  char* s;

  if (size == 0)
    return 0;
  text = malloc(size);
  if (text == NULL)
    return 0;
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  switch (data[0] % 5) {
    case 0: { /* the symbol protocol over the raw bytes (may hold NULs) */
      int rc;
      uv_pprof__buf_init(&out);
      rc = uv_pprof__symbol_answer(text, size - 1, &out);
      if (rc == 0 && strncmp(out.base, "num_symbols: 1\n", 15) != 0)
        abort();
      if (rc != 0 && rc != UV_E2BIG && rc != UV_ENOMEM)
        abort();
      uv_pprof__buf_free(&out);
      break;
    }
    case 1: /* a query string, and two keys every endpoint asks */
      if (uv_pprof__query_get(text, "debug", value, sizeof(value)) &&
          strlen(value) >= sizeof(value))
        abort();
      uv_pprof__query_get(text, "seconds", value, 1);
      uv_pprof__query_get(text, "", value, sizeof(value));
      break;
    case 2:
      if (uv_pprof__cpu_seconds(text) <= 0)
        abort();
      break;
    case 3:
      s = uv_pprof__http_unescape((const char*)data + 1, size - 1, data[0] & 8);
      free(s);
      break;
    default:
      if (text[0] == '/') {
        s = uv_pprof__http_clean_path(text);
        if (s != NULL)
          check_clean(s);
        free(s);
      }
      break;
  }
  free(text);
  return 0;
}
