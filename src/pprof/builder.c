/* The profile.proto builder: a deduplicating string table ("" at 0, first-use
 * order), locations keyed by address, samples merged by (locations, labels),
 * functions deduplicated by (name, file), named frames (locations without an
 * address, e.g. a thread's name), and the encoding: the process's mappings
 * attached, every address location symbolized (symbolize.c) into Lines with
 * the mappings' has_* flags set where true, packed by protobuf-c and
 * gzipped. Runs on the worker thread; not thread-safe. */
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "pprof.h"
#include "profile.pb-c.h"

/* A sample keeps its key — location ids and labels — already in
 * profile.proto's wire form, which is both what merging compares and what
 * encode writes: a profile of 50k stacks of 20 frames kept them as 8-byte
 * ids and spent more time growing and faulting in those pools than
 * encoding them. */
typedef struct {
  size_t key;     /* its key in b->keys: location_id field, label fields */
  uint32_t nlocs; /* bytes of the location_id field */
  uint32_t nkey;  /* bytes of the whole key */
  size_t value;   /* first of its values in b->values */
} sample_t;

/* A function: name == system_name (the linker name), file or "". */
typedef struct {
  int64_t name;
  int64_t file;
  size_t frame_loc; /* its named frame's location index + 1, or 0 */
} func_t;

typedef struct {
  uint64_t hash;
  size_t id; /* index of the entry + 1; 0 marks an empty slot */
} slot_t;

/* Open addressing, linear probing, at most 3/4 full. */
typedef struct {
  slot_t* slots;
  size_t mask;
  size_t used;
} table_t;

/* The pools are uv_pprof__buf_t used as arrays: realloc'd memory suits any
 * element type, and the buffer's sticky oom flag comes for free. */
struct uv_pprof__builder_s {
  int err;                  /* first failure, returned by encode */
  uv_pprof__buf_t chars;    /* every string, NUL-terminated */
  uv_pprof__buf_t str_offs; /* size_t offset into chars per string */
  table_t strings;
  int has_period;
  int64_t period_type;
  int64_t period_unit;
  int64_t period;
  uv_pprof__buf_t types; /* int64_t (type, unit) pairs */
  int64_t default_type;
  uv_pprof__buf_t comments; /* int64_t */
  int64_t time_nanos;
  int64_t duration;
  uv_pprof__buf_t addrs;     /* uintptr_t per location; id = index + 1 */
  uv_pprof__buf_t loc_funcs; /* size_t per location: a named frame's
                                function index + 1, or 0 for an address */
  table_t locations;         /* address locations only */
  uv_pprof__buf_t funcs;     /* func_t; function id = index + 1 */
  table_t func_index;
  uv_pprof__buf_t samples; /* sample_t */
  uv_pprof__buf_t keys;    /* the samples' keys, wire form */
  uv_pprof__buf_t values;  /* int64_t, one per sample type per sample */
  table_t sample_index;
  size_t indexed; /* samples in sample_index: the others came new */
};

typedef struct {
  const uint8_t* bytes;
  size_t len;
} sample_key_t;

typedef int (*match_cb)(const uv_pprof__builder_t* b, size_t index,
                        const void* key);

static void fail(uv_pprof__builder_t* b, int err) {
  if (b->err == 0)
    b->err = err;
}

void uv_pprof__builder_fail(uv_pprof__builder_t* b, int err) {
  fail(b, err);
}

static size_t count_of(const uv_pprof__buf_t* pool, size_t size) {
  return pool->len / size;
}

/* Makes sure `more` more entries fit. Returns 0 or UV_ENOMEM. */
static int reserve_slots(table_t* t, size_t more) {
  size_t cap = t->slots != NULL ? t->mask + 1 : 0;
  size_t ncap;
  size_t i;
  size_t j;
  slot_t* slots;

  if (t->used + more <= cap / 4 * 3)
    return 0;
  ncap = cap != 0 ? cap * 2 : 64;
  while (t->used + more > ncap / 4 * 3)
    ncap *= 2;
  slots = calloc(ncap, sizeof(*slots));
  if (slots == NULL)
    return UV_ENOMEM;
  for (i = 0; i < cap; i++) {
    if (t->slots[i].id == 0)
      continue;
    for (j = t->slots[i].hash & (ncap - 1); slots[j].id != 0;
         j = (j + 1) & (ncap - 1))
      ;
    slots[j] = t->slots[i];
  }
  free(t->slots);
  t->slots = slots;
  t->mask = ncap - 1;
  return 0;
}

static int reserve_slot(table_t* t) {
  return reserve_slots(t, 1);
}

/* The slot of the entry equal to key, or the empty slot where it belongs.
 * The table must have room (reserve_slot). */
static slot_t* probe(const table_t* t, uint64_t hash, match_cb match,
                     const uv_pprof__builder_t* b, const void* key) {
  size_t i;

  for (i = hash & t->mask;; i = (i + 1) & t->mask) {
    slot_t* s = &t->slots[i];
    if (s->id == 0 || (s->hash == hash && match(b, s->id - 1, key)))
      return s;
  }
}

