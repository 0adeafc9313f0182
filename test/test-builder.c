/* Unit tests of the profile builder and of the threadcreate, block and mutex
 * descriptors. Every encoded profile is gunzipped, decoded with protobuf-c and
 * checked against the validity rules pprof enforces; `go tool pprof` itself
 * reads one. */
#include <stdint.h>
#include <unistd.h>

#include "router.h"
#include "profile.pb-c.h"
#include "task.h"

typedef Perftools__Profiles__Profile profile_t;

/* ---- decoding and validity ---------------------------------------------- */

static uint64_t read_varint(const uv_pprof__buf_t* raw, size_t* pos) {
  uint64_t v = 0;
  int shift;

  for (shift = 0;; shift += 7) {
    unsigned char c;
    ASSERT_LT(*pos, raw->len);
    ASSERT_LT(shift, 64);
    c = (unsigned char)raw->base[(*pos)++];
    v |= (uint64_t)(c & 0x7f) << shift;
    if ((c & 0x80) == 0)
      return v;
  }
}

/* How often top-level field `field` occurs on the wire. */
static int count_field(const uv_pprof__buf_t* raw, uint64_t field) {
  size_t pos = 0;
  int n = 0;

  while (pos < raw->len) {
    uint64_t key = read_varint(raw, &pos);
    switch (key & 7) {
      case 0:
        read_varint(raw, &pos);
        break;
      case 1:
        pos += 8;
        break;
      case 2:
        pos += read_varint(raw, &pos);
        break;
      case 5:
        pos += 4;
        break;
      default:
        ASSERT(0 && "bad wire type");
    }
    n += (key >> 3) == field;
  }
  ASSERT_EQ(pos, raw->len);
  return n;
}

static int compare_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a;
  uint64_t y = *(const uint64_t*)b;

  return (x > y) - (x < y);
}

/* Sorts ids and asserts that they are non-zero and unique. */
static void check_ids(uint64_t* ids, size_t n) {
  size_t i;

  qsort(ids, n, sizeof(*ids), compare_u64);
  for (i = 0; i < n; i++) {
    ASSERT_NE(ids[i], 0);
    if (i != 0)
      ASSERT_NE(ids[i], ids[i - 1]);
  }
}

static int has_id(const uint64_t* sorted, size_t n, uint64_t id) {
  return bsearch(&id, sorted, n, sizeof(id), compare_u64) != NULL;
}

static void check_str(const profile_t* p, int64_t index) {
  ASSERT_GE(index, 0);
  ASSERT_LT((uint64_t)index, p->n_string_table);
}

static uint64_t* alloc_ids(size_t n) {
  uint64_t* ids = calloc(n != 0 ? n : 1, sizeof(*ids));
  ASSERT(ids != NULL);
  return ids;
}

/* pprof's CheckValid and the string-table rules of the format. */
static void check_valid(const profile_t* p, const uv_pprof__buf_t* raw) {
  uint64_t* maps = alloc_ids(p->n_mapping);
  uint64_t* locs = alloc_ids(p->n_location);
  uint64_t* funcs = alloc_ids(p->n_function);
  size_t i;
  size_t j;

  ASSERT_GE(p->n_string_table, 1);
  ASSERT_STR_EQ(p->string_table[0], "");
  for (i = 0; i < p->n_sample_type; i++) {
    check_str(p, p->sample_type[i]->type);
    check_str(p, p->sample_type[i]->unit);
  }
  if (p->period_type != NULL) {
    check_str(p, p->period_type->type);
    check_str(p, p->period_type->unit);
  }
  for (i = 0; i < p->n_comment; i++)
    check_str(p, p->comment[i]);
  check_str(p, p->default_sample_type);
  check_str(p, p->drop_frames);
  check_str(p, p->keep_frames);
  check_str(p, p->doc_url);
  if (p->n_sample != 0)
    ASSERT_GT(p->n_sample_type, 0);

  for (i = 0; i < p->n_mapping; i++) {
    maps[i] = p->mapping[i]->id;
    check_str(p, p->mapping[i]->filename);
    check_str(p, p->mapping[i]->build_id);
  }
  check_ids(maps, p->n_mapping);
  for (i = 0; i < p->n_function; i++) {
    funcs[i] = p->function[i]->id;
    check_str(p, p->function[i]->name);
    check_str(p, p->function[i]->system_name);
    check_str(p, p->function[i]->filename);
  }
  check_ids(funcs, p->n_function);
  for (i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location* l = p->location[i];
    locs[i] = l->id;
    ASSERT(l->mapping_id == 0 || has_id(maps, p->n_mapping, l->mapping_id));
    for (j = 0; j < l->n_line; j++)
      ASSERT(has_id(funcs, p->n_function, l->line[j]->function_id));
  }
  check_ids(locs, p->n_location);
  for (i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample* s = p->sample[i];
    ASSERT_EQ(s->n_value, p->n_sample_type);
    for (j = 0; j < s->n_location_id; j++)
      ASSERT(has_id(locs, p->n_location, s->location_id[j]));
    for (j = 0; j < s->n_label; j++) {
      check_str(p, s->label[j]->key);
      check_str(p, s->label[j]->str);
      check_str(p, s->label[j]->num_unit);
    }
  }
  ASSERT_EQ(count_field(raw, 9), 1); /* time_nanos exactly once */
  free(maps);
  free(locs);
  free(funcs);
}

