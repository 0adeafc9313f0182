/* The live libuv handles of every registered loop, for the goroutine
 * profile. Each loop is walked on its own thread (its handle queue is not
 * thread-safe): the serving loop when a snapshot is asked, the others when
 * their wake-up (src/wakeup.c) asks them to; a walk runs in slices of at most
 * 0.25 ms, one per loop iteration, so that 100k handles never stall the loop.
 * A walk only copies small records; the worker then waits for every loop's
 * part, gives each handle its id and age (first-seen bookkeeping, or the
 * init time when libuv_pprof_track knows it) and its creation stack.
 * uv_pprof's own handles are skipped. Grouping and output are
 * src/profile/goroutine.c's job. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "loop.h"
#include "track/track.h"

/* How long the worker waits for a loop to come round to its walk, or for
 * a walk under way to run its next slice. */
#define LOOP_ANSWER_MS 2000

/* What the walk copies of one handle on the loop's thread. */
typedef struct {
  uintptr_t addr;
  uintptr_t cb;
  uint64_t a;
  uint64_t b;
  uint32_t path; /* offset + 1 into the part's strings, 0: none */
  int32_t fd;
  uint8_t type;
  uint8_t state;
  uint8_t field; /* uv_pprof__uvi_cb_field(field) */
} rec_t;

/* One loop's answer to one collection. */
typedef struct {
  uv_loop_t* loop;
  rec_t* recs;
  size_t n;
  uv_pprof__buf_t strings;
  uv_pprof_track_info_t* track; /* parallel to recs; NULL: no tracker */
  unsigned int active_reqs;     /* the loop's, when its walk ended */
  uint64_t idle_ns;             /* uv_metrics_idle_time() then */
  uint64_t read_at;             /* uv_hrtime() then */
  int state;                    /* PART_* */
} part_t;

enum { PART_PENDING, PART_DONE, PART_MISSING };

typedef struct collect_s {
  part_t* parts;
  size_t nparts;
  size_t pending; /* parts still PART_PENDING */
  int refs;       /* the snapshot + one per request queued on a loop */
  int cancelled;  /* the serving loop stopped: stop waiting */
  /* uv_hrtime() of the last slice any of its walks ran: a walk of a busy
   * loop with many handles may take long, but never stalls. */
  _Atomic uint64_t progress;
  struct collect_s* next; /* in-flight list */
} collect_t;

typedef struct request_s {
  collect_t* c;
  size_t part;
  struct request_s* next;
} request_t;

struct uv_pprof__handles_loop_s {
  uv_loop_t* loop;
  int remote;
  int sliced; /* libuv's layout is as expected: walks in slices */
  uv_pprof__wakeup_t wakeup; /* remote loops only: walk requests */
  request_t* requests;
  struct slicer_s* walking; /* the walk under way, or NULL */
  size_t hint;              /* records in its last walk */
  uv_pprof__handles_loop_t* next;
};

/* mu guards the loop list, their requests and every collection; cond
 * wakes the worker when a part arrives. */
static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t mu;
static uv_cond_t cond;
static uv_pprof__handles_loop_t* loops;
static collect_t* inflight;

static void init_once(void) {
  if (uv_mutex_init(&mu) != 0 || uv_cond_init(&cond) != 0)
    abort();
}

/* ---- the tracker -------------------------------------------------------- */

typedef struct {
  uv_pprof_track_enable_fn enable;
  uv_pprof_track_lookup_fn lookup;
  uv_pprof_track_stack_fn stack;
} tracker_t;

/* libuv_pprof_track, if it is in the process (preloaded, linked, or
 * statically with its symbols exported): looked up on every use, so that a
 * tracker loaded late is found too. */
static int find_tracker(tracker_t* t) {
  *(void**)&t->enable = dlsym(RTLD_DEFAULT, UV_PPROF_TRACK_ENABLE_SYM);
  *(void**)&t->lookup = dlsym(RTLD_DEFAULT, UV_PPROF_TRACK_LOOKUP_SYM);
  *(void**)&t->stack = dlsym(RTLD_DEFAULT, UV_PPROF_TRACK_STACK_SYM);
  return t->enable != NULL && t->lookup != NULL && t->stack != NULL;
}

void uv_pprof__handles_fork_prepare(void) {
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
}

void uv_pprof__handles_fork_parent(void) {
  uv_mutex_unlock(&mu);
}

