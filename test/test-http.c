/* Unit tests of http.c and of the router's query parsing. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "request.h"
#include "task.h"

static void check_clean(const char* in, const char* want) {
  char* got = uv_pprof__http_clean_path(in);
  ASSERT_STR_EQ(got, want);
  free(got);
}

TEST_IMPL(http_clean_path) {
  check_clean("/", "/");
  check_clean("/debug/pprof/", "/debug/pprof/");
  check_clean("/debug/pprof", "/debug/pprof");
  check_clean("//debug//pprof/", "/debug/pprof/");
  check_clean("/debug/./pprof/heap", "/debug/pprof/heap");
  check_clean("/debug/x/../pprof/", "/debug/pprof/");
  check_clean("/../../debug", "/debug");
  check_clean("/debug/pprof/.", "/debug/pprof");
  check_clean("/a/bc/..", "/a");
  check_clean("/.hidden/...", "/.hidden/...");
  return 0;
}

TEST_IMPL(http_unescape) {
  char* s;

  s = uv_pprof__http_unescape("/debug/pprof/%68eap", 19, 0);
  ASSERT_STR_EQ(s, "/debug/pprof/heap");
  free(s);
  s = uv_pprof__http_unescape("a+b%2Bc", 7, 1);
  ASSERT_STR_EQ(s, "a b+c");
  free(s);
  s = uv_pprof__http_unescape("a+b", 3, 0);
  ASSERT_STR_EQ(s, "a+b");
  free(s);
  ASSERT(uv_pprof__http_unescape("%4", 2, 0) == NULL);
  ASSERT(uv_pprof__http_unescape("%zz", 3, 0) == NULL);
  ASSERT(uv_pprof__http_unescape("abc%", 4, 0) == NULL);
  return 0;
}

TEST_IMPL(http_query_get) {
  char v[32];

  ASSERT_EQ(uv_pprof__query_get("debug=1&seconds=5", "seconds", v, 32), 1);
  ASSERT_STR_EQ(v, "5");
  ASSERT_EQ(uv_pprof__query_get("debug=1&seconds=5", "debug", v, 32), 1);
  ASSERT_STR_EQ(v, "1");
  ASSERT_EQ(uv_pprof__query_get("debug=1&debug=2", "debug", v, 32), 1);
  ASSERT_STR_EQ(v, "1");
  ASSERT_EQ(uv_pprof__query_get("de%62ug=a+b%21", "debug", v, 32), 1);
  ASSERT_STR_EQ(v, "a b!");
  ASSERT_EQ(uv_pprof__query_get("gc", "gc", v, 32), 1);
  ASSERT_STR_EQ(v, "");
  ASSERT_EQ(uv_pprof__query_get("", "gc", v, 32), 0);
  ASSERT_EQ(uv_pprof__query_get("xgc=1&gcx=2", "gc", v, 32), 0);
  return 0;
}

TEST_IMPL(http_loopback) {
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;

  ASSERT_EQ(uv_ip4_addr("127.0.0.1", 1, &a4), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a4), 1);
  ASSERT_EQ(uv_ip4_addr("127.9.8.7", 1, &a4), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a4), 1);
  ASSERT_EQ(uv_ip4_addr("10.0.0.1", 1, &a4), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a4), 0);
  ASSERT_EQ(uv_ip4_addr("0.0.0.0", 1, &a4), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a4), 0);
  ASSERT_EQ(uv_ip6_addr("::1", 1, &a6), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a6), 1);
  ASSERT_EQ(uv_ip6_addr("::ffff:127.0.0.1", 1, &a6), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a6), 1);
  ASSERT_EQ(uv_ip6_addr("::ffff:192.168.1.1", 1, &a6), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a6), 0);
  ASSERT_EQ(uv_ip6_addr("::", 1, &a6), 0);
  ASSERT_EQ(uv_pprof__is_loopback((struct sockaddr*)&a6), 0);
  return 0;
}

TEST_IMPL(http_head_order) {
  static const char want200[] =
      "HTTP/1.1 200 OK\r\n"
      "Content-Disposition: attachment; filename=\"heap\"\r\n"
      "Content-Type: application/octet-stream\r\n"
      "X-Content-Type-Options: nosniff\r\n"
      "Date: ";
  static const char want404[] =
      "HTTP/1.1 404 Not Found\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "X-Content-Type-Options: nosniff\r\n"
      "X-Go-Pprof: 1\r\n"
      "Date: ";
  uv_pprof__response_t res;
  uv_pprof__buf_t out;
  const char* p;

  memset(&res, 0, sizeof(res));
  uv_pprof__buf_init(&out);
  res.status = 200;
  res.content_type = "application/octet-stream";
  snprintf(res.disposition, sizeof(res.disposition), "heap");
  ASSERT_EQ(uv_pprof__http_head(&res, 1234, 1, &out), 0);
  /* Go's order: sorted handler headers, then Date and Content-Length. */
  ASSERT_STARTS_WITH(out.base, want200);
  p = strstr(out.base, "Date: ");
  /* "Thu, 26 Nov 2026 00:02:33 GMT" */
  ASSERT_EQ(p[6 + 3], ',');
  ASSERT_STARTS_WITH(p + 6 + 25, " GMT\r\n");
  ASSERT_CONTAINS(out.base, "\r\nContent-Length: 1234\r\n\r\n");
  ASSERT_NOT_CONTAINS(out.base, "Connection: close");
  ASSERT_NOT_CONTAINS(out.base, "X-Go-Pprof");
  uv_pprof__buf_free(&out);

  memset(&res, 0, sizeof(res));
  res.status = 404;
  res.content_type = "text/plain; charset=utf-8";
  res.go_error = 1;
  ASSERT_EQ(uv_pprof__http_head(&res, 16, 0, &out), 0);
  ASSERT_STARTS_WITH(out.base, want404);
  ASSERT_CONTAINS(out.base, "Content-Length: 16\r\nConnection: close\r\n\r\n");
  uv_pprof__buf_free(&out);
  return 0;
}