/* Gunzips, decodes and validates an encoded profile. */
static profile_t* decode(const uv_pprof__buf_t* gz) {
  uv_pprof__buf_t raw;
  profile_t* p;

  uv_pprof__buf_init(&raw);
  profile_gunzip(gz->base, gz->len, &raw);
  p = perftools__profiles__profile__unpack(NULL, raw.len,
                                           (const uint8_t*)raw.base);
  ASSERT(p != NULL);
  check_valid(p, &raw);
  uv_pprof__buf_free(&raw);
  return p;
}

/* Encodes b (and frees it), decodes and validates the result. */
static profile_t* encode_decode(uv_pprof__builder_t* b) {
  uv_pprof__buf_t gz;
  profile_t* p;

  uv_pprof__buf_init(&gz);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__builder_free(b);
  p = decode(&gz);
  uv_pprof__buf_free(&gz);
  return p;
}

/* Runs `go tool pprof -raw` on an encoded profile; asserts it succeeds. */
static void pprof_raw(const uv_pprof__buf_t* gz, run_result_t* r) {
  const char* argv[] = {"go", "tool", "pprof", "-raw", NULL, NULL};
  const char* env[4];
  const char* dir = test_tmpdir();
  char home[256];
  char tmp[256];
  char file[256];
  FILE* f;

  snprintf(file, sizeof(file), "%s/test.pb.gz", dir);
  f = fopen(file, "wb");
  ASSERT(f != NULL);
  ASSERT_EQ(fwrite(gz->base, 1, gz->len, f), gz->len);
  ASSERT_EQ(fclose(f), 0);
  snprintf(home, sizeof(home), "HOME=%s", dir);
  snprintf(tmp, sizeof(tmp), "PPROF_TMPDIR=%s", dir);
  env[0] = home;
  env[1] = tmp;
  env[2] = "PPROF_BINARY_PATH=/nonexistent";
  env[3] = NULL;
  argv[4] = file;
  run_cmd(argv, env, 120000, r);
  if (r->status != 0)
    fprintf(stderr, "go tool pprof said:\n%s\n%s\n", r->out, r->err);
  ASSERT_EQ(r->status, 0);
}

static const char* function_name(const profile_t* p, uint64_t id) {
  size_t i;

  for (i = 0; i < p->n_function; i++)
    if (p->function[i]->id == id)
      return profile_str(p, p->function[i]->name);
  ASSERT(0 && "no such function");
  return NULL;
}

/* The value of the string label `key` of s, or NULL. */
static const char* label_str(const profile_t* p,
                             const Perftools__Profiles__Sample* s,
                             const char* key) {
  size_t i;

  for (i = 0; i < s->n_label; i++)
    if (strcmp(profile_str(p, s->label[i]->key), key) == 0 &&
        s->label[i]->str != 0)
      return profile_str(p, s->label[i]->str);
  return NULL;
}