static void claim(table_t* t, slot_t* s, uint64_t hash, size_t index) {
  s->hash = hash;
  s->id = index + 1;
  t->used++;
}

static const char* string_at(const uv_pprof__builder_t* b, size_t index) {
  return b->chars.base + ((const size_t*)b->str_offs.base)[index];
}

static int match_string(const uv_pprof__builder_t* b, size_t index,
                        const void* key) {
  return strcmp(string_at(b, index), key) == 0;
}

static int match_addr(const uv_pprof__builder_t* b, size_t index,
                      const void* key) {
  return ((const uintptr_t*)b->addrs.base)[index] == *(const uintptr_t*)key;
}

static int match_func(const uv_pprof__builder_t* b, size_t index,
                      const void* key) {
  const func_t* f = (const func_t*)b->funcs.base + index;
  const int64_t* k = key;

  return f->name == k[0] && f->file == k[1];
}

static int match_sample(const uv_pprof__builder_t* b, size_t index,
                        const void* key) {
  const sample_t* s = (const sample_t*)b->samples.base + index;
  const sample_key_t* k = key;

  /* An empty key has no bytes (and keys.base may be NULL): no pointer is
   * formed for a length 0. */
  return s->nkey == k->len &&
         (k->len == 0 || memcmp(b->keys.base + s->key, k->bytes, k->len) == 0);
}

uv_pprof__builder_t* uv_pprof__builder_new(void) {
  uv_pprof__builder_t* b;

  b = calloc(1, sizeof(*b));
  if (b == NULL)
    return NULL;
  uv_pprof__buf_init(&b->chars);
  uv_pprof__buf_init(&b->str_offs);
  uv_pprof__buf_init(&b->types);
  uv_pprof__buf_init(&b->comments);
  uv_pprof__buf_init(&b->addrs);
  uv_pprof__buf_init(&b->loc_funcs);
  uv_pprof__buf_init(&b->funcs);
  uv_pprof__buf_init(&b->samples);
  uv_pprof__buf_init(&b->keys);
  uv_pprof__buf_init(&b->values);
  b->time_nanos = uv_pprof__now_ns();
  uv_pprof__builder_string(b, "");
  if (b->err != 0) {
    uv_pprof__builder_free(b);
    return NULL;
  }
  return b;
}

void uv_pprof__builder_free(uv_pprof__builder_t* b) {
  if (b == NULL)
    return;
  uv_pprof__buf_free(&b->chars);
  uv_pprof__buf_free(&b->str_offs);
  free(b->strings.slots);
  uv_pprof__buf_free(&b->types);
  uv_pprof__buf_free(&b->comments);
  uv_pprof__buf_free(&b->addrs);
  uv_pprof__buf_free(&b->loc_funcs);
  free(b->locations.slots);
  uv_pprof__buf_free(&b->funcs);
  free(b->func_index.slots);
  uv_pprof__buf_free(&b->samples);
  uv_pprof__buf_free(&b->keys);
  uv_pprof__buf_free(&b->values);
  free(b->sample_index.slots);
  free(b);
}

/* Returns 0 once out of memory (or after any earlier failure): encode then
 * reports the failure, so the index never reaches the output. */
int64_t uv_pprof__builder_string(uv_pprof__builder_t* b, const char* s) {
  size_t len = strlen(s);
  uint64_t hash = uv_pprof__hash_bytes(s, len);
  size_t index = count_of(&b->str_offs, sizeof(size_t));
  size_t off = b->chars.len;
  slot_t* slot;

  if (b->err != 0)
    return 0;
  if (reserve_slot(&b->strings) != 0) {
    fail(b, UV_ENOMEM);
    return 0;
  }
  slot = probe(&b->strings, hash, match_string, b, s);
  if (slot->id != 0)
    return (int64_t)(slot->id - 1);
  uv_pprof__buf_append(&b->chars, s, len + 1);
  uv_pprof__buf_append(&b->str_offs, &off, sizeof(off));
  if (b->chars.oom || b->str_offs.oom) {
    fail(b, UV_ENOMEM);
    return 0;
  }
  claim(&b->strings, slot, hash, index);
  return (int64_t)index;
}

void uv_pprof__builder_period(uv_pprof__builder_t* b, const char* type,
                              const char* unit, int64_t period) {
  b->has_period = 1;
  b->period_type = uv_pprof__builder_string(b, type);
  b->period_unit = uv_pprof__builder_string(b, unit);
  b->period = period;
}

/* Types come before samples: a type added once samples exist would leave
 * them a value short, so it fails the profile with UV_EINVAL. */
