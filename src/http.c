/* HTTP details that do not depend on a connection: status texts, the
 * response head in Go's header order (no header value with a line break),
 * percent-decoding and Go's escaping of a redirect's path, Go's path
 * cleaning, query parameters as Go's handlers read them, the Accept-Encoding
 * and If-None-Match values of cached files, the loopback test and the Host
 * rule of a loopback server. The connection and llhttp glue is in
 * server.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "request.h"

const char* uv_pprof__http_status_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 301:
      return "Moved Permanently";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Request Entity Too Large";
    case 414:
      return "Request URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

/* IMF-fixdate, built by hand: strftime's names follow the host's locale. */
static void format_date(char out[64]) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  struct tm tm;

  gmtime_r(&now, &tm);
  snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
           tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
}

/* A header value ends at its line: a CR, LF or NUL inside one would let
 * whoever chose it write headers of their own. */
static int value_ok(const char* v) {
  return v == NULL || strpbrk(v, "\r\n") == NULL;
}

int uv_pprof__http_head(const uv_pprof__response_t* res, size_t body_len,
                        int keep_alive, uv_pprof__buf_t* out) {
  char date[64];
  size_t i;

  if (!value_ok(res->content_type) || !value_ok(res->disposition) ||
      !value_ok(res->location) || strchr(res->disposition, '"') != NULL)
    return UV_EINVAL;
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(res->headers); i++)
    if (!value_ok(res->headers[i]))
      return UV_EINVAL;
  format_date(date);
  /* net/http writes the handler's headers sorted by name, then Date and
   * Content-Length. */
  uv_pprof__buf_printf(out, "HTTP/1.1 %d %s\r\n", res->status,
                       uv_pprof__http_status_text(res->status));
  if (res->status == 405)
    uv_pprof__buf_printf(out, "Allow: GET, HEAD, POST\r\n");
  if (res->disposition[0] != '\0')
    uv_pprof__buf_printf(out,
                         "Content-Disposition: attachment; "
                         "filename=\"%s\"\r\n",
                         res->disposition);
  uv_pprof__buf_printf(out, "Content-Type: %s\r\n", res->content_type);
  if (res->location != NULL)
    uv_pprof__buf_printf(out, "Location: %s\r\n", res->location);
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(res->headers); i++)
    if (res->headers[i] != NULL)
      uv_pprof__buf_printf(out, "%s\r\n", res->headers[i]);
  uv_pprof__buf_printf(out, "X-Content-Type-Options: nosniff\r\n");
  if (res->go_error)
    uv_pprof__buf_printf(out, "X-Go-Pprof: 1\r\n");
  uv_pprof__buf_printf(out, "Date: %s\r\n", date);
  /* A 304 has no body; its Content-Length would be the 200's. */
  if (res->status != 304)
    uv_pprof__buf_printf(out, "Content-Length: %zu\r\n", body_len);
  if (!keep_alive)
    uv_pprof__buf_printf(out, "Connection: close\r\n");
  uv_pprof__buf_printf(out, "\r\n");
  return out->oom ? UV_ENOMEM : 0;
}

static int unhex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char* uv_pprof__http_unescape(const char* src, size_t len, int plus_is_space) {
  char* out = malloc(len + 1);
  size_t i;
  size_t n = 0;

  if (out == NULL)
    return NULL;
  for (i = 0; i < len; i++) {
    if (src[i] == '%') {
      int hi;
      int lo;
      if (i + 2 >= len || (hi = unhex(src[i + 1])) < 0 ||
          (lo = unhex(src[i + 2])) < 0) {
        free(out);
        errno = EINVAL;
        return NULL;
      }
      out[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else if (src[i] == '+' && plus_is_space) {
      out[n++] = ' ';
    } else {
      out[n++] = src[i];
    }
  }
  out[n] = '\0';
  return out;
}

/* Go's url.shouldEscape: what a path (query: 0) or a query (1) keeps. */
static int keep_byte(unsigned char c, int query) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  switch (c) {
    case '-':
    case '_':
    case '.':
    case '~':
    case '$':
    case '&':
    case '+':
    case ',':
    case '/':
    case ':':
    case ';':
    case '=':
    case '@':
      return 1;
    case '?':
    case '%': /* a query arrives escaped already */
    case '!':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '[':
    case ']':
      return query;
    default:
      return 0;
  }
}

static void escape(uv_pprof__buf_t* out, const char* s, int query) {
  static const char hex[] = "0123456789ABCDEF";

  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    char e[3] = {'%', hex[c >> 4], hex[c & 15]};
    if (keep_byte(c, query))
      uv_pprof__buf_append(out, s, 1);
    else
      uv_pprof__buf_append(out, e, 3);
  }
}