/* The GNU build id of the ELF file at path, as readelf -n prints it. */
static void readelf_build_id(const char* path, char* out, size_t size) {
  const char* argv[] = {"readelf", "-n", path, NULL};
  const char* at;
  run_result_t r;
  size_t n;

  run_cmd(argv, NULL, 30000, &r);
  ASSERT_EQ(r.status, 0);
  at = strstr(r.out, "Build ID: ");
  ASSERT(at != NULL);
  at += strlen("Build ID: ");
  n = strspn(at, "0123456789abcdef");
  ASSERT_GT(n, 0);
  ASSERT_LT(n, size);
  memcpy(out, at, n);
  out[n] = '\0';
  run_free(&r);
}

static const int64_t one[1] = {1};

/* ---- builder ------------------------------------------------------------ */

TEST_IMPL(builder_strings_dedup) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  profile_t* p;

  ASSERT(b != NULL);
  ASSERT_EQ(uv_pprof__builder_string(b, ""), 0);
  ASSERT_EQ(uv_pprof__builder_string(b, "alpha"), 1);
  ASSERT_EQ(uv_pprof__builder_string(b, "beta"), 2);
  ASSERT_EQ(uv_pprof__builder_string(b, "alpha"), 1);
  ASSERT_EQ(uv_pprof__builder_string(b, ""), 0);
  uv_pprof__builder_period(b, "beta", "count", 1);
  uv_pprof__builder_sample_type(b, "alpha", "count");
  uv_pprof__builder_comment(b, "alpha");
  p = encode_decode(b);
  ASSERT_STR_EQ(p->string_table[1], "alpha");
  ASSERT_STR_EQ(p->string_table[2], "beta");
  ASSERT_STR_EQ(p->string_table[3], "count");
  ASSERT_EQ(p->period_type->type, 2);
  ASSERT_EQ(p->period_type->unit, 3);
  ASSERT_EQ(p->sample_type[0]->type, 1);
  ASSERT_EQ(p->sample_type[0]->unit, 3);
  ASSERT_EQ(p->n_comment, 1);
  ASSERT_EQ(p->comment[0], 1);
  /* Every string of the table is there once. */
  {
    size_t i;
    size_t j;
    for (i = 0; i < p->n_string_table; i++)
      for (j = i + 1; j < p->n_string_table; j++)
        ASSERT(strcmp(p->string_table[i], p->string_table[j]) != 0);
  }
  perftools__profiles__profile__free_unpacked(p, NULL);
  return 0;
}

/* 100k locations, each added twice: one id per address, ids 1..n in order of
 * first use, samples pointing at them intact. */
TEST_IMPL(builder_locations_dedup) {
  enum { N = 100000, DEPTH = 10 };
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uint64_t ids[DEPTH];
  profile_t* p;
  size_t i;
  size_t j;

  ASSERT(b != NULL);
  uv_pprof__builder_sample_type(b, "samples", "count");
  for (i = 0; i < N; i++)
    ASSERT_EQ(uv_pprof__builder_location(b, 0x1000 + 16 * i), i + 1);
  for (i = 0; i < N; i++)
    ASSERT_EQ(uv_pprof__builder_location(b, 0x1000 + 16 * i), i + 1);
  for (i = 0; i < N / DEPTH; i++) {
    for (j = 0; j < DEPTH; j++)
      ids[j] = uv_pprof__builder_location(b, 0x1000 + 16 * (i * DEPTH + j));
    uv_pprof__builder_sample(b, ids, DEPTH, one, NULL, 0);
  }
  ASSERT_EQ(uv_pprof__builder_sample_count(b), N / DEPTH);
  p = encode_decode(b);
  ASSERT_EQ(p->n_location, N);
  for (i = 0; i < N; i++) {
    ASSERT_EQ(p->location[i]->id, i + 1);
    ASSERT_EQ(p->location[i]->address, 0x1000 + 16 * i);
  }
  ASSERT_EQ(p->n_sample, N / DEPTH);
  for (i = 0; i < p->n_sample; i++) {
    ASSERT_EQ(p->sample[i]->n_location_id, DEPTH);
    for (j = 0; j < DEPTH; j++) /* ids are 1..n, as checked above */
      ASSERT_EQ(p->location[p->sample[i]->location_id[j] - 1]->address,
                0x1000 + 16 * (i * DEPTH + j));
  }
  perftools__profiles__profile__free_unpacked(p, NULL);
  return 0;
}