void uv_pprof__handles_fork_child(void) {
  /* Anew: see uv_pprof__worker_fork_child. */
  uv_mutex_init(&mu);
  uv_cond_init(&cond);
}

int uv_pprof__handles_track(void) {
  tracker_t t;

  if (!find_tracker(&t))
    return UV_ENOENT;
  return t.enable();
}

/* ---- walking one loop (on its thread) ----------------------------------- */

typedef struct {
  part_t* part;
  size_t cap;
  size_t track_cap; /* of the part's track array */
  int check_own;
  int oom;
} walk_t;

static uint32_t keep_string(part_t* p, const char* s, size_t len) {
  size_t off = p->strings.len;

  uv_pprof__buf_append(&p->strings, s, len);
  uv_pprof__buf_append(&p->strings, "", 1);
  return p->strings.oom ? 0 : (uint32_t)off + 1;
}

static void on_walk(uv_handle_t* h, void* arg) {
  walk_t* w = arg;
  part_t* p = w->part;
  uv_pprof__uvi_facts_t f;
  char path[4096];
  rec_t* r;

  if (w->check_own && uv_pprof__own_has(h))
    return;
  if (p->n == w->cap) {
    size_t cap = w->cap * 2;
    rec_t* grown = realloc(p->recs, cap * sizeof(*grown));
    if (grown == NULL) {
      w->oom = 1;
      return;
    }
    p->recs = grown;
    w->cap = cap;
  }
  uv_pprof__uvi_facts(h, &f, path, sizeof(path));
  r = &p->recs[p->n++];
  memset(r, 0, sizeof(*r));
  r->addr = (uintptr_t)h;
  r->type = (uint8_t)h->type;
  r->state = (uint8_t)((uv_is_active(h) ? UV_PPROF__HANDLE_ACTIVE : 0) |
                       (uv_has_ref(h) ? UV_PPROF__HANDLE_REF : 0) |
                       (uv_is_closing(h) ? UV_PPROF__HANDLE_CLOSING : 0));
  r->cb = f.cb;
  r->field = (uint8_t)f.field;
  r->a = f.a;
  r->b = f.b;
  r->fd = f.fd;
  if (f.path != NULL)
    r->path = keep_string(p, f.path, f.path_len);
}

static void part_clear(part_t* p) {
  free(p->recs);
  free(p->track);
  uv_pprof__buf_free(&p->strings);
  p->recs = NULL;
  p->track = NULL;
  p->n = 0;
}

/* ---- collections -------------------------------------------------------- */

static void collect_unref(collect_t* c) {
  size_t i;

  if (--c->refs > 0)
    return;
  for (i = 0; i < c->nparts; i++)
    part_clear(&c->parts[i]);
  free(c->parts);
  free(c);
}

/* A loop's walk (or its absence) arrives. mu held. */
static void deliver(collect_t* c, size_t index, part_t* result) {
  part_t* p = &c->parts[index];

  if (p->state == PART_PENDING) {
    if (result != NULL) {
      p->recs = result->recs;
      p->n = result->n;
      p->strings = result->strings;
      p->track = result->track;
      p->active_reqs = result->active_reqs;
      p->idle_ns = result->idle_ns;
      p->read_at = result->read_at;
      p->state = PART_DONE;
      memset(result, 0, sizeof(*result));
    } else {
      p->state = PART_MISSING;
    }
    c->pending--;
    uv_cond_broadcast(&cond);
  }
  if (result != NULL)
    part_clear(result);
  collect_unref(c);
}

/* ---- walking in slices --------------------------------------------------- */

/* uv_walk visits a loop's handles in one go, which for 100k handles stalls
 * the loop for milliseconds; a walk instead visits the handle queue in
 * slices of at most SLICE_NS, one per loop iteration, keeping its place
 * with a marker that libuv itself keeps valid: an idle handle of ours,
 * moved along the queue (uv_pprof__uvi_walk_slice). Handles closed between
 * slices leave the queue; new ones join its tail and are seen if the walk
 * has not ended. A loop whose libuv layout is not the expected one is
 * walked with uv_walk in one go. 0.25 ms: the iteration around a slice
 * (polling, timers) costs the loop 0.3 ms more on a busy VM, and the whole
 * iteration must stay under 1 ms. */
#define SLICE_NS 250000

atomic_size_t uv_pprof__handles_slice_cap;
atomic_size_t uv_pprof__handles_slices;

