/* The goroutine profile: libuv handles as goroutines. The snapshot comes from
 * src/handles.c (a walk of every registered loop on its own thread); here the
 * handles are grouped (alike = same type, state, loop, age bucket, callback
 * and creation stack) into goroutine/count samples whose stack is the
 * callback, a frame naming the handle type, then the creation stack. Also
 * Go's ?debug=1 grouped text and the ?debug=2 one-block-per-handle dump. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "profile.h"

#define MINUTE_NS (60 * (int64_t)1000000000)

typedef uv_pprof__handles_snap_t snap_t;
typedef uv_pprof__handle_t handle_t;

typedef struct {
  size_t first; /* a handle of the group, for its key */
  int64_t count;
} group_t;

/* The handles and, once complete, their groups. */
typedef struct {
  snap_t* s;
  group_t* groups; /* in order of first appearance */
  size_t ngroups;
  size_t* gid; /* per handle: its group */
} gsnap_t;

/* ---- labels ------------------------------------------------------------- */

static void type_name(int type, char* buf, size_t size) {
  snprintf(buf, size, "uv_%s_t", uv_handle_type_name((uv_handle_type)type));
}

static const char* state_text(int state) {
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

typedef struct {
  char type[24];
  char loop[24];
  uv_pprof__label_t labels[4];
} labels_t;

static void set_labels(const handle_t* h, labels_t* l) {
  type_name(h->type, l->type, sizeof(l->type));
  snprintf(l->loop, sizeof(l->loop), "0x%" PRIxPTR, h->loop);
  memset(l->labels, 0, sizeof(l->labels));
  l->labels[0].key = "type";
  l->labels[0].str = l->type;
  l->labels[1].key = "state";
  l->labels[1].str = state_text(h->state);
  l->labels[2].key = "loop";
  l->labels[2].str = l->loop;
  l->labels[3].key = "age";
  l->labels[3].str = age_texts[age_bucket(h->age_ns)];
}

/* ---- grouping ----------------------------------------------------------- */

static int alike(const handle_t* a, const handle_t* b) {
  return a->type == b->type && state_text(a->state) == state_text(b->state) &&
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

/* Groups alike handles in order of first appearance. Returns 0 or
 * UV_ENOMEM. */
static int group(gsnap_t* g) {
  const snap_t* s = g->s;
  size_t mask = 63;
  size_t* slots; /* group index + 1; 0: empty */
  group_t* groups;
  size_t* gid;
  size_t n = 0;
  size_t i;

  while (mask + 1 < s->count * 2)
    mask = mask * 2 + 1;
  slots = calloc(mask + 1, sizeof(*slots));
  groups = malloc((s->count != 0 ? s->count : 1) * sizeof(*groups));
  gid = malloc((s->count != 0 ? s->count : 1) * sizeof(*gid));
  if (slots == NULL || groups == NULL || gid == NULL) {
    free(slots);
    free(groups);
    free(gid);
    return UV_ENOMEM;
  }
  for (i = 0; i < s->count; i++) {
    const handle_t* h = &s->handles[i];
    size_t j;
    for (j = (size_t)group_hash(h) & mask; slots[j] != 0; j = (j + 1) & mask)
      if (alike(&s->handles[groups[slots[j] - 1].first], h))
        break;
    if (slots[j] == 0) {
      groups[n].first = i;
      groups[n].count = 0;
      slots[j] = ++n;
    }
    groups[slots[j] - 1].count++;
    gid[i] = slots[j] - 1;
  }
  free(slots);
  g->groups = groups;
  g->ngroups = n;
  g->gid = gid;
  return 0;
}

/* ---- the descriptor's hooks --------------------------------------------- */

static int take(uv_loop_t* loop, void** snap) {
  gsnap_t* g = calloc(1, sizeof(*g));
  int rc;

  if (g == NULL)
    return UV_ENOMEM;
  rc = uv_pprof__handles_collect(loop, &g->s);
  if (rc != 0) {
    free(g);
    return rc;
  }
  *snap = g;
  return 0;
}

static int complete(void* snap) {
  gsnap_t* g = snap;
  int rc = uv_pprof__handles_complete(g->s);

  return rc != 0 ? rc : group(g);
}

static void free_snapshot(void* snap) {
  gsnap_t* g = snap;

  uv_pprof__handles_free(g->s);
  free(g->groups);
  free(g->gid);
  free(g);
}

static int64_t count_handles(const void* snap) {
  return (int64_t)((const gsnap_t*)snap)->s->count;
}

static void set_types(uv_pprof__builder_t* b) {
  uv_pprof__builder_period(b, "goroutine", "count", 1);
  uv_pprof__builder_sample_type(b, "goroutine", "count");
}

static void add_missing_comments(const snap_t* s, uv_pprof__builder_t* b) {
  size_t i;

  for (i = 0; i < s->nmissing; i++) {
    char text[128];
    snprintf(text, sizeof(text),
             "loop 0x%" PRIxPTR
             " did not answer within 2 s: its handles "
             "are missing",
             s->missing[i]);
    uv_pprof__builder_comment(b, text);
  }
}

/* Leaf first: the callback (its entry address: it is about to be called,
 * not returned to), the type, then the creation stack's call sites. */
static void emit_samples(const void* p, uv_pprof__builder_t* b, int sign) {
  const gsnap_t* g = p;
  const snap_t* s = g->s;
  size_t i;

  if (sign > 0)
    add_missing_comments(s, b);
  for (i = 0; i < g->ngroups; i++) {
    const handle_t* h = &s->handles[g->groups[i].first];
    uint64_t locs[2 + 64];
    size_t n = 0;
    size_t k;
    int64_t value = g->groups[i].count * sign;
    labels_t l;
    set_labels(h, &l);
    if (h->cb != 0)
      locs[n++] = uv_pprof__builder_location(b, h->cb);
    locs[n++] = uv_pprof__builder_frame(b, l.type, NULL);
    for (k = 0; k < h->nstack && n < UV_PPROF__ARRAY_SIZE(locs); k++)
      locs[n++] = uv_pprof__builder_location(b, h->stack[k] - 1);
    uv_pprof__builder_sample(b, locs, n, &value, l.labels, 4);
  }
}

/* ---- ?debug=1 ----------------------------------------------------------- */

static void append_missing(const snap_t* s, uv_pprof__buf_t* out) {
  size_t i;

  for (i = 0; i < s->nmissing; i++)
    uv_pprof__buf_printf(out,
                         "# loop 0x%" PRIxPTR
                         " did not answer within 2 s: "
                         "its handles are missing\n",
                         s->missing[i]);
}

static int write_grouped(const gsnap_t* g, uv_pprof__buf_t* out) {
  const snap_t* s = g->s;
  const group_t* groups = g->groups;
  size_t ngroups = g->ngroups;
  uv_pprof__count_record_t* records = NULL;
  labels_t* labels = NULL;
  uintptr_t* pcs = NULL;
  size_t npcs = 0;
  size_t i;
  int rc;

  for (i = 0; i < ngroups; i++)
    npcs += 1 + s->handles[groups[i].first].nstack;
  records = calloc(ngroups != 0 ? ngroups : 1, sizeof(*records));
  labels = calloc(ngroups != 0 ? ngroups : 1, sizeof(*labels));
  pcs = calloc(npcs != 0 ? npcs : 1, sizeof(*pcs));
  if (records == NULL || labels == NULL || pcs == NULL) {
    rc = UV_ENOMEM;
  } else {
    uintptr_t* p = pcs;
    for (i = 0; i < ngroups; i++) {
      const handle_t* h = &s->handles[groups[i].first];
      /* As return addresses, the form of Go's "@" list: the callback's
       * entry + 1, so that its frame line (pc - 1) is the entry. */
      records[i].pcs = p;
      if (h->cb != 0)
        *p++ = h->cb + 1;
      if (h->nstack != 0)
        memcpy(p, h->stack, h->nstack * sizeof(*p));
      p += h->nstack;
      records[i].npcs = (size_t)(p - records[i].pcs);
      records[i].count = groups[i].count;
      set_labels(h, &labels[i]);
      records[i].labels = labels[i].labels;
      records[i].nlabels = 4;
    }
    rc = uv_pprof__text_count_profile("goroutine", records, ngroups, out);
    append_missing(s, out);
  }
  free(records);
  free(labels);
  free(pcs);
  return rc != 0 ? rc : out->oom ? UV_ENOMEM : 0;
}

/* ---- ?debug=2 ----------------------------------------------------------- */

/* Go's frame: "func(...)" then "\tfile:line +0xoff"; the offset is from the
 * function's entry to `pc` (a return address for callers, as Go prints).
 * Inlined frames have no offset. The innermost function, the one whose
 * source made the call, and its place are returned in func and where (for
 * "created by"). */
static void append_frame(uv_pprof__buf_t* out, uintptr_t pc, int leaf,
                         char* func, size_t func_size, char* where,
                         size_t where_size) {
  uv_pprof__symbol_t sym[UV_PPROF__MAX_INLINE];
  size_t n =
      uv_pprof__symbolize(leaf ? pc : pc - 1, sym, UV_PPROF__ARRAY_SIZE(sym));
  char line[4096 + 64];
  size_t i;

  if (n == 0 || sym[n - 1].name == NULL) {
    uv_pprof__buf_printf(out, "0x%" PRIxPTR "(...)\n\t?\n", pc);
    snprintf(func, func_size, "0x%" PRIxPTR, pc);
    snprintf(where, where_size, "?");
    return;
  }
  for (i = 0; i < n; i++) {
    const uv_pprof__symbol_t* f = &sym[i];
    const char* name =
        f->name != NULL ? uv_pprof__symbol_readable(f->name) : "?";
    if (f->file != NULL)
      snprintf(line, sizeof(line), "%s:%d", f->file, f->line);
    else
      snprintf(line, sizeof(line), "%s", f->module != NULL ? f->module : "?");
    if (i + 1 == n && !f->nameless)
      snprintf(line + strlen(line), sizeof(line) - strlen(line),
               " +0x%" PRIxPTR, pc - f->start);
    uv_pprof__buf_printf(out, "%s(...)\n\t%s\n", name, line);
    if (i == 0) {
      snprintf(func, func_size, "%s", name);
      snprintf(where, where_size, "%s", line);
    }
  }
}

/* The frames alike handles share: callback, creation stack, "created by";
 * rendered once per group. The type frame sits between the first two. */
typedef struct {
  size_t cb_off;
  size_t cb_len;
  size_t stack_off;
  size_t stack_len;
} rendered_t;

static void render_group(const handle_t* h, uv_pprof__buf_t* b, rendered_t* r) {
  char func[256];
  char where[4096 + 32];
  char created[256] = "";
  char created_at[sizeof(where)] = "";
  size_t k;

  r->cb_off = b->len;
  if (h->cb != 0)
    append_frame(b, h->cb, 1, func, sizeof(func), where, sizeof(where));
  r->cb_len = b->len - r->cb_off;
  r->stack_off = b->len;
  for (k = 0; k < h->nstack; k++) {
    append_frame(b, h->stack[k], 0, func, sizeof(func), where, sizeof(where));
    if (k == 0) {
      snprintf(created, sizeof(created), "%s", func);
      snprintf(created_at, sizeof(created_at), "%s", where);
    }
  }
  if (h->nstack != 0)
    uv_pprof__buf_printf(b, "created by %s\n\t%s\n", created, created_at);
  r->stack_len = b->len - r->stack_off;
}

static void append_sockaddr(uv_pprof__buf_t* out, const char* what,
                            const struct sockaddr_storage* ss) {
  char ip[64] = "?";

  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in* a = (const struct sockaddr_in*)ss;
    uv_ip4_name(a, ip, sizeof(ip));
    uv_pprof__buf_printf(out, ", %s %s:%d", what, ip, ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6* a = (const struct sockaddr_in6*)ss;
    uv_ip6_name(a, ip, sizeof(ip));
    uv_pprof__buf_printf(out, ", %s [%s]:%d", what, ip, ntohs(a->sin6_port));
  }
}

/* The handle's own facts, on the line under its type frame. Addresses are
 * read here, on the worker, from the fd the walk copied: the walk makes no
 * system call. A handle closed since then may show none. */
static void append_facts(uv_pprof__buf_t* out, const handle_t* h) {
  uv_pprof__buf_printf(out, "\t%s",
                       h->cb_field != NULL ? h->cb_field : "no callback");
  switch (h->type) {
    case UV_TIMER:
      uv_pprof__buf_printf(
          out, ", due in %" PRIu64 " ms, repeat %" PRIu64 " ms", h->a, h->b);
      break;
    case UV_SIGNAL: {
      const char* name = sigabbrev_np((int)h->a);
      uv_pprof__buf_printf(out, ", signal %d (SIG%s)", (int)h->a,
                           name != NULL ? name : "?");
      break;
    }
    case UV_PROCESS:
      uv_pprof__buf_printf(out, ", pid %d", (int)h->a);
      break;
    default:
      break;
  }
  if (h->fd >= 0)
    uv_pprof__buf_printf(out, ", fd %d", h->fd);
  if (h->fd >= 0 && (h->type == UV_TCP || h->type == UV_UDP)) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(h->fd, (struct sockaddr*)&ss, &len) == 0)
      append_sockaddr(out, "local", &ss);
    len = sizeof(ss);
    if (getpeername(h->fd, (struct sockaddr*)&ss, &len) == 0)
      append_sockaddr(out, "peer", &ss);
  }
  if (h->path != NULL)
    uv_pprof__buf_printf(out, ", %s %s",
                         h->type == UV_NAMED_PIPE ? "name" : "path", h->path);
  uv_pprof__buf_printf(out, ", loop 0x%" PRIxPTR "\n", h->loop);
}