/* A delta as the router writes it: p0 negated, then p1. */
TEST_IMPL(builder_sample_merge) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uv_pprof__label_t tcp[2] = {{"type", "tcp", 0, NULL},
                              {"age", NULL, 5, "seconds"}};
  uv_pprof__label_t udp[2] = {{"type", "udp", 0, NULL},
                              {"age", NULL, 5, "seconds"}};
  uv_pprof__label_t old[2] = {{"type", "tcp", 0, NULL},
                              {"age", NULL, 6, "seconds"}};
  uint64_t a;
  uint64_t c;
  uint64_t stack[2];
  int64_t v[2];
  profile_t* p;
  size_t i;

  ASSERT(b != NULL);
  uv_pprof__builder_sample_type(b, "objects", "count");
  uv_pprof__builder_sample_type(b, "space", "bytes");
  a = uv_pprof__builder_location(b, 0x4000);
  c = uv_pprof__builder_location(b, 0x5000);
  stack[0] = a;
  stack[1] = c;
  /* p0: {a,c} tcp 3/300, {a,c} udp 1/100, {a} tcp 2/200 */
  v[0] = -3, v[1] = -300;
  uv_pprof__builder_sample(b, stack, 2, v, tcp, 2);
  v[0] = -1, v[1] = -100;
  uv_pprof__builder_sample(b, stack, 2, v, udp, 2);
  v[0] = -2, v[1] = -200;
  uv_pprof__builder_sample(b, stack, 1, v, tcp, 2);
  ASSERT_EQ(uv_pprof__builder_sample_count(b), 3);
  /* p1: {a,c} tcp 5/500, {a,c} udp 1/100, {a} tcp 2/200, {a,c} old 1/10 */
  v[0] = 5, v[1] = 500;
  uv_pprof__builder_sample(b, stack, 2, v, tcp, 2);
  v[0] = 1, v[1] = 100;
  uv_pprof__builder_sample(b, stack, 2, v, udp, 2);
  v[0] = 2, v[1] = 200;
  uv_pprof__builder_sample(b, stack, 1, v, tcp, 2);
  v[0] = 1, v[1] = 10;
  uv_pprof__builder_sample(b, stack, 2, v, old, 2);
  ASSERT_EQ(uv_pprof__builder_sample_count(b), 4);

  p = encode_decode(b);
  ASSERT_EQ(p->n_sample, 2); /* the unchanged two cancelled out */
  for (i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample* s = p->sample[i];
    ASSERT_EQ(s->n_location_id, 2);
    ASSERT_EQ(profile_location(p, s->location_id[0])->address, 0x4000);
    ASSERT_EQ(profile_location(p, s->location_id[1])->address, 0x5000);
    ASSERT_EQ(s->n_label, 2);
    ASSERT_STR_EQ(label_str(p, s, "type"), "tcp");
    ASSERT_STR_EQ(profile_str(p, s->label[1]->key), "age");
    ASSERT_STR_EQ(profile_str(p, s->label[1]->num_unit), "seconds");
    if (s->label[1]->num == 5) {
      ASSERT_EQ(s->value[0], 2);
      ASSERT_EQ(s->value[1], 200);
    } else {
      ASSERT_EQ(s->label[1]->num, 6);
      ASSERT_EQ(s->value[0], 1);
      ASSERT_EQ(s->value[1], 10);
    }
  }
  perftools__profiles__profile__free_unpacked(p, NULL);
  return 0;
}

