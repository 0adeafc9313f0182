/* Unit test of uv_pprof__gzip (src/pprof/gzip.c): a large input of mixed
 * entropy and the empty input come back whole through zlib's inflate, as one
 * gzip member. */
#include "pprof.h"
#include "task.h"

TEST_IMPL(gzip_roundtrip) {
  enum { N = 3 << 20 };
  uv_pprof__buf_t gz;
  uv_pprof__buf_t raw;
  unsigned char* data = malloc(N);
  uint32_t x = 12345;
  size_t i;

  ASSERT(data != NULL);
  for (i = 0; i < N; i++) {
    x = x * 1103515245 + 12345;
    data[i] = (unsigned char)(i % 7 == 0 ? x >> 24 : i % 5);
  }
  uv_pprof__buf_init(&gz);
  uv_pprof__buf_init(&raw);
  ASSERT_EQ(uv_pprof__gzip(data, N, &gz), 0);
  ASSERT_LT(gz.len, N);
  profile_gunzip(gz.base, gz.len, &raw);
  ASSERT_EQ(raw.len, N);
  ASSERT(memcmp(raw.base, data, N) == 0);
  uv_pprof__buf_free(&gz);
  uv_pprof__buf_free(&raw);

  ASSERT_EQ(uv_pprof__gzip("", 0, &gz), 0);
  profile_gunzip(gz.base, gz.len, &raw);
  ASSERT_EQ(raw.len, 0);
  uv_pprof__buf_free(&gz);
  uv_pprof__buf_free(&raw);
  free(data);
  return 0;
}