void uv_pprof__builder_sample_type(uv_pprof__builder_t* b, const char* type,
                                   const char* unit) {
  int64_t pair[2];

  pair[0] = uv_pprof__builder_string(b, type);
  pair[1] = uv_pprof__builder_string(b, unit);
  if (b->err != 0)
    return;
  if (b->samples.len != 0) {
    fail(b, UV_EINVAL);
    return;
  }
  if (uv_pprof__buf_append(&b->types, pair, sizeof(pair)) != 0)
    fail(b, UV_ENOMEM);
}

void uv_pprof__builder_default_sample_type(uv_pprof__builder_t* b,
                                           const char* type) {
  b->default_type = uv_pprof__builder_string(b, type);
}

void uv_pprof__builder_comment(uv_pprof__builder_t* b, const char* text) {
  int64_t index = uv_pprof__builder_string(b, text);

  if (b->err != 0)
    return;
  if (uv_pprof__buf_append(&b->comments, &index, sizeof(index)) != 0)
    fail(b, UV_ENOMEM);
}

void uv_pprof__builder_time(uv_pprof__builder_t* b, int64_t time_nanos) {
  b->time_nanos = time_nanos;
}

void uv_pprof__builder_duration(uv_pprof__builder_t* b, int64_t nanos) {
  b->duration = nanos;
}

static int append_location(uv_pprof__builder_t* b, uintptr_t addr,
                           size_t func) {
  uv_pprof__buf_append(&b->addrs, &addr, sizeof(addr));
  uv_pprof__buf_append(&b->loc_funcs, &func, sizeof(func));
  if (b->addrs.oom || b->loc_funcs.oom) {
    fail(b, UV_ENOMEM);
    return UV_ENOMEM;
  }
  return 0;
}

/* Returns 0 (an invalid id) once out of memory; encode reports it. */
uint64_t uv_pprof__builder_location(uv_pprof__builder_t* b, uintptr_t addr) {
  uint64_t hash = uv_pprof__hash_combine(0, addr);
  size_t index = count_of(&b->addrs, sizeof(addr));
  slot_t* slot;

  if (b->err != 0)
    return 0;
  if (reserve_slot(&b->locations) != 0) {
    fail(b, UV_ENOMEM);
    return 0;
  }
  slot = probe(&b->locations, hash, match_addr, b, &addr);
  if (slot->id != 0)
    return slot->id;
  if (append_location(b, addr, 0) != 0)
    return 0;
  claim(&b->locations, slot, hash, index);
  return index + 1;
}

/* Index + 1 of the function (name, file), added when new; 0 once out of
 * memory. */
static size_t function(uv_pprof__builder_t* b, const char* name,
                       const char* file) {
  int64_t key[2];
  uint64_t hash;
  size_t index = count_of(&b->funcs, sizeof(func_t));
  slot_t* slot;
  func_t f;

  key[0] = uv_pprof__builder_string(b, name);
  key[1] = uv_pprof__builder_string(b, file != NULL ? file : "");
  if (b->err != 0)
    return 0;
  if (reserve_slot(&b->func_index) != 0) {
    fail(b, UV_ENOMEM);
    return 0;
  }
  hash = uv_pprof__hash_combine(uv_pprof__hash_combine(0, (uint64_t)key[0]),
                                (uint64_t)key[1]);
  slot = probe(&b->func_index, hash, match_func, b, key);
  if (slot->id != 0)
    return slot->id;
  f.name = key[0];
  f.file = key[1];
  f.frame_loc = 0;
  if (uv_pprof__buf_append(&b->funcs, &f, sizeof(f)) != 0) {
    fail(b, UV_ENOMEM);
    return 0;
  }
  claim(&b->func_index, slot, hash, index);
  return index + 1;
}

uint64_t uv_pprof__builder_frame(uv_pprof__builder_t* b, const char* name,
                                 const char* file) {
  size_t f = function(b, name, file);
  size_t loc = count_of(&b->addrs, sizeof(uintptr_t));
  func_t* funcs;

  if (f == 0)
    return 0;
  funcs = (func_t*)b->funcs.base;
  if (funcs[f - 1].frame_loc != 0)
    return funcs[f - 1].frame_loc;
  if (append_location(b, 0, f) != 0)
    return 0;
  funcs[f - 1].frame_loc = loc + 1;
  return loc + 1;
}

/* ---- profile.proto's wire form ------------------------------------------ */

#define VARINT_MAX 10
#define FIELD_BYTES(field) ((field) << 3 | 2) /* length-delimited */
#define FIELD_VARINT(field) ((field) << 3)