/* Every field the builder writes comes back as written. */
TEST_IMPL(builder_profile_fields) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uv_pprof__label_t labels[1] = {{"bytes", NULL, 4096, NULL}};
  uint64_t loc;
  int64_t v[2] = {7, 700};
  int64_t before;
  profile_t* p;

  ASSERT(b != NULL);
  before = uv_pprof__now_ns();
  p = encode_decode(uv_pprof__builder_new());
  ASSERT_GE(p->time_nanos, before - 1000000000);
  ASSERT_LE(p->time_nanos, uv_pprof__now_ns());
  ASSERT_EQ(p->n_sample_type, 0);
  ASSERT(p->period_type == NULL);
  perftools__profiles__profile__free_unpacked(p, NULL);

  uv_pprof__builder_period(b, "space", "bytes", 524288);
  uv_pprof__builder_sample_type(b, "alloc_objects", "count");
  uv_pprof__builder_sample_type(b, "alloc_space", "bytes");
  uv_pprof__builder_default_sample_type(b, "alloc_space");
  uv_pprof__builder_comment(b, "first comment");
  uv_pprof__builder_comment(b, "second comment");
  uv_pprof__builder_time(b, 1795651006710613354);
  uv_pprof__builder_duration(b, 30000000000);
  loc = uv_pprof__builder_location(b, 0x7000);
  uv_pprof__builder_sample(b, &loc, 1, v, labels, 1);
  p = encode_decode(b);
  ASSERT_STR_EQ(profile_str(p, p->period_type->type), "space");
  ASSERT_STR_EQ(profile_str(p, p->period_type->unit), "bytes");
  ASSERT_EQ(p->period, 524288);
  ASSERT_EQ(p->n_sample_type, 2);
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->type), "alloc_objects");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->unit), "count");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[1]->type), "alloc_space");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[1]->unit), "bytes");
  ASSERT_STR_EQ(profile_str(p, p->default_sample_type), "alloc_space");
  ASSERT_EQ(p->n_comment, 2);
  ASSERT_STR_EQ(profile_str(p, p->comment[0]), "first comment");
  ASSERT_STR_EQ(profile_str(p, p->comment[1]), "second comment");
  ASSERT_EQ(p->time_nanos, 1795651006710613354);
  ASSERT_EQ(p->duration_nanos, 30000000000);
  ASSERT_EQ(p->n_sample, 1);
  ASSERT_EQ(p->sample[0]->value[0], 7);
  ASSERT_EQ(p->sample[0]->value[1], 700);
  ASSERT_EQ(p->sample[0]->n_label, 1);
  ASSERT_STR_EQ(profile_str(p, p->sample[0]->label[0]->key), "bytes");
  ASSERT_EQ(p->sample[0]->label[0]->str, 0);
  ASSERT_EQ(p->sample[0]->label[0]->num, 4096);
  ASSERT_EQ(p->sample[0]->label[0]->num_unit, 0);
  ASSERT_EQ(p->n_function, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);
  return 0;
}

/* Mappings: every executable one, the test binary first, build ids as
 * readelf reads them from the files, ids 1..n, locations attached to the
 * mapping that holds them. */
TEST_IMPL(builder_mappings) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uintptr_t own = (uintptr_t)&run_test_builder_mappings;
  uintptr_t libc = (uintptr_t)&getpid;
  const Perftools__Profiles__Mapping* m;
  const Perftools__Profiles__Mapping* libc_map = NULL;
  uint64_t locs[3];
  char exe[4096];
  char id[256];
  profile_t* p;
  size_t i;

  ASSERT(b != NULL);
  read_exe(exe, sizeof(exe));
  uv_pprof__builder_sample_type(b, "samples", "count");
  locs[0] = uv_pprof__builder_location(b, own);
  locs[1] = uv_pprof__builder_location(b, libc);
  locs[2] = uv_pprof__builder_location(b, 0x10);
  uv_pprof__builder_sample(b, locs, 3, one, NULL, 0);
  p = encode_decode(b);

  ASSERT_GE(p->n_mapping, 3); /* the test binary, libc, ld.so at least */
  for (i = 0; i < p->n_mapping; i++) {
    m = p->mapping[i];
    ASSERT_EQ(m->id, i + 1);
    ASSERT_LT(m->memory_start, m->memory_limit);
    ASSERT_NE(profile_str(p, m->filename)[0], '\0');
    /* Only mappings holding locations claim symbolization (the flags
     * themselves are checked by test-symbolize.c). */
    if (!(m->memory_start <= own && own < m->memory_limit) &&
        !(m->memory_start <= libc && libc < m->memory_limit))
      ASSERT(!m->has_functions && !m->has_filenames && !m->has_line_numbers &&
             !m->has_inline_frames);
    if (strstr(profile_str(p, m->filename), "/libc.so") != NULL &&
        m->memory_start <= libc && libc < m->memory_limit)
      libc_map = m;
  }
  m = p->mapping[0];
  ASSERT_STR_EQ(profile_str(p, m->filename), exe);
  readelf_build_id(exe, id, sizeof(id));
  ASSERT_STR_EQ(profile_str(p, m->build_id), id);

  ASSERT(libc_map != NULL);
  readelf_build_id(profile_str(p, libc_map->filename), id, sizeof(id));
  ASSERT_STR_EQ(profile_str(p, libc_map->build_id), id);

  m = profile_mapping(p, profile_location(p, locs[0])->mapping_id);
  ASSERT(m != NULL);
  ASSERT_STR_EQ(profile_str(p, m->filename), exe);
  ASSERT_LE(m->memory_start, own);
  ASSERT_LT(own, m->memory_limit);
  ASSERT(m->has_functions);
  ASSERT(profile_mapping(p, profile_location(p, locs[1])->mapping_id) ==
         libc_map);
  ASSERT(libc_map->has_functions);
  ASSERT_EQ(profile_location(p, locs[2])->mapping_id, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);
  return 0;
}