typedef struct slicer_s {
  uv_idle_t idle; /* the marker, and what runs the slices */
  uv_pprof__handles_loop_t* l;
  request_t* req;
  part_t part;
  walk_t w;
  tracker_t t;
  int tracking;
  size_t looked_up; /* records already asked of the tracker */
  /* the slice under way */
  uint64_t deadline;
  size_t cap;
  size_t seen;
} slicer_t;

static void walk_next(uv_pprof__handles_loop_t* l);

static void on_slicer_close(uv_handle_t* handle) {
  free(handle->data);
}

/* The creation records of recs[looked_up..n), asked in one go so that
 * inits on other threads wait little for the tracker's lock. */
static void look_up(slicer_t* s) {
  part_t* p = &s->part;

  while (s->tracking && s->looked_up < p->n) {
    uintptr_t addrs[256];
    size_t k;
    size_t n = p->n - s->looked_up < 256 ? p->n - s->looked_up : 256;
    for (k = 0; k < n; k++)
      addrs[k] = p->recs[s->looked_up + k].addr;
    s->t.lookup(addrs, n, p->track + s->looked_up);
    s->looked_up += n;
  }
}

/* The walk is over (err 0) or failed: the part goes to its request, the
 * marker closes, the loop's next request (if any) starts. */
static void walk_end(slicer_t* s, int err) {
  uv_pprof__handles_loop_t* l = s->l;

  l->walking = NULL;
  if (err == 0)
    l->hint = s->part.n;
  s->part.active_reqs = uv_pprof__uvi_active_reqs(l->loop);
  s->part.idle_ns = uv_metrics_idle_time(l->loop);
  s->part.read_at = uv_hrtime();
  uv_mutex_lock(&mu);
  deliver(s->req->c, s->req->part, err == 0 ? &s->part : NULL);
  uv_mutex_unlock(&mu);
  part_clear(&s->part);
  free(s->req);
  s->req = NULL;
  if (l->sliced) {
    uv_idle_stop(&s->idle);
    uv_close((uv_handle_t*)&s->idle, on_slicer_close);
  } else {
    free(s);
  }
  walk_next(l);
}

/* Keeps the records' parallel tracker array as large as recs. */
static int track_grow(slicer_t* s) {
  uv_pprof_track_info_t* grown;

  if (!s->tracking || s->w.cap == s->w.track_cap)
    return 0;
  grown = realloc(s->part.track, s->w.cap * sizeof(*grown));
  if (grown == NULL)
    return UV_ENOMEM;
  s->part.track = grown;
  s->w.track_cap = s->w.cap;
  return 0;
}

/* A slice's visit of one handle: copies it, and stops the slice at its
 * cap or deadline. */
static int on_visit(uv_handle_t* h, void* arg) {
  slicer_t* s = arg;

  on_walk(h, &s->w);
  if (s->w.oom)
    return 1;
  return ++s->seen == s->cap ||
         (s->seen % 64 == 0 && uv_hrtime() >= s->deadline);
}

/* One slice, on the loop's thread: from the marker on, until the queue's
 * end or SLICE_NS. */
static void on_slice(uv_idle_t* idle) {
  slicer_t* s = idle->data;
  size_t owned;
  int ended;
  int err;

  s->deadline = uv_hrtime() + SLICE_NS;
  s->cap = atomic_load(&uv_pprof__handles_slice_cap);
  s->seen = 0;
  /* The own-set only changes on the serving loop's thread, which is this
   * one when it has entries: holding its lock keeps a slice consistent. */
  owned = uv_pprof__own_lock(); /* taken whatever the loop, as released */
  s->w.check_own = !s->l->remote && owned > 0;
  if (!s->w.check_own)
    uv_pprof__own_unlock();
  ended = uv_pprof__uvi_walk_slice((uv_handle_t*)&s->idle, on_visit, s);
  atomic_fetch_add(&uv_pprof__handles_slices, 1);
  atomic_store(&s->req->c->progress, uv_hrtime());
  if (s->w.check_own)
    uv_pprof__own_unlock();
  err = s->w.oom || s->part.strings.oom ? UV_ENOMEM : track_grow(s);
  if (err == 0)
    look_up(s);
  if (err != 0 || ended)
    walk_end(s, err);
}

/* Starts the walk for l's next request, unless one is under way. On the
 * loop's thread. */