static int write_dump(const gsnap_t* g, uv_pprof__buf_t* out) {
  const snap_t* s = g->s;
  uv_pprof__buf_t frames;
  rendered_t* rendered;
  size_t i;
  int rc = 0;

  uv_pprof__buf_init(&frames);
  rendered = malloc((g->ngroups != 0 ? g->ngroups : 1) * sizeof(*rendered));
  if (rendered == NULL)
    rc = UV_ENOMEM;
  for (i = 0; rc == 0 && i < g->ngroups; i++)
    render_group(&s->handles[g->groups[i].first], &frames, &rendered[i]);
  if (rc == 0 && frames.oom)
    rc = UV_ENOMEM;
  for (i = 0; rc == 0 && i < s->count; i++) {
    const handle_t* h = &s->handles[i];
    const rendered_t* r = &rendered[g->gid[i]];
    char type[24];
    int64_t minutes = h->age_ns / MINUTE_NS;
    type_name(h->type, type, sizeof(type));
    if (i > 0)
      uv_pprof__buf_append(out, "\n", 1);
    uv_pprof__buf_printf(out, "goroutine %" PRIu64 " [%s, %s", h->id, type,
                         state_text(h->state));
    if (minutes >= 1)
      uv_pprof__buf_printf(out, ", %" PRId64 " minutes", minutes);
    uv_pprof__buf_append(out, "]:\n", 3);
    uv_pprof__buf_append(out, frames.base + r->cb_off, r->cb_len);
    uv_pprof__buf_printf(out, "%s(0x%" PRIxPTR ")\n", type, h->addr);
    append_facts(out, h);
    uv_pprof__buf_append(out, frames.base + r->stack_off, r->stack_len);
  }
  if (rc == 0 && s->nmissing > 0) {
    uv_pprof__buf_append(out, "\n", 1);
    append_missing(s, out);
  }
  if (rc == 0 && out->oom)
    rc = UV_ENOMEM;
  uv_pprof__buf_free(&frames);
  free(rendered);
  return rc;
}

static int write_text(const void* p, int debug, uv_pprof__buf_t* out) {
  return debug >= 2 ? write_dump(p, out) : write_grouped(p, out);
}

const uv_pprof__profile_t uv_pprof__profile_goroutine = {
    .name = "goroutine",
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_samples,
    .text = write_text,
    .loop_snapshot = take,
    .complete = complete,
    .snapshot_count = count_handles,
};

const uv_pprof__route_t uv_pprof__route_goroutine = {
    .name = "goroutine",
    .path = "/debug/pprof/goroutine",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_goroutine,
    .description =
        "Live libuv handles of every registered loop, as Go "
        "shows goroutines: grouped by callback, type and "
        "creation stack",
    .flags = UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS,
};