TEST_IMPL(builder_errors) {
  uv_pprof__builder_t* b;
  uv_pprof__buf_t out;
  uint64_t bad = 99;
  uint64_t loc;

  uv_pprof__buf_init(&out);
  b = uv_pprof__builder_new();
  ASSERT(b != NULL);
  uv_pprof__builder_sample_type(b, "samples", "count");
  uv_pprof__builder_sample(b, &bad, 1, one, NULL, 0);
  ASSERT_EQ(uv_pprof__builder_encode(b, &out), UV_EINVAL);
  ASSERT_EQ(out.len, 0);
  uv_pprof__builder_free(b);

  b = uv_pprof__builder_new();
  ASSERT(b != NULL);
  uv_pprof__builder_sample_type(b, "samples", "count");
  loc = uv_pprof__builder_location(b, 0x1234);
  uv_pprof__builder_sample(b, &loc, 1, one, NULL, 0);
  uv_pprof__builder_sample_type(b, "cpu", "nanoseconds");
  ASSERT_EQ(uv_pprof__builder_encode(b, &out), UV_EINVAL);
  ASSERT_EQ(out.len, 0);
  uv_pprof__builder_free(b);
  return 0;
}

/* ---- profile descriptors ------------------------------------------------- */

/* Snapshot, types and samples of descriptor d (twice, p0 negated, for a
 * delta) encoded into gz. */
static void collect(const uv_pprof__profile_t* d, int delta,
                    uv_pprof__buf_t* gz) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  void* snap;

  ASSERT(b != NULL);
  ASSERT_EQ(d->snapshot(&snap), 0);
  d->types(b);
  if (delta)
    d->emit(snap, b, -1);
  d->emit(snap, b, 1);
  d->snapshot_free(snap);
  uv_pprof__buf_init(gz);
  ASSERT_EQ(uv_pprof__builder_encode(b, gz), 0);
  uv_pprof__builder_free(b);
}