int uv_pprof__http_location(const char* path, const char* query,
                            uv_pprof__buf_t* out) {
  /* "//x" names another host; a backslash, which browsers read as "/",
   * goes out escaped. */
  if (path[0] != '/' || path[1] == '/')
    return UV_EINVAL;
  escape(out, path, 0);
  if (query[0] != '\0') {
    uv_pprof__buf_append(out, "?", 1);
    escape(out, query, 1);
  }
  return out->oom ? UV_ENOMEM : 0;
}

char* uv_pprof__http_clean_path(const char* path) {
  size_t len = strlen(path);
  char* out = malloc(len + 2);
  size_t r = 0;
  size_t w = 0;
  int trailing;

  if (out == NULL)
    return NULL;
  trailing = len > 1 && path[len - 1] == '/';
  out[w++] = '/';
  while (r < len) {
    if (path[r] == '/') {
      r++;
    } else if (path[r] == '.' && (r + 1 == len || path[r + 1] == '/')) {
      r++;
    } else if (path[r] == '.' && path[r + 1] == '.' &&
               (r + 2 == len || path[r + 2] == '/')) {
      r += 2;
      if (w > 1) {
        w--;
        while (w > 1 && out[w - 1] != '/')
          w--;
        if (w > 1)
          w--;
      }
    } else {
      if (w > 1)
        out[w++] = '/';
      while (r < len && path[r] != '/')
        out[w++] = path[r++];
    }
  }
  if (trailing && w > 1)
    out[w++] = '/';
  out[w] = '\0';
  return out;
}

int uv_pprof__is_loopback(const struct sockaddr* addr) {
  if (addr->sa_family == AF_INET) {
    const struct sockaddr_in* a = (const struct sockaddr_in*)addr;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr->sa_family == AF_INET6) {
    const struct sockaddr_in6* a = (const struct sockaddr_in6*)addr;
    if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
      return 1;
    return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) &&
           a->sin6_addr.s6_addr[12] == 127;
  }
  return 0;
}

/* "localhost" in any case, or an IPv4 or IPv6 (bracketed) loopback
 * literal, written as a browser writes a URL's host: no trailing dot, no
 * short forms, no zone. */
static int local_name(const char* host, size_t len, int bracketed) {
  char ip[64];
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;

  if (len == 0 || len >= sizeof(ip))
    return 0;
  memcpy(ip, host, len);
  ip[len] = '\0';
  if (bracketed) {
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    return inet_pton(AF_INET6, ip, &a6.sin6_addr) == 1 &&
           uv_pprof__is_loopback((struct sockaddr*)&a6);
  }
  if (len == 9 && strncasecmp(ip, "localhost", 9) == 0)
    return 1;
  memset(&a4, 0, sizeof(a4));
  a4.sin_family = AF_INET;
  return inet_pton(AF_INET, ip, &a4.sin_addr) == 1 &&
         uv_pprof__is_loopback((struct sockaddr*)&a4);
}

int uv_pprof__http_host_is_local(const char* host, size_t len) {
  const char* end;
  const char* name;
  const char* rest; /* after the name: nothing, or ":port" */
  size_t name_len;
  int bracketed = 0;

  while (len > 0 && (host[0] == ' ' || host[0] == '\t')) {
    host++;
    len--;
  }
  while (len > 0 && (host[len - 1] == ' ' || host[len - 1] == '\t'))
    len--;
  end = host + len;
  name = host;
  if (len > 0 && host[0] == '[') {
    const char* close = memchr(host, ']', len);
    if (close == NULL)
      return 0;
    bracketed = 1;
    name = host + 1;
    name_len = (size_t)(close - name);
    rest = close + 1;
  } else {
    const char* colon = memchr(host, ':', len);
    name_len = colon != NULL ? (size_t)(colon - host) : len;
    rest = host + name_len;
  }
  if (rest < end) {
    if (*rest != ':' || end - rest - 1 > 5)
      return 0;
    for (rest++; rest < end; rest++)
      if (*rest < '0' || *rest > '9')
        return 0;
  }
  return local_name(name, name_len, bracketed);
}