/* The whole walk at once, with uv_walk: for a loop whose libuv layout is not
 * the one the slices rely on. */
static void walk_whole(slicer_t* s) {
  size_t owned;
  int err;

  owned = uv_pprof__own_lock(); /* taken whatever the loop, as released */
  s->w.check_own = !s->l->remote && owned > 0;
  if (!s->w.check_own)
    uv_pprof__own_unlock();
  uv_walk(s->l->loop, on_walk, &s->w);
  if (s->w.check_own)
    uv_pprof__own_unlock();
  atomic_store(&s->req->c->progress, uv_hrtime());
  err = s->w.oom || s->part.strings.oom ? UV_ENOMEM : track_grow(s);
  if (err == 0)
    look_up(s);
  walk_end(s, err);
}

static void walk_next(uv_pprof__handles_loop_t* l) {
  slicer_t* s;
  request_t* r;

  if (l->walking != NULL)
    return;
  uv_mutex_lock(&mu);
  r = l->requests;
  if (r != NULL)
    l->requests = r->next;
  uv_mutex_unlock(&mu);
  if (r == NULL)
    return;
  s = calloc(1, sizeof(*s));
  if (s != NULL) {
    s->w.cap = l->hint + l->hint / 4 + 64;
    s->part.recs = malloc(s->w.cap * sizeof(*s->part.recs));
  }
  if (s == NULL || s->part.recs == NULL ||
      (l->sliced && uv_idle_init(l->loop, &s->idle) != 0)) {
    if (s != NULL)
      free(s->part.recs);
    free(s);
    uv_mutex_lock(&mu);
    deliver(r->c, r->part, NULL);
    uv_mutex_unlock(&mu);
    free(r);
    walk_next(l);
    return;
  }
  s->l = l;
  s->req = r;
  s->part.loop = l->loop;
  uv_pprof__buf_init(&s->part.strings);
  s->w.part = &s->part;
  s->tracking = find_tracker(&s->t);
  l->walking = s;
  if (!l->sliced) {
    walk_whole(s);
    return;
  }
  s->idle.data = s;
  uv_pprof__uvi_set_internal((uv_handle_t*)&s->idle);
  uv_unref((uv_handle_t*)&s->idle);
  uv_pprof__uvi_walk_begin((uv_handle_t*)&s->idle);
  /* An idle handle makes each iteration poll without waiting, so the
   * slices follow one another as fast as the host's own work allows. The
   * first one waits for the next iteration too: this one may already have
   * done the host's work and the request's. */
  uv_idle_start(&s->idle, on_slice);
}

static void on_walk_request(uv_pprof__wakeup_t* w) {
  walk_next(w->data);
}

int uv_pprof__handles_attach(uv_loop_t* loop, int remote,
                             uv_pprof__handles_loop_t** out) {
  uv_pprof__handles_loop_t* l = calloc(1, sizeof(*l));
  int err;

  if (l == NULL)
    return UV_ENOMEM;
  uv_once(&once, init_once);
  l->loop = loop;
  l->remote = remote;
  l->sliced = uv_pprof__uvi_layout_ok(loop);
  if (remote) {
    err = uv_pprof__wakeup_init(loop, &l->wakeup, on_walk_request);
    if (err != 0) {
      free(l);
      return err;
    }
    l->wakeup.data = l;
  }
  uv_mutex_lock(&mu);
  l->next = loops;
  loops = l;
  uv_mutex_unlock(&mu);
  *out = l;
  return 0;
}

static void on_wakeup_close(uv_handle_t* handle) {
  free(((uv_pprof__wakeup_t*)handle->data)->data);
}

void uv_pprof__handles_detach(uv_pprof__handles_loop_t* l) {
  uv_pprof__handles_loop_t** link;
  request_t* list;
  collect_t* c;

  uv_mutex_lock(&mu);
  for (link = &loops; *link != l; link = &(*link)->next)
    ;
  *link = l->next;
  list = l->requests;
  l->requests = NULL;
  if (l->walking != NULL) {
    slicer_t* w = l->walking;
    deliver(w->req->c, w->req->part, NULL);
    free(w->req);
    part_clear(&w->part);
    uv_idle_stop(&w->idle);
    uv_close((uv_handle_t*)&w->idle, on_slicer_close);
    l->walking = NULL;
  }
  while (list != NULL) {
    request_t* r = list;
    list = r->next;
    deliver(r->c, r->part, NULL);
    free(r);
  }
  /* Without its serving loop no answer can be sent: stop every wait. */
  if (!l->remote) {
    for (c = inflight; c != NULL; c = c->next)
      c->cancelled = 1;
    uv_cond_broadcast(&cond);
  }
  uv_mutex_unlock(&mu);
  if (l->remote)
    uv_pprof__wakeup_close(&l->wakeup, on_wakeup_close);
  else
    free(l);
}