static size_t varint_size(uint64_t v) {
  size_t n = 1;

  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Appends field `field` of packed varints v[0..n) (none when n is 0). */
static uint8_t* put_packed(uint8_t* p, int field, const uint64_t* v, size_t n) {
  size_t len = 0;
  size_t i;

  if (n == 0)
    return p;
  for (i = 0; i < n; i++)
    len += varint_size(v[i]);
  *p++ = FIELD_BYTES(field);
  p = put_varint(p, len);
  for (i = 0; i < n; i++)
    p = put_varint(p, v[i]);
  return p;
}

/* Puts the samples added new since the last merge into the index. */
static int index_new_samples(uv_pprof__builder_t* b) {
  const sample_t* samples = (const sample_t*)b->samples.base;
  size_t n = count_of(&b->samples, sizeof(sample_t));

  if (reserve_slots(&b->sample_index, n - b->indexed) != 0)
    return UV_ENOMEM;
  for (; b->indexed < n; b->indexed++) {
    const sample_t* s = &samples[b->indexed];
    sample_key_t key;
    uint64_t hash;
    slot_t* slot;
    key.bytes = (const uint8_t*)b->keys.base + s->key;
    key.len = s->nkey;
    hash = uv_pprof__hash_mem(key.bytes, key.len, 0);
    slot = probe(&b->sample_index, hash, match_sample, b, &key);
    if (slot->id == 0)
      claim(&b->sample_index, slot, hash, b->indexed);
  }
  return 0;
}

/* Labels are compared in the order given: emitters write them in a fixed
 * order, which keeps merging a plain memcmp. A location id that the builder
 * did not hand out makes encode fail with UV_EINVAL. */
static void add_sample(uv_pprof__builder_t* b, const uint64_t* locs,
                       size_t nlocs, const int64_t* values,
                       const uv_pprof__label_t* labels, size_t nlabels,
                       int merge) {
  size_t nvalues = count_of(&b->types, 2 * sizeof(int64_t));
  size_t nlocations = count_of(&b->addrs, sizeof(uintptr_t));
  size_t first = b->keys.len;
  sample_key_t key;
  sample_t s;
  slot_t* slot = NULL;
  uint8_t* start;
  uint8_t* p;
  uint64_t hash = 0;
  size_t i;

  if (b->err != 0)
    return;
  for (i = 0; i < nlocs; i++) {
    if (locs[i] == 0 || locs[i] > nlocations) {
      fail(b, UV_EINVAL);
      return;
    }
  }
  /* The key goes to the pool at once (its strings interned); a merged
   * sample takes it back out below. */
  start =
      uv_pprof__buf_room(&b->keys, 2 + VARINT_MAX * (nlocs + 1) +
                                       nlabels * (2 + 4 * (1 + VARINT_MAX)));
  if (start == NULL) {
    fail(b, UV_ENOMEM);
    return;
  }
  p = put_packed(start, 1, locs, nlocs);
  s.nlocs = (uint32_t)(p - start);
  for (i = 0; i < nlabels; i++) {
    int64_t f[4] = {0, 0, 0, 0};
    uint8_t msg[4 * (1 + VARINT_MAX)];
    uint8_t* m = msg;
    int k;
    f[0] = uv_pprof__builder_string(b, labels[i].key);
    if (labels[i].str != NULL)
      f[1] = uv_pprof__builder_string(b, labels[i].str);
    else
      f[2] = labels[i].num;
    if (labels[i].str == NULL && labels[i].num_unit != NULL)
      f[3] = uv_pprof__builder_string(b, labels[i].num_unit);
    /* Interning may have moved nothing of ours: keys is its own pool. */
    for (k = 0; k < 4; k++) {
      if (f[k] == 0)
        continue;
      *m++ = FIELD_VARINT(k + 1);
      m = put_varint(m, (uint64_t)f[k]);
    }
    *p++ = FIELD_BYTES(3);
    p = put_varint(p, (uint64_t)(m - msg));
    memcpy(p, msg, (size_t)(m - msg));
    p += m - msg;
  }
  if (b->err != 0) /* a string could not be interned */
    return;
  key.bytes = start;
  key.len = (size_t)(p - start);
  if (merge) {
    if (index_new_samples(b) != 0 || reserve_slot(&b->sample_index) != 0) {
      fail(b, UV_ENOMEM);
      return;
    }
    hash = uv_pprof__hash_mem(key.bytes, key.len, 0);
    slot = probe(&b->sample_index, hash, match_sample, b, &key);
    if (slot->id != 0) {
      const sample_t* old = (const sample_t*)b->samples.base + (slot->id - 1);
      int64_t* sums = (int64_t*)b->values.base;
      for (i = 0; i < nvalues; i++)
        sums[old->value + i] =
            (int64_t)((uint64_t)sums[old->value + i] + (uint64_t)values[i]);
      return;
    }
  }
  b->keys.len = first + key.len;
  s.key = first;
  s.nkey = (uint32_t)key.len;
  s.value = count_of(&b->values, sizeof(int64_t));
  uv_pprof__buf_append(&b->values, values, nvalues * sizeof(*values));
  uv_pprof__buf_append(&b->samples, &s, sizeof(s));
  if (b->values.oom || b->samples.oom) {
    fail(b, UV_ENOMEM);
    return;
  }
  if (merge) {
    claim(&b->sample_index, slot, hash, b->indexed);
    b->indexed++;
  }
}

void uv_pprof__builder_sample(uv_pprof__builder_t* b, const uint64_t* locs,
                              size_t nlocs, const int64_t* values,
                              const uv_pprof__label_t* labels, size_t nlabels) {
  add_sample(b, locs, nlocs, values, labels, nlabels, 1);
}

void uv_pprof__builder_sample_new(uv_pprof__builder_t* b, const uint64_t* locs,
                                  size_t nlocs, const int64_t* values,
                                  const uv_pprof__label_t* labels,
                                  size_t nlabels) {
  add_sample(b, locs, nlocs, values, labels, nlabels, 0);
}

void uv_pprof__builder_expect(uv_pprof__builder_t* b, size_t samples,
                              size_t locations) {
  size_t nvalues = count_of(&b->types, 2 * sizeof(int64_t));

  /* Each location id takes a byte or two; labels and lengths a few more.
   * The merge index is only made when a merge needs it. */
  if (uv_pprof__buf_room(&b->samples, samples * sizeof(sample_t)) == NULL ||
      uv_pprof__buf_room(&b->values, samples * nvalues * sizeof(int64_t)) ==
          NULL ||
      uv_pprof__buf_room(&b->keys, samples * 16 + locations * 2) == NULL)
    fail(b, UV_ENOMEM);
}

size_t uv_pprof__builder_sample_count(const uv_pprof__builder_t* b) {
  return count_of(&b->samples, sizeof(sample_t));
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct {
  uintptr_t start;
  uintptr_t limit;
  uint64_t id;
} range_t;

/* A symbolized address location's line, before the view exists. */
typedef struct {
  size_t func; /* function index + 1 */
  int64_t line;
} line_t;

/* Where a location's lines are in the encoding's `sym_lines`. */
typedef struct {
  size_t first;
  size_t count; /* 0: a named frame, or an address left unsymbolized */
} loc_lines_t;

/* What the locations of one mapping got, for its has_* flags. */
typedef struct {
  size_t locations;
  size_t named;   /* every frame has a function name */
  size_t files;   /* ... and a file */
  size_t lines;   /* ... and a line */
  size_t inlined; /* more than one frame */
} mapping_stats_t;

/* Everything the protobuf-c view of the profile points to. The view borrows
 * the builder's pools (location ids, values, comments, strings) as they are. */
typedef struct {
  Perftools__Profiles__Profile profile;
  Perftools__Profiles__ValueType period_type;
  Perftools__Profiles__ValueType* types;
  Perftools__Profiles__ValueType** type_ptrs;
  Perftools__Profiles__Mapping* maps;
  Perftools__Profiles__Mapping** map_ptrs;
  range_t* ranges; /* the mappings sorted by start */
  size_t nranges;
  int fake; /* maps unreadable: one mapping holds every location, as in Go */
  uv_pprof__buf_t sym_lines; /* line_t */
  loc_lines_t* loc_lines;    /* one per location */
  Perftools__Profiles__Location* locs;
  Perftools__Profiles__Location** loc_ptrs;
  Perftools__Profiles__Line* lines;
  Perftools__Profiles__Line** line_ptrs;
  Perftools__Profiles__Function* funcs;
  Perftools__Profiles__Function** func_ptrs;
  char** strings;
  uv_pprof__buf_t packed;
} encoding_t;

/* calloc that never answers NULL for a zero count. */
static void* alloc_array(size_t n, size_t size) {
  return calloc(n != 0 ? n : 1, size);
}

static int compare_ranges(const void* a, const void* b) {
  const range_t* x = a;
  const range_t* y = b;

  return (x->start > y->start) - (x->start < y->start);
}

/* Fills the mappings (interning their strings) and the sorted ranges. */
static int fill_mappings(uv_pprof__builder_t* b, encoding_t* e) {
  uv_pprof__mapping_t* maps = NULL;
  size_t nmaps = 0;
  size_t n;
  size_t i;
  int rc;

  rc = uv_pprof__maps_read(&maps, &nmaps);
  if (rc == UV_ENOMEM)
    return rc;
  e->fake = rc != 0 || nmaps == 0;
  n = e->fake ? 1 : nmaps;
  e->maps = alloc_array(n, sizeof(*e->maps));
  e->map_ptrs = alloc_array(n, sizeof(*e->map_ptrs));
  e->ranges = alloc_array(n, sizeof(*e->ranges));
  if (e->maps == NULL || e->map_ptrs == NULL || e->ranges == NULL) {
    uv_pprof__maps_free(maps, nmaps);
    return UV_ENOMEM;
  }
  for (i = 0; i < n; i++) {
    Perftools__Profiles__Mapping init = PERFTOOLS__PROFILES__MAPPING__INIT;
    e->maps[i] = init;
    e->maps[i].id = i + 1;
    e->map_ptrs[i] = &e->maps[i];
    e->ranges[i].id = i + 1;
    if (e->fake)
      continue;
    e->maps[i].memory_start = maps[i].start;
    e->maps[i].memory_limit = maps[i].limit;
    e->maps[i].file_offset = maps[i].offset;
    e->maps[i].filename = uv_pprof__builder_string(b, maps[i].path);
    if (maps[i].build_id != NULL)
      e->maps[i].build_id = uv_pprof__builder_string(b, maps[i].build_id);
    e->ranges[i].start = maps[i].start;
    e->ranges[i].limit = maps[i].limit;
  }
  uv_pprof__maps_free(maps, nmaps);
  e->nranges = n;
  qsort(e->ranges, n, sizeof(*e->ranges), compare_ranges);
  e->profile.n_mapping = n;
  e->profile.mapping = e->map_ptrs;
  return b->err;
}

static uint64_t find_mapping(const encoding_t* e, uintptr_t addr) {
  size_t lo = 0;
  size_t hi = e->nranges;

  if (e->fake)
    return 1;
  /* The last range starting at or below addr is the only candidate. */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e->ranges[mid].start <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo > 0 && addr < e->ranges[lo - 1].limit)
    return e->ranges[lo - 1].id;
  return 0;
}

static int fill_types(uv_pprof__builder_t* b, encoding_t* e) {
  const int64_t* types = (const int64_t*)b->types.base;
  size_t n = count_of(&b->types, 2 * sizeof(int64_t));
  size_t i;

  e->types = alloc_array(n, sizeof(*e->types));
  e->type_ptrs = alloc_array(n, sizeof(*e->type_ptrs));
  if (e->types == NULL || e->type_ptrs == NULL)
    return UV_ENOMEM;
  for (i = 0; i < n; i++) {
    Perftools__Profiles__ValueType init = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    e->types[i] = init;
    e->types[i].type = types[2 * i];
    e->types[i].unit = types[2 * i + 1];
    e->type_ptrs[i] = &e->types[i];
  }
  e->profile.n_sample_type = n;
  e->profile.sample_type = e->type_ptrs;
  if (b->has_period) {
    Perftools__Profiles__ValueType init = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
    e->period_type = init;
    e->period_type.type = b->period_type;
    e->period_type.unit = b->period_unit;
    e->profile.period_type = &e->period_type;
    e->profile.period = b->period;
  }
  return 0;
}

/* Which function of the profile the symbol frames f[0..n) of one address
 * are, keyed by their interned strings (the same pointers for equal
 * strings): most frames repeat, and the builder's string table need not
 * hash the same name again. */
typedef struct {
  const char* name;
  const char* file;
  size_t func;
} memo_t;

#define MEMO_SIZE 256

static size_t memo_function(uv_pprof__builder_t* b, memo_t* memo,
                            const uv_pprof__symbol_t* f) {
  uintptr_t key = (uintptr_t)f->name ^ ((uintptr_t)f->file >> 3);
  memo_t* m = &memo[(uv_pprof__hash_combine(0, key) >> 8) % MEMO_SIZE];

  if (m->func == 0 || m->name != f->name || m->file != f->file) {
    m->name = f->name;
    m->file = f->file;
    m->func = function(b, f->name, f->file);
  }
  return m->func;
}

/* Symbolizes every address location into lines (innermost first), adds
 * their functions, and sets each mapping's has_* flags when true of all its
 * locations. An address nothing names gets its made-up name
 * ("nvim+0x3cb60") as a line, but leaves its mapping's has_functions
 * false: go tool pprof then still symbolizes that mapping itself when it
 * has the binary (its local symbolization replaces every line it can
 * resolve), while its remote symbolization, which only asks for locations
 * without lines, has nothing to ask. Locations in no object and no JIT
 * code keep only the address. Gives up (UV_ECANCELED) when its server
 * stops: cold, 10k addresses take 100 ms. */
static int symbolize(uv_pprof__builder_t* b, encoding_t* e) {
  const uintptr_t* addrs = (const uintptr_t*)b->addrs.base;
  const size_t* loc_funcs = (const size_t*)b->loc_funcs.base;
  size_t n = count_of(&b->addrs, sizeof(uintptr_t));
  mapping_stats_t* stats;
  memo_t memo[MEMO_SIZE];
  size_t i;
  size_t j;

  e->loc_lines = alloc_array(n, sizeof(*e->loc_lines));
  stats = alloc_array(e->profile.n_mapping, sizeof(*stats));
  if (e->loc_lines == NULL || stats == NULL) {
    free(stats);
    return UV_ENOMEM;
  }
  memset(memo, 0, sizeof(memo));
  for (i = 0; i < n && b->err == 0; i++) {
    uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
    uint64_t map;
    size_t nf;
    int shown = 1;
    int named = 1;
    int files = 1;
    int lines = 1;

    if (loc_funcs[i] != 0)
      continue;
    if (i % 256 == 0 && uv_pprof__stopping()) {
      free(stats);
      return UV_ECANCELED;
    }
    map = find_mapping(e, addrs[i]);
    nf = uv_pprof__symbolize(addrs[i], f, UV_PPROF__ARRAY_SIZE(f));
    for (j = 0; j < nf; j++) {
      shown &= f[j].name != NULL;
      named &= f[j].name != NULL && !f[j].nameless;
      files &= f[j].file != NULL;
      lines &= f[j].line > 0;
    }
    shown &= nf > 0;
    named &= shown;
    if (map != 0) {
      mapping_stats_t* st = &stats[map - 1];
      st->locations++;
      st->named += named;
      st->files += named && files;
      st->lines += named && lines;
      st->inlined += named && nf > 1;
    }
    if (!shown)
      continue;
    e->loc_lines[i].first = count_of(&e->sym_lines, sizeof(line_t));
    e->loc_lines[i].count = nf;
    for (j = 0; j < nf; j++) {
      line_t l;
      l.func = memo_function(b, memo, &f[j]);
      l.line = f[j].line;
      uv_pprof__buf_append(&e->sym_lines, &l, sizeof(l));
    }
  }
  for (i = 0; i < e->profile.n_mapping; i++) {
    const mapping_stats_t* st = &stats[i];
    Perftools__Profiles__Mapping* m = &e->maps[i];
    if (st->locations == 0 || st->named != st->locations)
      continue;
    m->has_functions = 1;
    m->has_filenames = st->files == st->locations;
    m->has_line_numbers = st->lines == st->locations;
    m->has_inline_frames = st->inlined != 0;
  }
  free(stats);
  if (e->sym_lines.oom)
    return UV_ENOMEM;
  return b->err;
}

static int fill_functions(uv_pprof__builder_t* b, encoding_t* e) {
  const func_t* funcs = (const func_t*)b->funcs.base;
  size_t n = count_of(&b->funcs, sizeof(func_t));
  size_t i;

  e->funcs = alloc_array(n, sizeof(*e->funcs));
  e->func_ptrs = alloc_array(n, sizeof(*e->func_ptrs));
  if (e->funcs == NULL || e->func_ptrs == NULL)
    return UV_ENOMEM;
  for (i = 0; i < n; i++) {
    Perftools__Profiles__Function init = PERFTOOLS__PROFILES__FUNCTION__INIT;
    e->funcs[i] = init;
    e->funcs[i].id = i + 1;
    e->funcs[i].name = funcs[i].name;
    e->funcs[i].system_name = funcs[i].name;
    e->funcs[i].filename = funcs[i].file;
    e->func_ptrs[i] = &e->funcs[i];
  }
  e->profile.n_function = n;
  e->profile.function = e->func_ptrs;
  return 0;
}

/* A named frame's location has one line, its function's; a symbolized
 * address's has its frames' lines. */
static int fill_locations(uv_pprof__builder_t* b, encoding_t* e) {
  const uintptr_t* addrs = (const uintptr_t*)b->addrs.base;
  const size_t* loc_funcs = (const size_t*)b->loc_funcs.base;
  const line_t* sym_lines = (const line_t*)e->sym_lines.base;
  size_t n = count_of(&b->addrs, sizeof(uintptr_t));
  size_t nlines = count_of(&e->sym_lines, sizeof(line_t));
  size_t next = 0;
  size_t i;
  size_t j;

  for (i = 0; i < n; i++)
    nlines += loc_funcs[i] != 0;
  e->locs = alloc_array(n, sizeof(*e->locs));
  e->loc_ptrs = alloc_array(n, sizeof(*e->loc_ptrs));
  e->lines = alloc_array(nlines, sizeof(*e->lines));
  e->line_ptrs = alloc_array(nlines, sizeof(*e->line_ptrs));
  if (e->locs == NULL || e->loc_ptrs == NULL || e->lines == NULL ||
      e->line_ptrs == NULL)
    return UV_ENOMEM;
  for (i = 0; i < nlines; i++) {
    Perftools__Profiles__Line init = PERFTOOLS__PROFILES__LINE__INIT;
    e->lines[i] = init;
    e->line_ptrs[i] = &e->lines[i];
  }
  for (i = 0; i < n; i++) {
    Perftools__Profiles__Location init = PERFTOOLS__PROFILES__LOCATION__INIT;
    const loc_lines_t* ll = &e->loc_lines[i];
    e->locs[i] = init;
    e->locs[i].id = i + 1;
    if (loc_funcs[i] != 0) {
      e->locs[i].n_line = 1;
      e->locs[i].line = &e->line_ptrs[next];
      e->lines[next++].function_id = loc_funcs[i];
    } else {
      e->locs[i].mapping_id = find_mapping(e, addrs[i]);
      e->locs[i].address = addrs[i];
      e->locs[i].n_line = ll->count;
      if (ll->count != 0)
        e->locs[i].line = &e->line_ptrs[next];
      for (j = 0; j < ll->count; j++, next++) {
        e->lines[next].function_id = sym_lines[ll->first + j].func;
        e->lines[next].line = sym_lines[ll->first + j].line;
      }
    }
    e->loc_ptrs[i] = &e->locs[i];
  }
  e->profile.n_location = n;
  e->profile.location = e->loc_ptrs;
  return 0;
}

static int all_zero(const int64_t* values, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (values[i] != 0)
      return 0;
  return 1;
}

/* Appends Profile.sample (field 2) for every sample with a value that is
 * not 0, from the wire-form keys: location_id, value, then label, the
 * order protobuf-c and Go write them in. */
static int write_samples(uv_pprof__builder_t* b, uv_pprof__buf_t* out) {
  const sample_t* samples = (const sample_t*)b->samples.base;
  const int64_t* values = (const int64_t*)b->values.base;
  size_t nsamples = count_of(&b->samples, sizeof(sample_t));
  size_t nvalues = count_of(&b->types, 2 * sizeof(int64_t));
  size_t i;
  size_t j;

  for (i = 0; i < nsamples; i++) {
    const sample_t* s = &samples[i];
    const uint8_t* key = (const uint8_t*)b->keys.base + s->key;
    const int64_t* v = values + s->value;
    size_t vlen = 0;
    size_t len;
    uint8_t* p;

    if (nvalues == 0 || all_zero(v, nvalues))
      continue;
    for (j = 0; j < nvalues; j++)
      vlen += varint_size((uint64_t)v[j]);
    len = s->nkey + 1 + varint_size(vlen) + vlen;
    p = uv_pprof__buf_room(out, 1 + VARINT_MAX + len);
    if (p == NULL)
      return UV_ENOMEM;
    *p++ = FIELD_BYTES(2);
    p = put_varint(p, len);
    memcpy(p, key, s->nlocs);
    p += s->nlocs;
    *p++ = FIELD_BYTES(2);
    p = put_varint(p, vlen);
    for (j = 0; j < nvalues; j++)
      p = put_varint(p, (uint64_t)v[j]);
    memcpy(p, key + s->nlocs, s->nkey - s->nlocs);
    p += s->nkey - s->nlocs;
    out->len = (size_t)((char*)p - out->base);
  }
  return 0;
}

static int fill_strings(uv_pprof__builder_t* b, encoding_t* e) {
  size_t n = count_of(&b->str_offs, sizeof(size_t));
  size_t i;

  e->strings = alloc_array(n, sizeof(*e->strings));
  if (e->strings == NULL)
    return UV_ENOMEM;
  for (i = 0; i < n; i++)
    e->strings[i] = (char*)string_at(b, i);
  e->profile.n_string_table = n;
  e->profile.string_table = e->strings;
  return 0;
}

int uv_pprof__builder_encode(uv_pprof__builder_t* b, uv_pprof__buf_t* out) {
  Perftools__Profiles__Profile init = PERFTOOLS__PROFILES__PROFILE__INIT;
  encoding_t e;
  size_t size = 0;
  uint8_t* p = NULL;
  int rc;

  if (b->err != 0)
    return b->err;
  memset(&e, 0, sizeof(e));
  e.profile = init;
  e.profile.time_nanos = b->time_nanos;
  e.profile.duration_nanos = b->duration;
  e.profile.default_sample_type = b->default_type;
  e.profile.n_comment = count_of(&b->comments, sizeof(int64_t));
  e.profile.comment = (int64_t*)b->comments.base;
  /* Mappings and symbols first: they add strings, and the string table view
   * below must only be taken once no string can be added any more. */
  uv_pprof__buf_init(&e.sym_lines);
  uv_pprof__buf_init(&e.packed);
  rc = fill_mappings(b, &e);
  if (rc == 0)
    rc = symbolize(b, &e);
  if (rc == 0)
    rc = fill_types(b, &e);
  if (rc == 0)
    rc = fill_functions(b, &e);
  if (rc == 0)
    rc = fill_locations(b, &e);
  if (rc == 0)
    rc = fill_strings(b, &e);
  /* protobuf-c packs everything but the samples, which are already in
   * wire form: the fields of a message may come in any order. */
  if (rc == 0) {
    size = perftools__profiles__profile__get_packed_size(&e.profile);
    p = uv_pprof__buf_room(&e.packed, size);
    if (p == NULL)
      rc = UV_ENOMEM;
  }
  if (rc == 0) {
    e.packed.len = perftools__profiles__profile__pack(&e.profile, p);
    rc = write_samples(b, &e.packed);
  }
  if (rc == 0)
    rc = uv_pprof__gzip(e.packed.base, e.packed.len, out);
  free(e.types);
  free(e.type_ptrs);
  free(e.maps);
  free(e.map_ptrs);
  free(e.ranges);
  uv_pprof__buf_free(&e.sym_lines);
  free(e.loc_lines);
  free(e.locs);
  free(e.loc_ptrs);
  free(e.lines);
  free(e.line_ptrs);
  free(e.funcs);
  free(e.func_ptrs);
  free(e.strings);
  uv_pprof__buf_free(&e.packed);
  if (rc != 0)
    fail(b, rc);
  return rc;
}
