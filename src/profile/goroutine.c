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

/* The handles and, once complete, their groups (src/groups.c). */
typedef struct {
  snap_t* s;
  uv_pprof__hgroup_t* groups; /* in order of first appearance */
  size_t ngroups;
  size_t* gid; /* per handle: its group */
} gsnap_t;

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

  return rc != 0
             ? rc
             : uv_pprof__hgroups_make(g->s, &g->groups, &g->ngroups, &g->gid);
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
void uv_pprof__goroutine_emit_groups(uv_pprof__builder_t* b,
                                     const uv_pprof__hgroup_t* groups, size_t n,
                                     int sign) {
  size_t i;

  for (i = 0; i < n; i++) {
    const uv_pprof__hgroup_t* g = &groups[i];
    uint64_t locs[2 + 64];
    size_t nlocs = 0;
    size_t k;
    int64_t value = g->count * sign;
    uv_pprof__hgroup_labels_t l;
    uv_pprof__hgroup_labels(g, &l);
    if (g->cb != 0)
      locs[nlocs++] = uv_pprof__builder_location(b, g->cb);
    locs[nlocs++] = uv_pprof__builder_frame(b, l.type, NULL);
    for (k = 0; k < g->nstack && nlocs < UV_PPROF__ARRAY_SIZE(locs); k++)
      locs[nlocs++] = uv_pprof__builder_location(b, g->stack[k] - 1);
    uv_pprof__builder_sample(b, locs, nlocs, &value, l.labels, 4);
  }
}

