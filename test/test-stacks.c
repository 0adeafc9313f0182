/* Unit tests of the heap's stack table (src/stacks.c): interning, keys,
 * holds and collection; and of the builder's samples added new, which the
 * heap profile relies on (src/pprof/builder.c). */
#include "profile.h"
#include "profile.pb-c.h"
#include "task.h"

static void expect_frames(uint32_t id, const uintptr_t* want, size_t n) {
  uintptr_t got[UV_PPROF__STACK_MAX];
  size_t i;

  ASSERT_EQ(uv_pprof__stacks_frames(id, got, UV_PPROF__STACK_MAX), n);
  for (i = 0; i < n; i++)
    ASSERT_EQ(got[i], want[i]);
}

TEST_IMPL(stacks_intern_keys) {
  static const uintptr_t a[] = {0x1001, 0x2002, 0x3003};
  static const uintptr_t b[] = {0x1001, 0x4004, 0x3003, 0x5005};
  const uint32_t* numbers;
  uint32_t ida;
  uint32_t idb;
  uint32_t id;

  ASSERT_EQ(uv_pprof__stacks_intern(a, 3, &ida), 0);
  ASSERT_EQ(uv_pprof__stacks_intern(b, 4, &idb), 0);
  ASSERT(ida != 0 && idb != 0 && ida != idb);
  expect_frames(ida, a, 3);
  expect_frames(idb, b, 4);
  /* Shared addresses share their number. */
  ASSERT_EQ(uv_pprof__stacks_numbers(idb, &numbers), 4);
  ASSERT_EQ(uv_pprof__stacks_addr(numbers[0]), 0x1001);
  ASSERT_EQ(uv_pprof__stacks_naddrs(), 5);
  /* The empty stack is id 0 and has no frames. */
  ASSERT_EQ(uv_pprof__stacks_intern(a, 0, &id), 0);
  ASSERT_EQ(id, 0);
  ASSERT_EQ(uv_pprof__stacks_frames(0, NULL, 0), 0);

  /* Keys: found in the order added (the next one is tried first), and
   * out of order through the index. */
  ASSERT_EQ(uv_pprof__stacks_add_key(11, 12, ida), 0);
  ASSERT_EQ(uv_pprof__stacks_add_key(21, 22, idb), 0);
  ASSERT(!uv_pprof__stacks_find_key(11, 13, &id));
  ASSERT(uv_pprof__stacks_find_key(11, 12, &id) && id == ida);
  ASSERT(uv_pprof__stacks_find_key(21, 22, &id) && id == idb);
  ASSERT(uv_pprof__stacks_find_key(21, 22, &id) && id == idb);
  ASSERT(uv_pprof__stacks_find_key(11, 12, &id) && id == ida);
  /* Each was interned and found twice; b stays held once. */
  uv_pprof__stacks_release(ida);
  uv_pprof__stacks_release(ida);
  uv_pprof__stacks_release(ida);
  uv_pprof__stacks_release(idb);
  uv_pprof__stacks_release(idb);

  /* Collection frees what nobody holds, keys included, and keeps the
   * frames of what is held whatever moves. */
  uv_pprof__stacks_collect();
  ASSERT(!uv_pprof__stacks_find_key(11, 12, &id));
  ASSERT(uv_pprof__stacks_find_key(21, 22, &id) && id == idb);
  expect_frames(idb, b, 4);
  ASSERT_EQ(uv_pprof__stacks_naddrs(), 4); /* 0x2002 went with a */
  /* A freed id is reused. */
  ASSERT_EQ(uv_pprof__stacks_intern(a, 2, &id), 0);
  ASSERT_EQ(id, ida);
  expect_frames(id, a, 2);
  expect_frames(idb, b, 4);
  uv_pprof__stacks_release(id);
  uv_pprof__stacks_release(idb);
  uv_pprof__stacks_release(idb);
  /* Nothing held: everything is unmapped. */
  uv_pprof__stacks_collect();
  ASSERT_EQ(uv_pprof__stacks_bytes(), 0);
  ASSERT(!uv_pprof__stacks_find_key(21, 22, &id));
  return 0;
}

