/* Growable byte buffer used for every response body and encoding step. An
 * allocation failure is sticky (b->oom) so that a long run of appends can be
 * checked once at the end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

void uv_pprof__buf_init(uv_pprof__buf_t* b) {
  memset(b, 0, sizeof(*b));
}

void uv_pprof__buf_free(uv_pprof__buf_t* b) {
  free(b->base);
  uv_pprof__buf_init(b);
}

static int reserve(uv_pprof__buf_t* b, size_t extra) {
  size_t cap;
  char* base;

  if (b->oom)
    return UV_ENOMEM;
  if (b->len + extra + 1 <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  base = realloc(b->base, cap);
  if (base == NULL) {
    b->oom = 1;
    return UV_ENOMEM;
  }
  b->base = base;
  b->cap = cap;
  return 0;
}

int uv_pprof__buf_append(uv_pprof__buf_t* b, const void* data, size_t len) {
  if (reserve(b, len) != 0)
    return UV_ENOMEM;
  if (len > 0)
    memcpy(b->base + b->len, data, len);
  b->len += len;
  b->base[b->len] = '\0';
  return 0;
}

void* uv_pprof__buf_room(uv_pprof__buf_t* b, size_t extra) {
  return reserve(b, extra) == 0 ? b->base + b->len : NULL;
}

int uv_pprof__buf_printf(uv_pprof__buf_t* b, const char* fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || reserve(b, (size_t)n) != 0)
    return UV_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int uv_pprof__buf_html(uv_pprof__buf_t* b, const char* s) {
  for (; *s != '\0'; s++) {
    const char* esc;
    switch (*s) {
      case '&':
        esc = "&amp;";
        break;
      case '<':
        esc = "&lt;";
        break;
      case '>':
        esc = "&gt;";
        break;
      case '\'':
        esc = "&#39;";
        break;
      case '"':
        esc = "&#34;";
        break;
      default:
        esc = NULL;
    }
    if (esc != NULL)
      uv_pprof__buf_append(b, esc, strlen(esc));
    else
      uv_pprof__buf_append(b, s, 1);
  }
  return b->oom ? UV_ENOMEM : 0;
}

void uv_pprof__buf_move(uv_pprof__buf_t* dst, uv_pprof__buf_t* src) {
  uv_pprof__buf_free(dst);
  *dst = *src;
  uv_pprof__buf_init(src);
}
