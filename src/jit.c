/* Names for code that no loaded object holds: JIT code. Runtimes that keep
 * Linux perf's convention (node --perf-basic-prof, LuaJIT) append lines
 * "START SIZE name" (hex) to /tmp/perf-<pid>.map as they compile. The map
 * is read from where the last read stopped, bounded (bytes per read, lines
 * kept, name length), and later lines win over earlier ones for the same
 * addresses: code is freed and its memory reused. A line overlapping a
 * loaded object is dropped, so an object's own symbols are never
 * overridden. Executable memory that no file backs and no line names is
 * "[jit]". Worker thread only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "symbols.h"

#define MAX_ENTRIES 65536    /* lines of one read; pieces kept: twice that */
#define MAX_READ (4u << 20)  /* bytes read from the map at one look */
#define MAX_LINE 4096        /* a longer line is skipped */
#define MAX_NAME 200         /* bytes of a name kept */
#define MAX_SIZE (16u << 20) /* a longer range is a lie */
#define CHUNK 65536
/* Between two looks at the map, and between two reads of /proc/self/maps
 * for an address nothing names: a profile's addresses are symbolized in a
 * burst, and a look costs a few system calls. */
#define RECHECK_NS 50000000

/* A range of the map, named by its latest line. */
typedef struct {
  uintptr_t start;
  uintptr_t end;
  uintptr_t entry;  /* the line's start (a piece of it may start later) */
  uint64_t seq;     /* the line's order in the map: later ones win */
  const char* name; /* in the names of the map or of the batch */
  size_t name_off;  /* where the name lands in the merged names */
} item_t;

static struct {
  pid_t pid;
  /* The map read so far, kept open: while it is, no other file can take
   * its inode number, so a map replaced by another is told apart. */
  int has_fd; /* all zeros (the state before any lookup) means none */
  int fd;
  dev_t dev;
  ino_t ino;
  off_t offset; /* the first byte not read yet: a line's start */
  uint64_t seq;
  item_t* segs; /* disjoint, by start; names in `names` */
  size_t nsegs;
  uv_pprof__buf_t names;
  int map_looked;
  uint64_t map_time;
  uv_pprof__range_t* anon; /* executable memory no file backs */
  size_t nanon;
  int anon_read;
  uint64_t anon_time;
} jit;

/* Lines read at one look, not merged yet. */
typedef struct {
  uv_pprof__buf_t items; /* item_t, name_off into names */
  uv_pprof__buf_t names;
} batch_t;

/* ---- one line ------------------------------------------------------------ */

/* A hex number with an optional 0x, then at least one blank. Returns the
 * bytes taken (blanks included), 0 when that is not what p holds. */
static size_t take_hex(const char* p, size_t len, uintptr_t* out) {
  size_t i = 0;
  size_t digits = 0;
  uintptr_t v = 0;

  if (len >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
    i = 2;
  for (; i < len; i++, digits++) {
    int d;
    char c = p[i];
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      break;
    if (v > (UINTPTR_MAX >> 4))
      return 0;
    v = v << 4 | (uintptr_t)d;
  }
  if (digits == 0 || i == len || (p[i] != ' ' && p[i] != '\t'))
    return 0;
  while (i < len && (p[i] == ' ' || p[i] == '\t'))
    i++;
  *out = v;
  return i;
}

static int overlaps(uintptr_t start, uintptr_t end,
                    const uv_pprof__range_t* objects, size_t n) {
  size_t lo = 0;
  size_t hi = n;

  /* Objects are disjoint: only the last one starting below end can reach
   * past start. */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (objects[mid].start < end)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && objects[lo - 1].end > start;
}

/* Copies name[0..len) as the name of a line: at most MAX_NAME bytes, not
 * cutting a UTF-8 sequence, control characters (a tab would break the
 * text views' columns) as '?'. */
static void add_name(uv_pprof__buf_t* names, const char* name, size_t len) {
  size_t i;

  if (len > MAX_NAME) {
    len = MAX_NAME;
    while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
      len--;
  }
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    char shown = c < 0x20 || c == 0x7f ? '?' : (char)c;
    uv_pprof__buf_append(names, &shown, 1);
  }
  uv_pprof__buf_append(names, "", 1);
}

/* Parses "START SIZE name" and adds it to the batch, unless it is
 * malformed, empty, absurdly large or over a loaded object. */