int uv_pprof__handles_collect(uv_loop_t* serving,
                              uv_pprof__handles_snap_t** out) {
  uv_pprof__handles_snap_t* snap = calloc(1, sizeof(*snap));
  collect_t* c = calloc(1, sizeof(*c));
  uv_pprof__handles_loop_t* here = NULL;
  uv_pprof__handles_loop_t* l;
  size_t n = 0;

  if (snap == NULL || c == NULL) {
    free(snap);
    free(c);
    return UV_ENOMEM;
  }
  uv_once(&once, init_once);
  uv_mutex_lock(&mu);
  for (l = loops; l != NULL; l = l->next)
    n++;
  c->parts = calloc(n != 0 ? n : 1, sizeof(*c->parts));
  if (c->parts == NULL) {
    uv_mutex_unlock(&mu);
    free(snap);
    free(c);
    return UV_ENOMEM;
  }
  c->refs = 1;
  for (l = loops; l != NULL; l = l->next, c->nparts++) {
    part_t* p = &c->parts[c->nparts];
    request_t* r;
    p->loop = l->loop;
    uv_pprof__buf_init(&p->strings);
    p->state = PART_PENDING;
    c->pending++;
    r = calloc(1, sizeof(*r));
    if (r == NULL || (l->loop != serving && !l->remote)) {
      free(r);
      p->state = PART_MISSING;
      c->pending--;
      continue;
    }
    r->c = c;
    r->part = c->nparts;
    r->next = l->requests;
    l->requests = r;
    c->refs++;
    if (l->loop == serving)
      here = l;
    else
      uv_pprof__wakeup_send(&l->wakeup);
  }
  c->next = inflight;
  inflight = c;
  uv_mutex_unlock(&mu);
  /* The serving loop is this thread's: its walk starts now. */
  if (here != NULL)
    walk_next(here);
  snap->collect = c;
  *out = snap;
  return 0;
}

/* ---- ids and ages (worker) ---------------------------------------------- */

/* What tells one handle from a later one at the same address: the init's
 * sequence number when the tracker saw it, else the type and a fact that
 * changes with a new handle (fd, pid, callback). */
typedef struct {
  uintptr_t loop;
  uintptr_t addr;
  uint64_t ident;
  uint64_t seq;
  uint64_t first_ns;
  uint64_t id;
  uint8_t type;
  uint8_t used;
} age_t;

typedef struct {
  age_t* slots;
  size_t mask;
  size_t count;
} ages_t;

/* Only the worker thread touches these. */
static ages_t ages;
static uint64_t next_id;

static uint64_t age_hash(const age_t* k) {
  return uv_pprof__hash64(
      uv_pprof__hash64(uv_pprof__hash64(k->addr ^ k->loop) ^ k->ident) ^
      (k->seq + k->type));
}

static int age_equal(const age_t* a, const age_t* b) {
  return a->addr == b->addr && a->loop == b->loop && a->ident == b->ident &&
         a->seq == b->seq && a->type == b->type;
}

static age_t* age_slot(ages_t* t, const age_t* k) {
  size_t i;

  for (i = (size_t)age_hash(k) & t->mask; t->slots[i].used;
       i = (i + 1) & t->mask)
    if (age_equal(&t->slots[i], k))
      break;
  return &t->slots[i];
}

static const age_t* age_find(const ages_t* t, const age_t* k) {
  const age_t* s;

  if (t->slots == NULL)
    return NULL;
  s = age_slot((ages_t*)t, k);
  return s->used ? s : NULL;
}

static int ages_alloc(ages_t* t, size_t count) {
  size_t n = 64;

  while (n < count * 2)
    n *= 2;
  t->slots = calloc(n, sizeof(*t->slots));
  t->mask = n - 1;
  t->count = 0;
  return t->slots != NULL ? 0 : UV_ENOMEM;
}

