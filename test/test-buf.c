/* Unit tests of buf.c. */
#include "base.h"
#include "task.h"

TEST_IMPL(buf_append_printf) {
  uv_pprof__buf_t b;
  int i;

  uv_pprof__buf_init(&b);
  ASSERT_EQ(uv_pprof__buf_append(&b, "ab", 2), 0);
  ASSERT_EQ(uv_pprof__buf_printf(&b, "-%d-%s", 42, "x"), 0);
  ASSERT_STR_EQ(b.base, "ab-42-x");
  for (i = 0; i < 10000; i++)
    ASSERT_EQ(uv_pprof__buf_printf(&b, "%05d", i), 0);
  ASSERT_EQ(b.len, 7 + 50000);
  ASSERT(memcmp(b.base + b.len - 5, "09999", 5) == 0);
  ASSERT_EQ(b.base[b.len], '\0');
  ASSERT_EQ(b.oom, 0);
  uv_pprof__buf_free(&b);
  ASSERT(b.base == NULL);
  return 0;
}

TEST_IMPL(buf_html_escape) {
  uv_pprof__buf_t b;

  uv_pprof__buf_init(&b);
  ASSERT_EQ(uv_pprof__buf_html(&b, "<a href='x'>&\"</a>"), 0);
  ASSERT_STR_EQ(b.base, "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;");
  uv_pprof__buf_free(&b);
  return 0;
}