static void emit_samples(const void* p, uv_pprof__builder_t* b, int sign) {
  const gsnap_t* g = p;

  if (sign > 0)
    add_missing_comments(g->s, b);
  uv_pprof__goroutine_emit_groups(b, g->groups, g->ngroups, sign);
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

int uv_pprof__goroutine_text_groups(const uv_pprof__hgroup_t* groups,
                                    size_t ngroups, uv_pprof__buf_t* out) {
  uv_pprof__count_record_t* records = NULL;
  uv_pprof__hgroup_labels_t* labels = NULL;
  uintptr_t* pcs = NULL;
  size_t npcs = 0;
  size_t i;
  int rc;

  for (i = 0; i < ngroups; i++)
    npcs += 1 + groups[i].nstack;
  records = calloc(ngroups != 0 ? ngroups : 1, sizeof(*records));
  labels = calloc(ngroups != 0 ? ngroups : 1, sizeof(*labels));
  pcs = calloc(npcs != 0 ? npcs : 1, sizeof(*pcs));
  if (records == NULL || labels == NULL || pcs == NULL) {
    rc = UV_ENOMEM;
  } else {
    uintptr_t* p = pcs;
    for (i = 0; i < ngroups; i++) {
      const uv_pprof__hgroup_t* g = &groups[i];
      /* As return addresses, the form of Go's "@" list: the callback's
       * entry + 1, so that its frame line (pc - 1) is the entry. */
      records[i].pcs = p;
      if (g->cb != 0)
        *p++ = g->cb + 1;
      if (g->nstack != 0)
        memcpy(p, g->stack, g->nstack * sizeof(*p));
      p += g->nstack;
      records[i].npcs = (size_t)(p - records[i].pcs);
      records[i].count = g->count;
      uv_pprof__hgroup_labels(g, &labels[i]);
      records[i].labels = labels[i].labels;
      records[i].nlabels = 4;
    }
    rc = uv_pprof__text_count_profile("goroutine", records, ngroups, out);
  }
  free(records);
  free(labels);
  free(pcs);
  return rc != 0 ? rc : out->oom ? UV_ENOMEM : 0;
}

static int write_grouped(const gsnap_t* g, uv_pprof__buf_t* out) {
  int rc = uv_pprof__goroutine_text_groups(g->groups, g->ngroups, out);

  if (rc == 0)
    append_missing(g->s, out);
  return rc != 0 ? rc : out->oom ? UV_ENOMEM : 0;
}

/* ---- ?base= ------------------------------------------------------------- */

static const uv_pprof__hgroup_t* later_groups(const void* snap,
                                              const uv_pprof__hsnap_t* at,
                                              size_t* n) {
  const gsnap_t* g = snap;

  *n = g != NULL ? g->ngroups : at->ngroups;
  return g != NULL ? g->groups : at->groups;
}

static int missing_loops(const void* snap, const uv_pprof__hsnap_t* at) {
  const gsnap_t* g = snap;

  return g != NULL ? g->s->nmissing != 0 : at->nmissing != 0;
}

/* The base's groups with -1, then the later ones with +1: the builder
 * merges a group present in both into its difference. */
static void emit_base(const void* snap, const uv_pprof__hsnap_t* at,
                      const uv_pprof__hsnap_t* base, uv_pprof__builder_t* b) {
  const uv_pprof__hgroup_t* groups;
  size_t n;

  if (snap != NULL)
    add_missing_comments(((const gsnap_t*)snap)->s, b);
  if ((at != NULL && !at->have_handles) || !base->have_handles ||
      base->nmissing != 0 || (at != NULL && at->nmissing != 0))
    uv_pprof__builder_comment(b,
                              "a loop did not answer the walk of one of the "
                              "two snapshots: its handles count as gone or "
                              "new");
  uv_pprof__goroutine_emit_groups(b, base->groups, base->ngroups, -1);
  groups = later_groups(snap, at, &n);
  uv_pprof__goroutine_emit_groups(b, groups, n, 1);
}

static int same_group(const uv_pprof__hgroup_t* a,
                      const uv_pprof__hgroup_t* b) {
  return a->cb == b->cb && a->loop == b->loop && a->type == b->type &&
         a->state == b->state && a->age == b->age && a->nstack == b->nstack &&
         (a->nstack == 0 ||
          memcmp(a->stack, b->stack, a->nstack * sizeof(*a->stack)) == 0);
}

/* Go's ?debug=1 layout for the groups whose count changed, with the
 * change as the count (negative for handles that went away). */
static int text_base(const void* snap, const uv_pprof__hsnap_t* at,
                     const uv_pprof__hsnap_t* base, uv_pprof__buf_t* out) {
  const uv_pprof__hgroup_t* later;
  uv_pprof__hgroup_t* diff;
  size_t nlater;
  size_t n = 0;
  size_t i;
  size_t j;
  int rc;

  later = later_groups(snap, at, &nlater);
  diff = malloc((nlater + base->ngroups + 1) * sizeof(*diff));
  if (diff == NULL)
    return UV_ENOMEM;
  /* Few groups (alike handles share one): pairs are compared directly. */
  for (i = 0; i < nlater; i++)
    diff[n++] = later[i];
  for (i = 0; i < base->ngroups; i++) {
    for (j = 0; j < nlater; j++)
      if (same_group(&diff[j], &base->groups[i]))
        break;
    if (j < nlater) {
      diff[j].count -= base->groups[i].count;
    } else {
      diff[n] = base->groups[i];
      diff[n++].count = -base->groups[i].count;
    }
  }
  for (i = 0, j = 0; i < n; i++)
    if (diff[i].count != 0)
      diff[j++] = diff[i];
  rc = uv_pprof__goroutine_text_groups(diff, j, out);
  free(diff);
  if (rc == 0 && missing_loops(snap, at))
    uv_pprof__buf_printf(out,
                         "# a loop did not answer the later walk: its "
                         "handles count as gone\n");
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

static void render_group(const uv_pprof__hgroup_t* h, uv_pprof__buf_t* b,
                         rendered_t* r) {
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
    render_group(&g->groups[i], &frames, &rendered[i]);
  if (rc == 0 && frames.oom)
    rc = UV_ENOMEM;
  for (i = 0; rc == 0 && i < s->count; i++) {
    const handle_t* h = &s->handles[i];
    const rendered_t* r = &rendered[g->gid[i]];
    if (i % 4096 == 0 && uv_pprof__stopping()) {
      rc = UV_ECANCELED; /* 100k handles: ~300 ms of text */
      break;
    }
    char type[24];
    int64_t minutes = h->age_ns / MINUTE_NS;
    uv_pprof__handle_type_name(h->type, type, sizeof(type));
    if (i > 0)
      uv_pprof__buf_append(out, "\n", 1);
    uv_pprof__buf_printf(out, "goroutine %" PRIu64 " [%s, %s", h->id, type,
                         uv_pprof__handle_state_text(h->state));
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
    .base_emit = emit_base,
    .base_text = text_base,
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
    .flags =
        UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS | UV_PPROF__ROUTE_BASE,
};
