/* Unit tests of the count-profile text (src/pprof/text.c), byte for byte
 * against what Go 1.19 prints: stackless records, grouping and order, label
 * quoting. */
#include "pprof.h"
#include "task.h"

/* The stackless record is byte for byte Go 1.19's (threadcreate_debug1.txt);
 * the other record's header line is too, and its frames are Go's PCs. */
TEST_IMPL(text_threadcreate_stackless) {
  static const uintptr_t pcs[] = {0x43e375, 0x43eb7b, 0x43ee90, 0x43ae39,
                                  0x46b181};
  uv_pprof__count_record_t records[2];
  uv_pprof__buf_t out;

  memset(records, 0, sizeof(records));
  records[0].count = 1;
  records[0].pcs = pcs;
  records[0].npcs = UV_PPROF__ARRAY_SIZE(pcs);
  records[1].count = 5;
  uv_pprof__buf_init(&out);
  ASSERT_EQ(uv_pprof__text_count_profile("threadcreate", records, 2, &out), 0);
  ASSERT_STR_EQ(out.base,
                "threadcreate profile: total 6\n"
                "5 @\n"
                "#\t0x0\n"
                "\n"
                "1 @ 0x43e375 0x43eb7b 0x43ee90 0x43ae39 0x46b181\n"
                "#\t0x43e374\n"
                "#\t0x43eb7a\n"
                "#\t0x43ee8f\n"
                "#\t0x43ae38\n"
                "#\t0x46b180\n"
                "\n");
  uv_pprof__buf_free(&out);

  ASSERT_EQ(uv_pprof__text_count_profile("threadcreate", NULL, 0, &out), 0);
  ASSERT_STR_EQ(out.base, "threadcreate profile: total 0\n");
  uv_pprof__buf_free(&out);
  return 0;
}

/* Grouping of equal keys, Go's order (count down, key up), string labels
 * only, sorted and quoted as Go's %q. */
TEST_IMPL(text_sort_labels) {
  static const uintptr_t deep[] = {0x401000, 0x402000};
  static const uintptr_t pc10[] = {0x10};
  static const uintptr_t pc9[] = {0x9};
  static const uv_pprof__label_t ba[] = {
      {"b", "2", 0, NULL}, {"a", "1", 0, NULL}, {"n", NULL, 5, "bytes"}};
  static const uv_pprof__label_t ab[] = {{"a", "1", 0, NULL},
                                         {"b", "2", 0, NULL}};
  static const uv_pprof__label_t odd[] = {
      {"q\"k",
       "tab\there \xc3\xa9\x7f\xff\xc2\xa0\xf0\x9f\x98\x80\xee\x80\x80"
       "\xe2\x80\x8b",
       0, NULL}};
  static const uv_pprof__label_t num[] = {{"n", NULL, 7, NULL}};
  uv_pprof__count_record_t r[6];
  uv_pprof__buf_t out;

  memset(r, 0, sizeof(r));
  r[0].count = 1, r[0].pcs = deep, r[0].npcs = 2, r[0].labels = ba;
  r[0].nlabels = 3;
  r[1].count = 3, r[1].pcs = pc10, r[1].npcs = 1;
  r[2].count = 2, r[2].labels = odd, r[2].nlabels = 1;
  r[3].count = 1, r[3].pcs = deep, r[3].npcs = 2, r[3].labels = ab;
  r[3].nlabels = 2;
  r[4].count = 2, r[4].pcs = pc9, r[4].npcs = 1;
  r[5].count = 1, r[5].pcs = pc10, r[5].npcs = 1, r[5].labels = num;
  r[5].nlabels = 1;
  uv_pprof__buf_init(&out);
  ASSERT_EQ(uv_pprof__text_count_profile("example", r, 6, &out), 0);
  /* The quoted label is what Go 1.19 prints for fmt.Sprintf("%q:%q"). */
  ASSERT_STR_EQ(out.base,
                "example profile: total 10\n"
                "4 @ 0x10\n"
                "#\t0xf\n"
                "\n"
                "2 @\n"
                "# labels: {\"q\\\"k\":\"tab\\there \xc3\xa9\\x7f\\xff\\u00a0"
                "\xf0\x9f\x98\x80\\ue000\\u200b\"}\n"
                "#\t0x0\n"
                "\n"
                "2 @ 0x401000 0x402000\n"
                "# labels: {\"a\":\"1\", \"b\":\"2\"}\n"
                "#\t0x400fff\n"
                "#\t0x401fff\n"
                "\n"
                "2 @ 0x9\n"
                "#\t0x8\n"
                "\n");
  uv_pprof__buf_free(&out);
  return 0;
}
