/* Handles grouped as the goroutine profile shows them: alike handles (same
 * type, state, loop, age bucket, callback and creation stack) make one
 * group, named by what its samples show and its labels. The goroutine
 * profile (src/profile/goroutine.c) and the history (src/history.c) both
 * group this way, so that a kept group and a live one are the same sample. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define MINUTE_NS (60 * (int64_t)1000000000)

typedef uv_pprof__handle_t handle_t;

void uv_pprof__handle_type_name(int type, char* buf, size_t size) {
  snprintf(buf, size, "uv_%s_t", uv_handle_type_name((uv_handle_type)type));
}

const char* uv_pprof__handle_state_text(int state) {
  static const char* const texts[] = {"inactive, unref", "active, unref",
                                      "inactive, ref", "active, ref"};

  if (state & UV_PPROF__HANDLE_CLOSING)
    return "closing";
  return texts[state & (UV_PPROF__HANDLE_ACTIVE | UV_PPROF__HANDLE_REF)];
}

/* Coarse, so that alike handles share a sample and a snapshot a minute
 * later groups them the same way. */
static int age_bucket(int64_t ns) {
  int64_t minutes = ns / MINUTE_NS;

  if (minutes < 1)
    return 0;
  if (minutes < 10)
    return 1;
  if (minutes < 60)
    return 2;
  if (minutes < 24 * 60)
    return 3;
  return 4;
}

static const char* const age_texts[] = {"<1m", "1-10m", "10-60m", "1-24h",
                                        ">24h"};

void uv_pprof__hgroup_labels(const uv_pprof__hgroup_t* g,
                             uv_pprof__hgroup_labels_t* l) {
  uv_pprof__handle_type_name(g->type, l->type, sizeof(l->type));
  snprintf(l->loop, sizeof(l->loop), "0x%" PRIxPTR, g->loop);
  memset(l->labels, 0, sizeof(l->labels));
  l->labels[0].key = "type";
  l->labels[0].str = l->type;
  l->labels[1].key = "state";
  l->labels[1].str = uv_pprof__handle_state_text(g->state);
  l->labels[2].key = "loop";
  l->labels[2].str = l->loop;
  l->labels[3].key = "age";
  l->labels[3].str = age_texts[g->age >= 0 && g->age < 5 ? g->age : 4];
}

/* What the samples of h's group show. */
static void key_of(const handle_t* h, uv_pprof__hgroup_t* g) {
  g->cb = h->cb;
  g->loop = h->loop;
  g->stack = h->stack;
  g->nstack = h->nstack;
  g->type = h->type;
  /* Only what the state label shows: alike handles share it. */
  g->state = h->state & UV_PPROF__HANDLE_CLOSING
                 ? UV_PPROF__HANDLE_CLOSING
                 : h->state & (UV_PPROF__HANDLE_ACTIVE | UV_PPROF__HANDLE_REF);
  g->age = age_bucket(h->age_ns);
  g->count = 0;
}

static int alike(const handle_t* a, const handle_t* b) {
  return a->type == b->type &&
         uv_pprof__handle_state_text(a->state) ==
             uv_pprof__handle_state_text(b->state) &&
         a->loop == b->loop && age_bucket(a->age_ns) == age_bucket(b->age_ns) &&
         a->cb == b->cb && a->stack == b->stack && a->nstack == b->nstack;
}

static uint64_t group_hash(const handle_t* h) {
  uint64_t x = h->cb ^ ((uint64_t)h->loop << 7) ^ (uintptr_t)h->stack;

  x ^= ((uint64_t)h->type << 56) ^ ((uint64_t)(h->state & 7) << 48) ^
       ((uint64_t)age_bucket(h->age_ns) << 40);
  x ^= x >> 31;
  x *= 0x9e3779b97f4a7c15ull;
  return x ^ (x >> 29);
}

int uv_pprof__hgroups_make(const uv_pprof__handles_snap_t* s,
                           uv_pprof__hgroup_t** out, size_t* nout,
                           size_t** gid_out) {
  size_t mask = 63;
  size_t* slots; /* group index + 1; 0: empty */
  size_t* first; /* per group: a handle of it, for its key */
  uv_pprof__hgroup_t* groups;
  size_t* gid;
  size_t n = 0;
  size_t i;

  while (mask + 1 < s->count * 2)
    mask = mask * 2 + 1;
  slots = calloc(mask + 1, sizeof(*slots));
  first = malloc((s->count != 0 ? s->count : 1) * sizeof(*first));
  groups = malloc((s->count != 0 ? s->count : 1) * sizeof(*groups));
  gid = malloc((s->count != 0 ? s->count : 1) * sizeof(*gid));
  if (slots == NULL || first == NULL || groups == NULL || gid == NULL) {
    free(slots);
    free(first);
    free(groups);
    free(gid);
    return UV_ENOMEM;
  }
  for (i = 0; i < s->count; i++) {
    const handle_t* h = &s->handles[i];
    size_t j;
    for (j = (size_t)group_hash(h) & mask; slots[j] != 0; j = (j + 1) & mask)
      if (alike(&s->handles[first[slots[j] - 1]], h))
        break;
    if (slots[j] == 0) {
      first[n] = i;
      key_of(h, &groups[n]);
      slots[j] = ++n;
    }
    groups[slots[j] - 1].count++;
    gid[i] = slots[j] - 1;
  }
  free(slots);
  free(first);
  *out = groups;
  *nout = n;
  if (gid_out != NULL)
    *gid_out = gid;
  else
    free(gid);
  return 0;
}