static void add_line(batch_t* b, const char* p, size_t len,
                     const uv_pprof__range_t* objects, size_t n) {
  uintptr_t start;
  uintptr_t size;
  size_t used;
  item_t it;

  while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' '))
    len--;
  if ((used = take_hex(p, len, &start)) == 0)
    return;
  p += used;
  len -= used;
  if ((used = take_hex(p, len, &size)) == 0 || used == len)
    return;
  p += used;
  len -= used;
  if (start == 0 || size == 0 || size > MAX_SIZE || start + size < start ||
      overlaps(start, start + size, objects, n))
    return;
  memset(&it, 0, sizeof(it));
  it.start = start;
  it.end = start + size;
  it.entry = start;
  it.seq = ++jit.seq;
  it.name_off = b->names.len;
  add_name(&b->names, p, len);
  uv_pprof__buf_append(&b->items, &it, sizeof(it));
}

/* ---- merging: later lines win -------------------------------------------- */

static int by_start(const void* a, const void* b) {
  const item_t* x = a;
  const item_t* y = b;

  return (x->start > y->start) - (x->start < y->start);
}

static int by_seq_down(const void* a, const void* b) {
  const item_t* x = a;
  const item_t* y = b;

  return (x->seq < y->seq) - (x->seq > y->seq);
}

static int by_value(const void* a, const void* b) {
  uintptr_t x = *(const uintptr_t*)a;
  uintptr_t y = *(const uintptr_t*)b;

  return (x > y) - (x < y);
}

/* A max-heap of item indexes by seq. */
static void heap_push(size_t* heap, size_t* n, const item_t* items, size_t i) {
  size_t at = (*n)++;

  while (at > 0 && items[heap[(at - 1) / 2]].seq < items[i].seq) {
    heap[at] = heap[(at - 1) / 2];
    at = (at - 1) / 2;
  }
  heap[at] = i;
}

static void heap_pop(size_t* heap, size_t* n, const item_t* items) {
  size_t last = heap[--(*n)];
  size_t at = 0;

  for (;;) {
    size_t child = 2 * at + 1;
    if (child >= *n)
      break;
    if (child + 1 < *n && items[heap[child + 1]].seq > items[heap[child]].seq)
      child++;
    if (items[heap[child]].seq <= items[last].seq)
      break;
    heap[at] = heap[child];
    at = child;
  }
  if (*n > 0)
    heap[at] = last;
}

/* items[0..n), sorted by start, made disjoint in place: each elementary
 * range goes to the latest line covering it (a line may become several
 * pieces). Lines from one runtime rarely overlap, so that case is checked
 * first. Returns the new count, or 0 when out of memory. */
static size_t paint(item_t** items, size_t n) {
  uintptr_t* bounds;
  size_t* heap;
  item_t* in = *items;
  item_t* out;
  size_t nb = 0;
  size_t nheap = 0;
  size_t nout = 0;
  size_t last = SIZE_MAX;
  size_t i;
  size_t k;

  for (i = 1; i < n && in[i - 1].end <= in[i].start; i++)
    ;
  if (i >= n)
    return n;
  bounds = malloc(2 * n * sizeof(*bounds));
  heap = malloc(n * sizeof(*heap));
  out = malloc(2 * n * sizeof(*out));
  if (bounds == NULL || heap == NULL || out == NULL) {
    free(bounds);
    free(heap);
    free(out);
    return 0;
  }
  for (i = 0; i < n; i++) {
    bounds[nb++] = in[i].start;
    bounds[nb++] = in[i].end;
  }
  qsort(bounds, nb, sizeof(*bounds), by_value);
  for (i = 0, k = 0; k < nb; k++)
    if (i == 0 || bounds[i - 1] != bounds[k])
      bounds[i++] = bounds[k];
  nb = i;
  for (i = 0, k = 0; k + 1 < nb; k++) {
    size_t w;
    while (i < n && in[i].start == bounds[k])
      heap_push(heap, &nheap, in, i++);
    while (nheap > 0 && in[heap[0]].end <= bounds[k])
      heap_pop(heap, &nheap, in);
    if (nheap == 0)
      continue;
    w = heap[0];
    if (w == last && out[nout - 1].end == bounds[k]) {
      out[nout - 1].end = bounds[k + 1];
      continue;
    }
    out[nout] = in[w];
    out[nout].start = bounds[k];
    out[nout].end = bounds[k + 1];
    nout++;
    last = w;
  }
  free(bounds);
  free(heap);
  free(in);
  *items = out;
  return nout;
}

/* Appends the piece p, its start raised to `from`, when that leaves
 * anything of it. */
static void put(item_t* out, size_t* n, const item_t* p, uintptr_t from) {
  if (p->end <= from)
    return;
  out[*n] = *p;
  if (out[*n].start < from)
    out[*n].start = from;
  (*n)++;
}

/* The pieces of old (the map so far) and fresh (newer, disjoint among
 * themselves), both by start, into out: where they overlap, fresh wins.
 * Each fresh piece splits at most one old piece in two, so out needs room
 * for nold + 2 * nfresh. Linear. Returns the count. */
