/* The threadcreate profile: the process's threads, one sample each with a
 * `thread` (name) and a `tid` label. Go records the stack that created each
 * thread; nothing records that in a C process, so no sample has a real stack
 * (the text form prints them stackless, as Go prints its own). */
#include <stdio.h>
#include <stdlib.h>

#include "profile.h"

typedef struct {
  uv_pprof__thread_t* threads;
  size_t count;
} snap_t;

static int64_t count_threads(void) {
  uv_pprof__thread_t* threads;
  size_t n;

  if (uv_pprof__threads_read(&threads, &n) != 0)
    return 0;
  free(threads);
  return (int64_t)n;
}

static int take_snapshot(void** out) {
  snap_t* snap;
  int rc;

  snap = malloc(sizeof(*snap));
  if (snap == NULL)
    return UV_ENOMEM;
  rc = uv_pprof__threads_read(&snap->threads, &snap->count);
  if (rc != 0) {
    free(snap);
    return rc;
  }
  *out = snap;
  return 0;
}

static void free_snapshot(void* p) {
  snap_t* snap = p;

  free(snap->threads);
  free(snap);
}

static void set_labels(const uv_pprof__thread_t* t, char* tid, size_t size,
                       uv_pprof__label_t labels[2]) {
  snprintf(tid, size, "%d", t->tid);
  labels[0].key = "thread";
  labels[0].str = t->name;
  labels[0].num = 0;
  labels[0].num_unit = NULL;
  labels[1].key = "tid";
  labels[1].str = tid;
  labels[1].num = 0;
  labels[1].num_unit = NULL;
}

static void set_types(uv_pprof__builder_t* b) {
  uv_pprof__builder_period(b, "threadcreate", "count", 1);
  uv_pprof__builder_sample_type(b, "threadcreate", "count");
}

/* go tool pprof drops every sample without a location (Go's own stackless
 * threadcreate samples vanish the same way), and the creation stack is not
 * known, so each thread gets one named frame, "thread <name>": `-top` then
 * lists the threads by name, `-tags` by name and tid. */
static void emit_samples(const void* p, uv_pprof__builder_t* b, int sign) {
  const snap_t* snap = p;
  int64_t value = sign;
  size_t i;

  for (i = 0; i < snap->count; i++) {
    uv_pprof__label_t labels[2];
    char tid[16];
    char frame[32];
    uint64_t loc;
    snprintf(frame, sizeof(frame), "thread %s", snap->threads[i].name);
    loc = uv_pprof__builder_frame(b, frame, NULL);
    set_labels(&snap->threads[i], tid, sizeof(tid), labels);
    uv_pprof__builder_sample(b, &loc, 1, &value, labels, 2);
  }
}

static int write_text(const void* p, int debug, uv_pprof__buf_t* out) {
  const snap_t* snap = p;
  uv_pprof__count_record_t* records;
  uv_pprof__label_t* labels;
  char(*tids)[16];
  size_t n = snap->count != 0 ? snap->count : 1;
  size_t i;
  int rc;

  records = calloc(n, sizeof(*records));
  labels = calloc(2 * n, sizeof(*labels));
  tids = calloc(n, sizeof(*tids));
  if (records == NULL || labels == NULL || tids == NULL) {
    rc = UV_ENOMEM;
  } else {
    for (i = 0; i < snap->count; i++) {
      set_labels(&snap->threads[i], tids[i], sizeof(tids[i]), &labels[2 * i]);
      records[i].count = 1;
      records[i].labels = &labels[2 * i];
      records[i].nlabels = 2;
    }
    rc =
        uv_pprof__text_count_profile("threadcreate", records, snap->count, out);
  }
  free(records);
  free(labels);
  free(tids);
  return rc;
}

const uv_pprof__profile_t uv_pprof__profile_threadcreate = {
    .name = "threadcreate",
    .count = count_threads,
    .snapshot = take_snapshot,
    .snapshot_free = free_snapshot,
    .types = set_types,
    .emit = emit_samples,
    .text = write_text,
};

const uv_pprof__route_t uv_pprof__route_threadcreate = {
    .name = "threadcreate",
    .path = "/debug/pprof/threadcreate",
    .serve = uv_pprof__serve_profile,
    .profile = &uv_pprof__profile_threadcreate,
    .description =
        "The threads of the process, one sample each, labelled "
        "with the thread's name and id (creation stacks are not "
        "recorded)",
    .flags = UV_PPROF__ROUTE_DEBUG | UV_PPROF__ROUTE_SECONDS,
};