/* Percent-decodes src[0..len) ('+' as a space) into out, truncated to
 * size - 1 bytes and NUL-ended; *full is the decoded length. Returns 0, or
 * -1 on a bad escape. Allocates nothing: a query is read the same however
 * short of memory the process is. */
static int decode_into(const char* src, size_t len, char* out, size_t size,
                       size_t* full) {
  size_t i;
  size_t n = 0;

  for (i = 0; i < len; i++) {
    int c = (unsigned char)src[i];
    if (c == '%') {
      int hi;
      int lo;
      if (i + 2 >= len || (hi = unhex(src[i + 1])) < 0 ||
          (lo = unhex(src[i + 2])) < 0)
        return -1;
      c = hi * 16 + lo;
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (n + 1 < size)
      out[n] = (char)c;
    n++;
  }
  if (size > 0)
    out[n < size ? n : size - 1] = '\0';
  *full = n;
  return 0;
}

int uv_pprof__query_get(const char* query, const char* key, char* buf,
                        size_t size) {
  const char* p = query;
  size_t key_len = strlen(key);

  while (*p != '\0') {
    const char* end = strchr(p, '&');
    const char* eq;
    char k[64];
    size_t k_len;
    size_t v_len;
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

    eq = memchr(p, '=', len);
    if (decode_into(p, eq != NULL ? (size_t)(eq - p) : len, k, sizeof(k),
                    &k_len) == 0 &&
        k_len == key_len && memcmp(k, key, key_len) == 0) {
      if (eq == NULL) {
        if (size > 0)
          buf[0] = '\0';
        return 1;
      }
      return decode_into(eq + 1, len - (size_t)(eq + 1 - p), buf, size,
                         &v_len) == 0;
    }
    p += len;
    if (*p == '&')
      p++;
  }
  return 0;
}

int uv_pprof__parse_int(const char* s, long long* out) {
  char* end;

  if (*s == '\0' || *s == ' ' || (s[0] == '0' && s[1] == 'x'))
    return -1;
  errno = 0;
  *out = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s)
    return -1;
  return 0;
}

static const char* skip_space(const char* p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* The length of p's element up to the next ',' (or the end). */
static size_t element(const char* p) {
  const char* end = strchr(p, ',');

  return end != NULL ? (size_t)(end - p) : strlen(p);
}

int uv_pprof__accepts_gzip(const char* value) {
  const char* p = value;

  while (*p != '\0') {
    size_t len;
    size_t name;
    const char* q;

    p = skip_space(p);
    len = element(p);
    for (name = 0; name < len && p[name] != ';' && p[name] != ' '; name++)
      ;
    if ((name == 4 && strncasecmp(p, "gzip", 4) == 0) ||
        (name == 6 && strncasecmp(p, "x-gzip", 6) == 0) ||
        (name == 1 && p[0] == '*')) {
      /* q=0 (0.0, 0.000) refuses the coding */
      q = memchr(p, ';', len);
      if (q == NULL)
        return 1;
      q = skip_space(q + 1);
      if (strncasecmp(q, "q=", 2) != 0)
        return 1;
      for (q += 2; *q == '0' || *q == '.'; q++)
        ;
      if (*q >= '1' && *q <= '9')
        return 1;
    }
    p += len;
    if (*p == ',')
      p++;
  }
  return 0;
}

int uv_pprof__etag_matches(const char* value, const char* etag) {
  const char* p = value;
  size_t n = strlen(etag);

  while (*p != '\0') {
    size_t len;

    p = skip_space(p);
    len = element(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
      len--;
    if (len == 1 && p[0] == '*')
      return 1;
    /* If-None-Match compares weakly: W/"x" matches "x". */
    if (len > 2 && p[0] == 'W' && p[1] == '/') {
      p += 2;
      len -= 2;
    }
    if (len == n && memcmp(p, etag, n) == 0)
      return 1;
    p += element(p);
    if (*p == ',')
      p++;
  }
  return 0;
}