static uint64_t ident_of(const rec_t* r) {
  if (r->fd >= 0)
    return (uint64_t)r->fd;
  if (r->type == UV_PROCESS)
    return r->a;
  return r->cb;
}

static int is_missing(const collect_t* c, uintptr_t loop) {
  size_t i;

  for (i = 0; i < c->nparts; i++)
    if ((uintptr_t)c->parts[i].loop == loop)
      return c->parts[i].state != PART_DONE;
  return 0;
}

/* Gives every handle its id and age and rebuilds the table from this walk:
 * handles not seen any more are forgotten, except those of loops that did
 * not answer. */
static int assign_ages(uv_pprof__handles_snap_t* snap, uint64_t now) {
  collect_t* c = snap->collect;
  ages_t fresh;
  size_t i;
  size_t k = 0;
  size_t old_missing = 0;

  for (i = 0; ages.slots != NULL && i <= ages.mask; i++)
    old_missing += ages.slots[i].used && is_missing(c, ages.slots[i].loop);
  if (ages_alloc(&fresh, snap->count + old_missing) != 0)
    return UV_ENOMEM;
  for (i = 0; i < c->nparts; i++) {
    const part_t* p = &c->parts[i];
    size_t j;
    for (j = 0; j < p->n; j++, k++) {
      const rec_t* r = &p->recs[j];
      uv_pprof__handle_t* h = &snap->handles[k];
      const age_t* old;
      age_t key;
      age_t* slot;
      memset(&key, 0, sizeof(key));
      key.loop = (uintptr_t)p->loop;
      key.addr = r->addr;
      key.type = r->type;
      key.ident = ident_of(r);
      key.seq = p->track != NULL && p->track[j].known ? p->track[j].seq : 0;
      old = age_find(&ages, &key);
      slot = age_slot(&fresh, &key);
      *slot = key;
      slot->used = 1;
      slot->first_ns = old != NULL ? old->first_ns : now;
      slot->id = old != NULL ? old->id : ++next_id;
      fresh.count++;
      h->id = slot->id;
      h->age_ns = (int64_t)(now - slot->first_ns);
      if (key.seq != 0 && p->track[j].init_ns <= now)
        h->age_ns = (int64_t)(now - p->track[j].init_ns);
    }
  }
  for (i = 0; ages.slots != NULL && i <= ages.mask; i++)
    if (ages.slots[i].used && is_missing(c, ages.slots[i].loop)) {
      *age_slot(&fresh, &ages.slots[i]) = ages.slots[i];
      fresh.count++;
    }
  free(ages.slots);
  ages = fresh;
  return 0;
}

/* ---- completing a snapshot (worker) ------------------------------------- */

typedef struct {
  uint32_t id;
  uint32_t off; /* into snap->pcs */
  uint32_t n;
} stack_ref_t;

/* Copies the creation stacks the handles refer to, each once. */
static int fetch_stacks(uv_pprof__handles_snap_t* snap) {
  collect_t* c = snap->collect;
  tracker_t t;
  stack_ref_t* refs;
  size_t mask = 63;
  size_t i;
  size_t k = 0;
  uv_pprof__buf_t pcs;
  int err = 0;

  if (!find_tracker(&t))
    return 0;
  snap->tracker = 1;
  while (mask + 1 < snap->count * 2)
    mask = mask * 2 + 1;
  refs = calloc(mask + 1, sizeof(*refs));
  if (refs == NULL)
    return UV_ENOMEM;
  uv_pprof__buf_init(&pcs);
  for (i = 0; i < c->nparts && err == 0; i++) {
    const part_t* p = &c->parts[i];
    size_t j;
    for (j = 0; j < p->n; j++, k++) {
      uint32_t id = p->track != NULL ? p->track[j].stack : 0;
      size_t s;
      if (id == 0)
        continue;
      for (s = (size_t)uv_pprof__hash64(id) & mask;
           refs[s].id != 0 && refs[s].id != id; s = (s + 1) & mask)
        ;
      if (refs[s].id == 0) {
        uintptr_t frames[UV_PPROF_TRACK_MAX_DEPTH];
        size_t n = t.stack(id, frames, UV_PPROF_TRACK_MAX_DEPTH);
        if (n > UV_PPROF_TRACK_MAX_DEPTH)
          n = UV_PPROF_TRACK_MAX_DEPTH;
        refs[s].id = id;
        refs[s].off = (uint32_t)(pcs.len / sizeof(uintptr_t));
        refs[s].n = (uint32_t)n;
        if (uv_pprof__buf_append(&pcs, frames, n * sizeof(*frames)) != 0)
          err = UV_ENOMEM;
      }
      /* Offsets for now; pointers once the pool stops moving. */
      snap->handles[k].stack = (const uintptr_t*)(uintptr_t)refs[s].off;
      snap->handles[k].nstack = refs[s].n;
    }
  }
  free(refs);
  if (err != 0) {
    uv_pprof__buf_free(&pcs);
    return err;
  }
  for (i = 0; i < snap->count; i++)
    if (snap->handles[i].nstack != 0)
      snap->handles[i].stack =
          (const uintptr_t*)pcs.base + (uintptr_t)snap->handles[i].stack;
  snap->pcs = (uintptr_t*)pcs.base;
  return 0;
}