static size_t combine(const item_t* old, size_t nold, const item_t* fresh,
                      size_t nfresh, item_t* out) {
  uintptr_t from = 0; /* everything below is written */
  size_t i = 0;
  size_t j = 0;
  size_t n = 0;

  while (i < nold || j < nfresh) {
    item_t a;
    if (i < nold && old[i].end <= from) {
      i++;
      continue;
    }
    if (i == nold || (j < nfresh && fresh[j].start <= old[i].start) ||
        (j < nfresh && fresh[j].start <= from)) {
      put(out, &n, &fresh[j], 0);
      from = fresh[j++].end;
      continue;
    }
    /* old[i] up to the next fresh piece, from where it is unwritten. */
    a = old[i];
    if (j < nfresh && fresh[j].start < a.end)
      a.end = fresh[j].start;
    else
      i++;
    put(out, &n, &a, from);
    from = a.end;
  }
  return n;
}

/* Copies each piece's name into names (pieces of one line share theirs),
 * pointing the pieces at them. Returns 0 or UV_ENOMEM. */
static int gather_names(item_t* items, size_t n, uv_pprof__buf_t* names) {
  uv_pprof__buf_t offs;
  size_t i;

  uv_pprof__buf_init(&offs);
  for (i = 0; i < n; i++) {
    size_t off = names->len;
    if (i > 0 && items[i].seq == items[i - 1].seq)
      off = ((size_t*)offs.base)[i - 1];
    else
      uv_pprof__buf_append(names, items[i].name, strlen(items[i].name) + 1);
    uv_pprof__buf_append(&offs, &off, sizeof(off));
  }
  if (names->oom || offs.oom) {
    uv_pprof__buf_free(&offs);
    return UV_ENOMEM;
  }
  for (i = 0; i < n; i++)
    items[i].name = names->base + ((size_t*)offs.base)[i];
  uv_pprof__buf_free(&offs);
  return 0;
}

/* Merges the batch into the map: its latest MAX_ENTRIES lines, painted
 * among themselves, then over the map; past 2 * MAX_ENTRIES pieces, the
 * oldest go. Out of memory, the map stays as it was. */
static void merge(batch_t* b) {
  size_t nfresh = b->items.len / sizeof(item_t);
  const item_t* lines = (const item_t*)b->items.base;
  item_t* fresh;
  item_t* all;
  uv_pprof__buf_t names;
  size_t n;
  size_t i;

  if (nfresh == 0 || b->items.oom || b->names.oom)
    return;
  if (nfresh > MAX_ENTRIES) {
    lines += nfresh - MAX_ENTRIES;
    nfresh = MAX_ENTRIES;
  }
  fresh = malloc(nfresh * sizeof(*fresh));
  if (fresh == NULL)
    return;
  for (i = 0; i < nfresh; i++) {
    fresh[i] = lines[i];
    fresh[i].name = b->names.base + lines[i].name_off;
  }
  qsort(fresh, nfresh, sizeof(*fresh), by_start);
  if ((nfresh = paint(&fresh, nfresh)) == 0 ||
      (all = malloc((jit.nsegs + 2 * nfresh) * sizeof(*all))) == NULL) {
    free(fresh);
    return;
  }
  n = combine(jit.segs, jit.nsegs, fresh, nfresh, all);
  free(fresh);
  if (n > 2 * MAX_ENTRIES) {
    qsort(all, n, sizeof(*all), by_seq_down);
    n = 2 * MAX_ENTRIES;
    qsort(all, n, sizeof(*all), by_start);
  }
  uv_pprof__buf_init(&names);
  if (gather_names(all, n, &names) != 0) {
    uv_pprof__buf_free(&names);
    free(all);
    return;
  }
  free(jit.segs);
  uv_pprof__buf_free(&jit.names);
  jit.segs = all;
  jit.nsegs = n;
  jit.names = names;
}

/* ---- reading the map ----------------------------------------------------- */

/* Forgets what the map said, keeping the file. */
static void forget_names(void) {
  free(jit.segs);
  jit.segs = NULL;
  jit.nsegs = 0;
  uv_pprof__buf_free(&jit.names);
  jit.offset = 0;
}

static void forget_map(void) {
  free(jit.segs);
  jit.segs = NULL;
  jit.nsegs = 0;
  uv_pprof__buf_free(&jit.names);
  if (jit.has_fd)
    close(jit.fd);
  jit.has_fd = 0;
  jit.offset = 0;
}

/* Reads the lines between jit.offset and size (at most MAX_READ bytes:
 * the latest ones) and moves jit.offset past the last complete line. */
