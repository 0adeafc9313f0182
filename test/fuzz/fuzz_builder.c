/* libFuzzer target: the profile builder, driven by the input as a list of
 * operations (strings, addresses, named frames, samples with labels,
 * comments), then encoded and gzipped as every proto answer is. The
 * answer is gunzipped and decoded again: it must be one gzip member holding
 * a profile whose every reference (strings, locations, functions,
 * mappings) resolves and whose samples have one value per sample type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "profile.h"
#include "profile.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

typedef struct {
  const uint8_t* p;
  size_t left;
} input_t;

static uint8_t byte(input_t* in) {
  if (in->left == 0)
    return 0;
  in->left--;
  return *in->p++;
}

static uint64_t word(input_t* in) {
  uint64_t v = 0;
  int i;

  for (i = 0; i < 8; i++)
    v = v << 8 | byte(in);
  return v;
}

/* A string of up to 15 bytes of the input (NULs end it early). */
static const char* string(input_t* in, char* buf) {
  size_t n = byte(in) % 16;
  size_t i;

  for (i = 0; i < n; i++)
    buf[i] = (char)byte(in);
  buf[n] = '\0';
  return buf;
}

static void gunzip(const uv_pprof__buf_t* gz, uv_pprof__buf_t* raw) {
  z_stream zs;
  char chunk[65536];
  int rc;

  memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, 15 + 16) != Z_OK)
    abort();
  zs.next_in = (Bytef*)gz->base;
  zs.avail_in = (uInt)gz->len;
  do {
    zs.next_out = (Bytef*)chunk;
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END)
      abort();
    uv_pprof__buf_append(raw, chunk, sizeof(chunk) - zs.avail_out);
  } while (rc != Z_STREAM_END);
  if (zs.avail_in != 0) /* one member, nothing after it */
    abort();
  inflateEnd(&zs);
}

static int has_id(uint64_t id, uint64_t n) {
  return id >= 1 && id <= n;
}

static void check(const Perftools__Profiles__Profile* p, size_t ntypes) {
  size_t i;
  size_t j;

  if (p->n_string_table == 0 || p->string_table[0][0] != '\0' ||
      p->n_sample_type != ntypes)
    abort();
#define STR(i)                                       \
  if ((i) < 0 || (uint64_t)(i) >= p->n_string_table) \
  abort()
  for (i = 0; i < p->n_sample_type; i++) {
    STR(p->sample_type[i]->type);
    STR(p->sample_type[i]->unit);
  }
  for (i = 0; i < p->n_comment; i++)
    STR(p->comment[i]);
  for (i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample* s = p->sample[i];
    if (s->n_value != ntypes)
      abort();
    for (j = 0; j < s->n_location_id; j++)
      if (!has_id(s->location_id[j], p->n_location))
        abort();
    for (j = 0; j < s->n_label; j++) {
      STR(s->label[j]->key);
      STR(s->label[j]->str);
      STR(s->label[j]->num_unit);
    }
  }
  for (i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location* l = p->location[i];
    if (l->id != i + 1 ||
        (l->mapping_id != 0 && !has_id(l->mapping_id, p->n_mapping)))
      abort();
    for (j = 0; j < l->n_line; j++)
      if (!has_id(l->line[j]->function_id, p->n_function))
        abort();
  }
  for (i = 0; i < p->n_function; i++) {
    if (p->function[i]->id != i + 1)
      abort();
    STR(p->function[i]->name);
    STR(p->function[i]->system_name);
    STR(p->function[i]->filename);
  }
  for (i = 0; i < p->n_mapping; i++) {
    if (p->mapping[i]->id != i + 1)
      abort();
    STR(p->mapping[i]->filename);
    STR(p->mapping[i]->build_id);
  }
#undef STR
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_t in = {data, size};
  uv_pprof__builder_t* b = uv_pprof__builder_new();
  uv_pprof__buf_t gz;
  uv_pprof__buf_t raw;
  Perftools__Profiles__Profile* p;
  size_t ntypes = 1 + byte(&in) % 4;
  char s1[16];
  char s2[16];
  size_t i;

  if (b == NULL)
    return 0;
  uv_pprof__builder_period(b, string(&in, s1), string(&in, s2),
                           (int64_t)word(&in));
  for (i = 0; i < ntypes; i++)
    uv_pprof__builder_sample_type(b, string(&in, s1), string(&in, s2));
  while (in.left > 0) {
    uint64_t locs[8];
    int64_t values[4];
    uv_pprof__label_t labels[3];
    char keys[3][16];
    char strs[3][16];
    size_t nlocs;
    size_t nlabels;
    switch (byte(&in) % 6) {
      case 0:
        uv_pprof__builder_string(b, string(&in, s1));
        break;
      case 1:
        uv_pprof__builder_comment(b, string(&in, s1));
        break;
      case 2:
        uv_pprof__builder_default_sample_type(b, string(&in, s1));
        break;
      default:
        nlocs = byte(&in) % 9;
        for (i = 0; i < nlocs; i++)
          locs[i] =
              byte(&in) & 1
                  ? uv_pprof__builder_frame(b, string(&in, s1), string(&in, s2))
                  : uv_pprof__builder_location(b, (uintptr_t)word(&in));
        for (i = 0; i < ntypes; i++)
          values[i] = (int64_t)(int8_t)byte(&in);
        nlabels = byte(&in) % 4;
        for (i = 0; i < nlabels; i++) {
          labels[i].key = string(&in, keys[i]);
          labels[i].str = byte(&in) & 1 ? string(&in, strs[i]) : NULL;
          labels[i].num = (int8_t)byte(&in);
          labels[i].num_unit = byte(&in) & 1 ? "bytes" : NULL;
        }
        uv_pprof__builder_sample(b, locs, nlocs, values, labels, nlabels);
        break;
    }
  }
  uv_pprof__buf_init(&gz);
  if (uv_pprof__builder_encode(b, &gz) == 0) {
    uv_pprof__buf_init(&raw);
    gunzip(&gz, &raw);
    p = perftools__profiles__profile__unpack(NULL, raw.len,
                                             (const uint8_t*)raw.base);
    if (p == NULL)
      abort();
    check(p, ntypes);
    perftools__profiles__profile__free_unpacked(p, NULL);
    uv_pprof__buf_free(&raw);
  }
  uv_pprof__buf_free(&gz);
  uv_pprof__builder_free(b);
  return 0;
}