int uv_pprof__handles_complete(uv_pprof__handles_snap_t* snap) {
  collect_t* c = snap->collect;
  uint64_t start = uv_hrtime();
  uint64_t limit = (uint64_t)LOOP_ANSWER_MS * 1000000;
  size_t i;
  size_t k = 0;
  size_t m = 0;
  int err;

  uv_mutex_lock(&mu);
  while (c->pending > 0 && !c->cancelled) {
    uint64_t last = atomic_load(&c->progress);
    uint64_t since = last > start ? last : start;
    uint64_t waited = uv_hrtime() - since;
    if (waited >= limit)
      break;
    uv_cond_timedwait(&cond, &mu, limit - waited);
  }
  /* A loop that answers later finds its part no longer pending. */
  for (i = 0; i < c->nparts; i++) {
    if (c->parts[i].state == PART_PENDING) {
      c->parts[i].state = PART_MISSING;
      c->pending--;
    }
  }
  uv_mutex_unlock(&mu);
  if (c->cancelled)
    return UV_ECANCELED;

  for (i = 0; i < c->nparts; i++) {
    snap->count += c->parts[i].n;
    m += c->parts[i].state != PART_DONE;
  }
  snap->handles =
      calloc(snap->count != 0 ? snap->count : 1, sizeof(*snap->handles));
  snap->missing = calloc(m != 0 ? m : 1, sizeof(*snap->missing));
  snap->answered =
      calloc(c->nparts != 0 ? c->nparts : 1, sizeof(*snap->answered));
  if (snap->handles == NULL || snap->missing == NULL || snap->answered == NULL)
    return UV_ENOMEM;
  for (i = 0; i < c->nparts; i++) {
    const part_t* p = &c->parts[i];
    size_t j;
    if (p->state != PART_DONE) {
      snap->missing[snap->nmissing++] = (uintptr_t)p->loop;
    } else {
      snap->answered[snap->nanswered].loop = (uintptr_t)p->loop;
      snap->answered[snap->nanswered].idle_ns = p->idle_ns;
      snap->answered[snap->nanswered].read_at = p->read_at;
      snap->answered[snap->nanswered++].active_reqs = p->active_reqs;
    }
    for (j = 0; j < p->n; j++, k++) {
      const rec_t* r = &p->recs[j];
      uv_pprof__handle_t* h = &snap->handles[k];
      h->addr = r->addr;
      h->loop = (uintptr_t)p->loop;
      h->cb = r->cb;
      h->cb_field = uv_pprof__uvi_cb_field(r->field);
      h->type = r->type;
      h->state = r->state;
      h->fd = r->fd;
      h->a = r->a;
      h->b = r->b;
      h->path = r->path != 0 ? p->strings.base + r->path - 1 : NULL;
    }
  }
  err = assign_ages(snap, uv_hrtime());
  if (err == 0)
    err = fetch_stacks(snap);
  return err;
}

void uv_pprof__handles_free(uv_pprof__handles_snap_t* snap) {
  collect_t* c = snap->collect;
  collect_t** link;

  if (c != NULL) {
    uv_mutex_lock(&mu);
    for (link = &inflight; *link != NULL; link = &(*link)->next) {
      if (*link == c) {
        *link = c->next;
        break;
      }
    }
    collect_unref(c);
    uv_mutex_unlock(&mu);
  }
  free(snap->handles);
  free(snap->missing);
  free(snap->answered);
  free(snap->pcs);
  free(snap);
}