/* Thousands of stacks, half of them released between collections: every
 * held stack keeps its frames and its key through the compactions. */
TEST_IMPL(stacks_collect_many) {
  enum { N = 20000 };
  static uint32_t ids[N];
  uintptr_t f[8];
  size_t round;
  size_t i;
  size_t k;

  for (i = 0; i < N; i++) {
    for (k = 0; k < 8; k++)
      f[k] = 0x400000 + (i % 97) * 64 + k * 4096 + (k == 0 ? i : 0);
    ASSERT_EQ(uv_pprof__stacks_intern(f, 1 + i % 8, &ids[i]), 0);
    ASSERT_EQ(uv_pprof__stacks_add_key(i * 7919 + 1, i, ids[i]), 0);
  }
  for (round = 0; round < 3; round++) {
    for (i = round; i < N; i += 4)
      if (ids[i] != UINT32_MAX) {
        uv_pprof__stacks_release(ids[i]);
        ids[i] = UINT32_MAX;
      }
    uv_pprof__stacks_collect();
    for (i = 0; i < N; i++) {
      uint32_t id;
      int found = uv_pprof__stacks_find_key(i * 7919 + 1, i, &id);
      ASSERT_EQ(found, ids[i] != UINT32_MAX);
      if (!found)
        continue;
      ASSERT_EQ(id, ids[i]);
      uv_pprof__stacks_release(id);
      for (k = 0; k < 8; k++)
        f[k] = 0x400000 + (i % 97) * 64 + k * 4096 + (k == 0 ? i : 0);
      expect_frames(id, f, 1 + i % 8);
    }
  }
  for (i = 0; i < N; i++)
    if (ids[i] != UINT32_MAX)
      uv_pprof__stacks_release(ids[i]);
  uv_pprof__stacks_collect();
  ASSERT_EQ(uv_pprof__stacks_bytes(), 0);
  return 0;
}

/* Samples added new skip the merge lookup, yet a later sample with the same
 * key still merges into them. */
TEST_IMPL(builder_sample_new) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uv_pprof__label_t label = {"bytes", NULL, 64, NULL};
  Perftools__Profiles__Profile* p;
  uv_pprof__buf_t gz;
  uint64_t locs[2];
  int64_t v = 5;
  size_t i;

  ASSERT(b != NULL);
  uv_pprof__buf_init(&gz);
  uv_pprof__builder_sample_type(b, "objects", "count");
  locs[0] = uv_pprof__builder_location(b, 0x1000);
  locs[1] = uv_pprof__builder_location(b, 0x2000);
  uv_pprof__builder_expect(b, 2, 3);
  uv_pprof__builder_sample_new(b, locs, 2, &v, &label, 1);
  uv_pprof__builder_sample_new(b, locs, 1, &v, NULL, 0);
  ASSERT_EQ(uv_pprof__builder_sample_count(b), 2);
  v = -5;
  uv_pprof__builder_sample(b, locs, 1, &v, NULL, 0); /* cancels the 2nd */
  v = 2;
  uv_pprof__builder_sample(b, locs, 2, &v, &label, 1);
  v = 1;
  uv_pprof__builder_sample(b, locs + 1, 1, &v, &label, 1);
  ASSERT_EQ(uv_pprof__builder_sample_count(b), 3);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  p = profile_decode(gz.base, gz.len);
  ASSERT_EQ(p->n_sample, 2); /* the cancelled one is left out */
  for (i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample* s = p->sample[i];
    ASSERT_EQ(s->n_value, 1);
    ASSERT_EQ(s->n_label, 1);
    ASSERT_STR_EQ(profile_str(p, s->label[0]->key), "bytes");
    ASSERT_EQ(s->label[0]->num, 64);
    if (s->n_location_id == 2)
      ASSERT_EQ(s->value[0], 7);
    else
      ASSERT(s->n_location_id == 1 && s->value[0] == 1 &&
             s->location_id[0] == locs[1]);
  }
  perftools__profiles__profile__free_unpacked(p, NULL);
  uv_pprof__buf_free(&gz);
  uv_pprof__builder_free(b);
  return 0;
}
