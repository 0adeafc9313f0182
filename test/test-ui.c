/* Tests of the built-in UI's server side (src/ui.c): the header parsers, and
 * the real server's answers to curl: the page for every profile, its files
 * gzipped when asked and revalidated by ETag, 404s. The page itself is
 * tested in real browsers (test/ui/). */
#include <string.h>

#include "profile.h"
#include "task.h"

TEST_IMPL(ui_accepts_gzip) {
  ASSERT_EQ(uv_pprof__accepts_gzip("gzip"), 1);
  ASSERT_EQ(uv_pprof__accepts_gzip("gzip, deflate, br"), 1);
  ASSERT_EQ(uv_pprof__accepts_gzip("br, GZIP"), 1);
  ASSERT_EQ(uv_pprof__accepts_gzip("deflate, gzip;q=0.5"), 1);
  ASSERT_EQ(uv_pprof__accepts_gzip("x-gzip"), 1);
  ASSERT_EQ(uv_pprof__accepts_gzip("*"), 1);
  ASSERT_EQ(uv_pprof__accepts_gzip("gzip;q=0"), 0);
  ASSERT_EQ(uv_pprof__accepts_gzip("gzip; q=0.000, deflate"), 0);
  ASSERT_EQ(uv_pprof__accepts_gzip("identity"), 0);
  ASSERT_EQ(uv_pprof__accepts_gzip("gzipx, xgzip"), 0);
  ASSERT_EQ(uv_pprof__accepts_gzip(""), 0);
  ASSERT_EQ(uv_pprof__accepts_gzip(",,;"), 0);
  return 0;
}

TEST_IMPL(ui_etag_matches) {
  ASSERT_EQ(uv_pprof__etag_matches("\"abc\"", "\"abc\""), 1);
  ASSERT_EQ(uv_pprof__etag_matches("W/\"abc\"", "\"abc\""), 1);
  ASSERT_EQ(uv_pprof__etag_matches("\"x\", \"abc\" ", "\"abc\""), 1);
  ASSERT_EQ(uv_pprof__etag_matches("*", "\"abc\""), 1);
  ASSERT_EQ(uv_pprof__etag_matches("\"abc-gz\"", "\"abc\""), 0);
  ASSERT_EQ(uv_pprof__etag_matches("\"ab\"", "\"abc\""), 0);
  ASSERT_EQ(uv_pprof__etag_matches("abc", "\"abc\""), 0);
  ASSERT_EQ(uv_pprof__etag_matches("", "\"abc\""), 0);
  ASSERT_EQ(uv_pprof__etag_matches("W/", "\"abc\""), 0);
  return 0;
}

static void get(test_host_t* h, const char* path, const char* const extra[],
                run_result_t* r) {
  curl_get(h, path, extra, r);
  ASSERT_EQ(r->status, 0);
}

/* The page's answer: identical for every profile, gzipped on request (the
 * same bytes once gunzipped), 304 for its current ETag only. */
TEST_IMPL(ui_routes) {
  static const char* const gzip[] = {"-H", "Accept-Encoding: gzip", NULL};
  static const char* const names[] = {"heap",   "allocs", "goroutine",
                                      "block",  "mutex",  "threadcreate",
                                      "profile"};
  test_host_t* h = host_start(NULL);
  run_result_t plain;
  run_result_t gz;
  run_result_t r;
  uv_pprof__buf_t raw;
  char etag[128];
  char etag_gz[128];
  char inm[160];
  const char* revalidate[] = {"-H", inm, NULL};
  const char* body;
  const char* gz_body;
  size_t len;
  size_t gz_len;
  size_t i;

  get(h, "/debug/pprof/ui/heap", NULL, &plain);
  ASSERT_EQ(http_status(&plain), 200);
  ASSERT_STR_EQ(http_header(&plain, "Content-Type"),
                "text/html; charset=utf-8");
  ASSERT(http_header(&plain, "Content-Encoding") == NULL);
  ASSERT_STR_EQ(http_header(&plain, "Cache-Control"), "no-cache");
  ASSERT_STR_EQ(http_header(&plain, "Vary"), "Accept-Encoding");
  ASSERT(strstr(http_header(&plain, "Content-Security-Policy"),
                "script-src 'self'") != NULL);
  snprintf(etag, sizeof(etag), "%s", http_header(&plain, "ETag"));
  ASSERT(etag[0] == '"');
  body = http_body(&plain, &len);
  ASSERT(strstr(body, "assets/ui.js") != NULL);

  get(h, "/debug/pprof/ui/heap", gzip, &gz);
  ASSERT_EQ(http_status(&gz), 200);
  ASSERT_STR_EQ(http_header(&gz, "Content-Encoding"), "gzip");
  snprintf(etag_gz, sizeof(etag_gz), "%s", http_header(&gz, "ETag"));
  ASSERT(strcmp(etag, etag_gz) != 0);
  gz_body = http_body(&gz, &gz_len);
  ASSERT(gz_len < len);
  uv_pprof__buf_init(&raw);
  profile_gunzip(gz_body, gz_len, &raw);
  ASSERT_EQ(raw.len, len);
  ASSERT(memcmp(raw.base, body, len) == 0);
  uv_pprof__buf_free(&raw);

  /* every profile gets the same page */
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    char path[64];
    size_t n;
    snprintf(path, sizeof(path), "/debug/pprof/ui/%s?seconds=3", names[i]);
    get(h, path, NULL, &r);
    ASSERT_EQ(http_status(&r), 200);
    ASSERT(memcmp(http_body(&r, &n), body, len) == 0 && n == len);
    run_free(&r);
  }

  snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
  get(h, "/debug/pprof/ui/heap", revalidate, &r);
  ASSERT_EQ(http_status(&r), 304);
  ASSERT(http_header(&r, "Content-Length") == NULL);
  http_body(&r, &len);
  ASSERT_EQ(len, 0);
  run_free(&r);
  /* the plain form's ETag does not match the gzipped form */
  snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
  {
    const char* both[] = {"-H", inm, "-H", "Accept-Encoding: gzip", NULL};
    get(h, "/debug/pprof/ui/heap", both, &r);
    ASSERT_EQ(http_status(&r), 200);
    run_free(&r);
  }

  get(h, "/debug/pprof/ui/assets/ui.js", gzip, &r);
  ASSERT_EQ(http_status(&r), 200);
  ASSERT_STR_EQ(http_header(&r, "Content-Type"),
                "text/javascript; charset=utf-8");
  ASSERT(http_header(&r, "Content-Security-Policy") == NULL);
  run_free(&r);

  get(h, "/debug/pprof/ui/nosuch", NULL, &r);
  ASSERT_EQ(http_status(&r), 404);
  ASSERT_STR_EQ(http_header(&r, "X-Go-Pprof"), "1");
  ASSERT(strcmp(http_body(&r, &len), "Unknown profile\n") == 0);
  run_free(&r);
  get(h, "/debug/pprof/ui/cmdline", NULL, &r);
  ASSERT_EQ(http_status(&r), 404);
  run_free(&r);
  get(h, "/debug/pprof/ui/assets/nosuch.js", NULL, &r);
  ASSERT_EQ(http_status(&r), 404);
  ASSERT(strcmp(http_body(&r, &len), "404 page not found\n") == 0);
  run_free(&r);

  run_free(&plain);
  run_free(&gz);
  host_stop(h);
  return 0;
}