static void read_lines(int fd, off_t size, batch_t* b,
                       const uv_pprof__range_t* objects, size_t n) {
  char* buf = malloc(CHUNK);
  off_t at = jit.offset; /* the file offset of buf[0] */
  off_t done = jit.offset;
  size_t have = 0;
  int skipping = 0; /* inside a line that is not kept */

  if (buf == NULL)
    return;
  if (size - at > (off_t)MAX_READ) {
    at = size - (off_t)MAX_READ;
    skipping = 1;
  }
  while (at + (off_t)have < size) {
    size_t want = CHUNK - have;
    size_t start = 0;
    ssize_t got;
    if ((off_t)want > size - at - (off_t)have)
      want = (size_t)(size - at - (off_t)have);
    got = pread(fd, buf + have, want, at + (off_t)have);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    have += (size_t)got;
    for (;;) {
      char* nl = memchr(buf + start, '\n', have - start);
      size_t len;
      if (nl == NULL)
        break;
      len = (size_t)(nl - (buf + start));
      if (!skipping)
        add_line(b, buf + start, len, objects, n);
      skipping = 0;
      start += len + 1;
      done = at + (off_t)start;
    }
    if (have - start > MAX_LINE) {
      skipping = 1;
      start = have;
    }
    memmove(buf, buf + start, have - start);
    at += (off_t)start;
    have -= start;
  }
  free(buf);
  jit.offset = done;
}

/* Reads what was appended to the map since the last look, from the start
 * when it is another file or shorter (rewritten). Only a regular file of
 * this user is read, without following a link or waiting on a FIFO. A map
 * that is gone keeps its names: the code it named may still run. */
static void look_at_map(const uv_pprof__range_t* objects, size_t n) {
  char path[64];
  struct stat st;
  batch_t b;

  snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
  if (lstat(path, &st) != 0)
    return;
  if (!jit.has_fd || st.st_dev != jit.dev || st.st_ino != jit.ino) {
    int fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
      return;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
      close(fd);
      return;
    }
    forget_map();
    jit.has_fd = 1;
    jit.fd = fd;
    jit.dev = st.st_dev;
    jit.ino = st.st_ino;
  } else if (fstat(jit.fd, &st) != 0) {
    return;
  }
  if (st.st_size < jit.offset)
    forget_names();
  if (st.st_size > jit.offset) {
    uv_pprof__buf_init(&b.items);
    uv_pprof__buf_init(&b.names);
    read_lines(jit.fd, st.st_size, &b, objects, n);
    merge(&b);
    uv_pprof__buf_free(&b.items);
    uv_pprof__buf_free(&b.names);
  }
}

/* ---- lookups ------------------------------------------------------------- */

static const item_t* find_seg(uintptr_t addr) {
  size_t lo = 0;
  size_t hi = jit.nsegs;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (jit.segs[mid].start <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && addr < jit.segs[lo - 1].end ? &jit.segs[lo - 1] : NULL;
}

static int in_anon(uintptr_t addr) {
  size_t lo = 0;
  size_t hi = jit.nanon;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (jit.anon[mid].start <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && addr < jit.anon[lo - 1].end;
}

int uv_pprof__jit_lookup(uintptr_t addr, const uv_pprof__range_t* objects,
                         size_t nobjects, const char** name, uintptr_t* start,
                         int* nameless) {
  uint64_t now = uv_hrtime();
  const item_t* seg;

  if (!jit.map_looked || now - jit.map_time >= RECHECK_NS) {
    /* A forked child has a map of its own, or none (until it looks, what
     * its parent read still names the code it inherited). The parent's
     * descriptor is left alone: the child may have closed it and opened
     * something else under its number. getpid() is a system call, so it
     * is asked only here. */
    pid_t pid = getpid();
    if (jit.pid != pid) {
      jit.has_fd = 0;
      uv_pprof__jit_reset();
      jit.pid = pid;
    }
    look_at_map(objects, nobjects);
    jit.map_looked = 1;
    jit.map_time = now;
  }
  if ((seg = find_seg(addr)) != NULL) {
    *name = seg->name;
    *start = seg->entry;
    *nameless = 0;
    return 1;
  }
  if (!in_anon(addr) && (!jit.anon_read || now - jit.anon_time >= RECHECK_NS)) {
    uv_pprof__range_t* ranges;
    size_t count;
    if (uv_pprof__maps_jit(&ranges, &count) == 0) {
      free(jit.anon);
      jit.anon = ranges;
      jit.nanon = count;
    }
    jit.anon_read = 1;
    jit.anon_time = now;
  }
  if (!in_anon(addr))
    return 0;
  *name = "[jit]";
  *start = addr;
  *nameless = 1;
  return 1;
}

void uv_pprof__jit_reset(void) {
  forget_map();
  free(jit.anon);
  memset(&jit, 0, sizeof(jit));
}