TEST_IMPL(profile_threadcreate) {
  const uv_pprof__profile_t* d = &uv_pprof__profile_threadcreate;
  uv_pprof__buf_t text;
  uv_pprof__buf_t gz;
  run_result_t r;
  profile_t* p;
  helper_thread_t h;
  char tid[16];
  char comm[64];
  char line[160];
  void* snap;
  size_t i;
  int seen = 0;

  ASSERT_STR_EQ(d->name, "threadcreate");
  ASSERT_EQ(uv_pprof__route_find("/debug/pprof/threadcreate")->flags &
                UV_PPROF__ROUTE_SECONDS,
            UV_PPROF__ROUTE_SECONDS);
  read_comm(comm, sizeof(comm));
  helper_thread_start(&h);
  ASSERT_EQ(d->count(), 2);

  collect(d, 0, &gz);
  p = decode(&gz);
  ASSERT_STR_EQ(profile_str(p, p->period_type->type), "threadcreate");
  ASSERT_STR_EQ(profile_str(p, p->period_type->unit), "count");
  ASSERT_EQ(p->period, 1);
  ASSERT_EQ(p->n_sample_type, 1);
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->type), "threadcreate");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->unit), "count");
  ASSERT_EQ(p->n_sample, 2);
  snprintf(tid, sizeof(tid), "%d", h.tid);
  for (i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample* s = p->sample[i];
    const Perftools__Profiles__Location* l;
    char frame[32];
    ASSERT_EQ(s->n_location_id, 1); /* pprof would drop it without */
    l = profile_location(p, s->location_id[0]);
    ASSERT_EQ(l->address, 0);
    ASSERT_EQ(l->mapping_id, 0);
    ASSERT_EQ(l->n_line, 1);
    ASSERT_EQ(s->value[0], 1);
    ASSERT_EQ(s->n_label, 2);
    ASSERT(label_str(p, s, "thread") != NULL);
    snprintf(frame, sizeof(frame), "thread %s", label_str(p, s, "thread"));
    ASSERT_STR_EQ(function_name(p, l->line[0]->function_id), frame);
    if (strcmp(label_str(p, s, "tid"), tid) == 0) {
      ASSERT_STR_EQ(label_str(p, s, "thread"), "uvpp-helper");
      seen = 1;
    }
  }
  ASSERT(seen);
  perftools__profiles__profile__free_unpacked(p, NULL);
  pprof_raw(&gz, &r);
  snprintf(line, sizeof(line), "thread:[uvpp-helper] tid:[%d]", h.tid);
  ASSERT_CONTAINS(r.out, line);
  snprintf(line, sizeof(line), "thread:[%s] tid:[%d]", comm, gettid());
  ASSERT_CONTAINS(r.out, line);
  run_free(&r);
  uv_pprof__buf_free(&gz);

  collect(d, 1, &gz); /* the same threads twice: nothing in the delta */
  p = decode(&gz);
  ASSERT_EQ(p->n_sample, 0);
  ASSERT_EQ(p->n_sample_type, 1);
  perftools__profiles__profile__free_unpacked(p, NULL);
  uv_pprof__buf_free(&gz);

  ASSERT_EQ(d->snapshot(&snap), 0);
  uv_pprof__buf_init(&text);
  ASSERT_EQ(d->text(snap, 1, &text), 0);
  d->snapshot_free(snap);
  ASSERT_STARTS_WITH(text.base,
                     "threadcreate profile: total 2\n1 @\n# labels: ");
  snprintf(line, sizeof(line),
           "1 @\n# labels: {\"thread\":\"uvpp-helper\", \"tid\":\"%d\"}\n"
           "#\t0x0\n\n",
           h.tid);
  ASSERT_CONTAINS(text.base, line);
  snprintf(line, sizeof(line),
           "1 @\n# labels: {\"thread\":\"%s\", \"tid\":\"%d\"}\n#\t0x0\n\n",
           comm, gettid());
  ASSERT_CONTAINS(text.base, line);
  uv_pprof__buf_free(&text);
  helper_thread_stop(&h);
  return 0;
}

static void check_contention(const uv_pprof__profile_t* d, const char* text) {
  const uv_pprof__route_t* route;
  uv_pprof__buf_t out;
  uv_pprof__buf_t gz;
  char path[64];
  profile_t* p;
  void* snap;

  snprintf(path, sizeof(path), "/debug/pprof/%s", d->name);
  route = uv_pprof__route_find(path);
  ASSERT(route != NULL && route->profile == d);
  ASSERT_EQ(route->flags & UV_PPROF__ROUTE_SECONDS, UV_PPROF__ROUTE_SECONDS);
  ASSERT_EQ(d->count(), 0);
  ASSERT(route->description != NULL);
  ASSERT_NE(route->description[0], '\0');
  collect(d, 1, &gz);
  p = decode(&gz);
  uv_pprof__buf_free(&gz);
  ASSERT_STR_EQ(profile_str(p, p->period_type->type), "contentions");
  ASSERT_STR_EQ(profile_str(p, p->period_type->unit), "count");
  ASSERT_EQ(p->period, 1);
  ASSERT_EQ(p->n_sample_type, 2);
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->type), "contentions");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[0]->unit), "count");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[1]->type), "delay");
  ASSERT_STR_EQ(profile_str(p, p->sample_type[1]->unit), "nanoseconds");
  ASSERT_EQ(p->n_sample, 0);
  ASSERT_GE(p->n_mapping, 1);
  ASSERT_EQ(p->default_sample_type, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);

  ASSERT_EQ(d->snapshot(&snap), 0);
  uv_pprof__buf_init(&out);
  ASSERT_EQ(d->text(snap, 1, &out), 0);
  d->snapshot_free(snap);
  ASSERT_STR_EQ(out.base, text);
  uv_pprof__buf_free(&out);
}

TEST_IMPL(profile_block_mutex) {
  ASSERT_STR_EQ(uv_pprof__profile_block.name, "block");
  check_contention(&uv_pprof__profile_block,
                   "--- contention:\ncycles/second=1000000000\n");
  ASSERT_STR_EQ(uv_pprof__profile_mutex.name, "mutex");
  check_contention(&uv_pprof__profile_mutex,
                   "--- mutex:\ncycles/second=1000000000\n"
                   "sampling period=0\n");
  return 0;
}

/* ---- go tool pprof ------------------------------------------------------ */

TEST_IMPL(builder_pprof_reads) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uv_pprof__label_t labels[2] = {{"handle", "tcp", 0, NULL},
                                 {"age", NULL, 42, "seconds"}};
  uv_pprof__buf_t gz;
  run_result_t r;
  uint64_t locs[3];
  int64_t v[2];

  ASSERT(b != NULL);
  uv_pprof__builder_period(b, "goroutine", "count", 1);
  uv_pprof__builder_sample_type(b, "goroutine", "count");
  uv_pprof__builder_sample_type(b, "age", "nanoseconds");
  locs[0] =
      uv_pprof__builder_location(b, (uintptr_t)&run_test_builder_pprof_reads);
  locs[1] = uv_pprof__builder_location(b, (uintptr_t)&getpid);
  locs[2] = uv_pprof__builder_location(b, 0x12345);
  v[0] = 3, v[1] = 3000;
  uv_pprof__builder_sample(b, locs, 3, v, labels, 2);
  v[0] = 4, v[1] = 4000;
  uv_pprof__builder_sample(b, locs + 1, 2, v, NULL, 0);
  uv_pprof__buf_init(&gz);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__builder_free(b);

  pprof_raw(&gz, &r);
  ASSERT_CONTAINS(r.out, "PeriodType: goroutine count");
  ASSERT_CONTAINS(r.out, "goroutine/count age/nanoseconds");
  ASSERT_CONTAINS(r.out, "3       3000: 1 2 3 ");
  ASSERT_CONTAINS(r.out, "4       4000: 2 3 ");
  ASSERT_CONTAINS(r.out, "handle:[tcp]");
  ASSERT_CONTAINS(r.out, "age:[42 seconds]");
  ASSERT_CONTAINS(r.out, "/libc.so");
  run_free(&r);
  uv_pprof__buf_free(&gz);
  return 0;
}

/* Named frames: deduplicated by name and file, a function each (name ==
 * system_name), one line, no address or mapping; address locations are
 * separate even at address 0. */
TEST_IMPL(builder_frames) {
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uint64_t a = uv_pprof__builder_frame(b, "uv_timer_t", NULL);
  uint64_t a2 = uv_pprof__builder_frame(b, "uv_timer_t", NULL);
  uint64_t c = uv_pprof__builder_frame(b, "uv_timer_t", "x.c");
  uint64_t z = uv_pprof__builder_location(b, 0);
  uint64_t stack[3];
  profile_t* p;
  const Perftools__Profiles__Location* l;
  size_t i;

  ASSERT_NE(a, 0);
  ASSERT_NE(c, 0);
  ASSERT_NE(z, 0);
  ASSERT_EQ(a, a2);
  ASSERT_NE(a, c);
  ASSERT_NE(a, z);
  ASSERT_NE(c, z);
  uv_pprof__builder_sample_type(b, "goroutine", "count");
  stack[0] = z;
  stack[1] = a;
  stack[2] = c;
  uv_pprof__builder_sample(b, stack, 3, one, NULL, 0);
  p = encode_decode(b);
  ASSERT_EQ(p->n_function, 2);
  ASSERT_EQ(p->n_location, 3);
  for (i = 0; i < p->n_function; i++)
    ASSERT_EQ(p->function[i]->name, p->function[i]->system_name);
  l = profile_location(p, a);
  ASSERT_EQ(l->address, 0);
  ASSERT_EQ(l->mapping_id, 0);
  ASSERT_EQ(l->n_line, 1);
  ASSERT_STR_EQ(function_name(p, l->line[0]->function_id), "uv_timer_t");
  l = profile_location(p, c);
  ASSERT_EQ(l->n_line, 1);
  ASSERT_STR_EQ(function_name(p, l->line[0]->function_id), "uv_timer_t");
  ASSERT_NE(l->line[0]->function_id,
            profile_location(p, a)->line[0]->function_id);
  l = profile_location(p, z);
  ASSERT_EQ(l->n_line, 0);
  perftools__profiles__profile__free_unpacked(p, NULL);
  return 0;
}
