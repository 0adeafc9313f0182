/* Go's ?debug=1 text of count profiles (goroutine, threadcreate): records with
 * equal stacks and labels grouped, sorted by count then key, string labels
 * Go-quoted; and the "#\t0x<pc-1>\t<func>+0x<off>\t<file>:<line>" frame
 * lines every debug=1 text shares, symbolized (symbolize.c) and aligned as
 * Go's text/tabwriter aligns them. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pprof.h"

typedef struct {
  size_t record;   /* a record with this key, for its frames */
  const char* key; /* "@ 0x.. 0x..", then "\n# labels: {...}" if any */
  int64_t count;
} group_t;

/* Length of the UTF-8 sequence at s (at most len bytes) and its rune in *r,
 * or 0 when the bytes are not valid UTF-8 (Go then escapes the first byte). */
static size_t decode_utf8(const unsigned char* s, size_t len, uint32_t* r) {
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;
  size_t n;
  size_t i;

  if (s[0] < 0x80) {
    *r = s[0];
    return 1;
  }
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    n = 2;
    *r = s[0] & 0x1f;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    n = 3;
    *r = s[0] & 0x0f;
    lo = s[0] == 0xe0 ? 0xa0 : 0x80; /* overlong */
    hi = s[0] == 0xed ? 0x9f : 0xbf; /* surrogates */
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    n = 4;
    *r = s[0] & 0x07;
    lo = s[0] == 0xf0 ? 0x90 : 0x80; /* overlong */
    hi = s[0] == 0xf4 ? 0x8f : 0xbf; /* beyond U+10FFFF */
  } else {
    return 0;
  }
  if (len < n || s[1] < lo || s[1] > hi)
    return 0;
  for (i = 1; i < n; i++) {
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
    *r = (*r << 6) | (s[i] & 0x3f);
  }
  return n;
}

/* Go's unicode.IsPrint needs the Unicode tables. This keeps its answer for
 * controls, format characters, non-ASCII spaces, line and paragraph
 * separators, private use and noncharacters; other runes (including
 * unassigned ones, which Go would escape) print as they are. */
static int is_print(uint32_t r) {
  static const uint32_t hidden[][2] = {
      {0x80, 0xa0},       {0xad, 0xad},       {0x600, 0x605},
      {0x61c, 0x61c},     {0x6dd, 0x6dd},     {0x70f, 0x70f},
      {0x890, 0x891},     {0x8e2, 0x8e2},     {0x1680, 0x1680},
      {0x180e, 0x180e},   {0x2000, 0x200f},   {0x2028, 0x202f},
      {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},
      {0xe000, 0xf8ff},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},
      {0xfffe, 0xffff},   {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a},
      {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
  };
  size_t i;

  if (r < 0x80)
    return r >= 0x20 && r < 0x7f;
  for (i = 0; i < UV_PPROF__ARRAY_SIZE(hidden); i++)
    if (r >= hidden[i][0] && r <= hidden[i][1])
      return 0;
  return 1;
}

/* Appends s as Go's %q (strconv.Quote) writes it. */
static void quote(uv_pprof__buf_t* out, const char* s) {
  const unsigned char* p = (const unsigned char*)s;
  size_t len = strlen(s);

  uv_pprof__buf_append(out, "\"", 1);
  while (len > 0) {
    uint32_t r;
    size_t n = decode_utf8(p, len, &r);
    const char* esc = NULL;

    if (n == 0) {
      uv_pprof__buf_printf(out, "\\x%02x", p[0]);
      n = 1;
    } else if (r == '"' || r == '\\') {
      uv_pprof__buf_printf(out, "\\%c", (char)r);
    } else if (is_print(r)) {
      uv_pprof__buf_append(out, p, n);
    } else {
      switch (r) {
        case '\a':
          esc = "\\a";
          break;
        case '\b':
          esc = "\\b";
          break;
        case '\f':
          esc = "\\f";
          break;
        case '\n':
          esc = "\\n";
          break;
        case '\r':
          esc = "\\r";
          break;
        case '\t':
          esc = "\\t";
          break;
        case '\v':
          esc = "\\v";
          break;
        default:
          break;
      }
      if (esc != NULL)
        uv_pprof__buf_append(out, esc, 2);
      else if (r < 0x80)
        uv_pprof__buf_printf(out, "\\x%02x", (unsigned)r);
      else if (r < 0x10000)
        uv_pprof__buf_printf(out, "\\u%04x", (unsigned)r);
      else
        uv_pprof__buf_printf(out, "\\U%08x", (unsigned)r);
    }
    p += n;
    len -= n;
  }
  uv_pprof__buf_append(out, "\"", 1);
}

static int compare_strings(const void* a, const void* b) {
  return strcmp(*(const char* const*)a, *(const char* const*)b);
}

/* Appends "\n# labels: {"k":"v", ...}" for the string labels of r, sorted
 * as Go sorts its "k":"v" pairs; nothing when r has no string label. */
static int append_labels(uv_pprof__buf_t* out,
                         const uv_pprof__count_record_t* r) {
  uv_pprof__buf_t pairs;
  size_t* offs;
  const char** sorted;
  size_t n = 0;
  size_t i;
  int rc = 0;

  for (i = 0; i < r->nlabels; i++)
    n += r->labels[i].str != NULL;
  if (n == 0)
    return 0;
  uv_pprof__buf_init(&pairs);
  offs = malloc(n * sizeof(*offs));
  sorted = malloc(n * sizeof(*sorted));
  if (offs == NULL || sorted == NULL)
    rc = UV_ENOMEM;
  for (i = 0, n = 0; rc == 0 && i < r->nlabels; i++) {
    if (r->labels[i].str == NULL)
      continue;
    offs[n++] = pairs.len;
    quote(&pairs, r->labels[i].key);
    uv_pprof__buf_append(&pairs, ":", 1);
    quote(&pairs, r->labels[i].str);
    uv_pprof__buf_append(&pairs, "", 1); /* the NUL ending this pair */
  }
  if (rc == 0 && pairs.oom)
    rc = UV_ENOMEM;
  if (rc == 0) {
    for (i = 0; i < n; i++)
      sorted[i] = pairs.base + offs[i];
    qsort(sorted, n, sizeof(*sorted), compare_strings);
    uv_pprof__buf_append(out, "\n# labels: {", 12);
    for (i = 0; i < n; i++)
      uv_pprof__buf_printf(out, "%s%s", i > 0 ? ", " : "", sorted[i]);
    uv_pprof__buf_append(out, "}", 1);
  }
  free(offs);
  free(sorted);
  uv_pprof__buf_free(&pairs);
  return rc;
}

int uv_pprof__text_labels(uv_pprof__buf_t* out, const uv_pprof__label_t* labels,
                          size_t n) {
  uv_pprof__count_record_t r;

  memset(&r, 0, sizeof(r));
  r.labels = labels;
  r.nlabels = n;
  return append_labels(out, &r);
}

static int compare_keys(const void* a, const void* b) {
  return strcmp(((const group_t*)a)->key, ((const group_t*)b)->key);
}

/* Go's order: count descending, then key text ascending. */
static int compare_groups(const void* a, const void* b) {
  const group_t* x = a;
  const group_t* y = b;

  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  return strcmp(x->key, y->key);
}

/* Prints Go's "0x%x" form (C's "%#x" prints 0 as "0"). */
static void append_pcs(uv_pprof__buf_t* out,
                       const uv_pprof__count_record_t* r) {
  size_t i;

  uv_pprof__buf_append(out, "@", 1);
  for (i = 0; i < r->npcs; i++)
    uv_pprof__buf_printf(out, " 0x%" PRIxPTR, r->pcs[i]);
}

/* One frame line's cells: "#", the address, "func+0xoff", then the last,
 * unaligned segment "file:line". An unsymbolized frame has only the first
 * two (its address is then the last segment); a frame whose file is unknown
 * has three. */
typedef struct {
  uv_pprof__symbol_t sym;
  char addr[24];
  char func_off[24]; /* "+0x<off>": the name is printed from sym */
  size_t ncells;
} row_t;

static size_t cell_len(const row_t* r, size_t column) {
  return column == 1 ? strlen(r->addr)
                     : strlen(r->sym.name) + strlen(r->func_off);
}

/* text/tabwriter with minwidth 1, tabwidth 8, padding 1, padchar '\t': a
 * column's width is the widest of its cells + 1, rounded up to 8, over each
 * run of consecutive lines that have that column; a cell is followed by as
 * many tabs as reach that width. Column 0 is always "#", one tab. */
static void align(row_t* rows, size_t n, size_t column, size_t* tabs) {
  size_t i = 0;

  while (i < n) {
    size_t end;
    size_t width = 0;
    size_t j;
    if (rows[i].ncells <= column + 1) {
      i++;
      continue;
    }
    for (end = i; end < n && rows[end].ncells > column + 1; end++)
      if (cell_len(&rows[end], column) + 1 > width)
        width = cell_len(&rows[end], column) + 1;
    width = (width + 7) / 8 * 8;
    for (j = i; j < end; j++)
      tabs[j * 3 + column] = (width - cell_len(&rows[j], column) + 7) / 8;
    i = end;
  }
}

static void append_tabs(uv_pprof__buf_t* out, size_t n) {
  static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";

  while (n > 0) {
    size_t k = n < sizeof(tabs) - 1 ? n : sizeof(tabs) - 1;
    uv_pprof__buf_append(out, tabs, k);
    n -= k;
  }
}

/* pcs are return addresses: each frame is looked up at pc - 1, the call
 * site, and printed so, as Go prints runtime.Frame.PC. */
int uv_pprof__text_frames(const uintptr_t* pcs, size_t npcs,
                          uv_pprof__buf_t* out) {
  row_t* rows;
  size_t* tabs;
  size_t nrows = 0;
  size_t cap = npcs;
  size_t i;

  rows = malloc((cap != 0 ? cap : 1) * sizeof(*rows));
  if (rows == NULL)
    return UV_ENOMEM;
  for (i = 0; i < npcs; i++) {
    uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
    uintptr_t pc = pcs[i] != 0 ? pcs[i] - 1 : 0;
    size_t nf = uv_pprof__symbolize(pc, f, UV_PPROF__ARRAY_SIZE(f));
    size_t j;

    if (nf == 0 || f[nf - 1].name == NULL)
      nf = 0;
    if (nrows + (nf != 0 ? nf : 1) > cap) {
      row_t* grown;
      cap = (nrows + UV_PPROF__MAX_INLINE) * 2;
      grown = realloc(rows, cap * sizeof(*rows));
      if (grown == NULL) {
        free(rows);
        return UV_ENOMEM;
      }
      rows = grown;
    }
    for (j = 0; j < (nf != 0 ? nf : 1); j++) {
      row_t* r = &rows[nrows++];
      memset(r, 0, sizeof(*r));
      snprintf(r->addr, sizeof(r->addr), "0x%" PRIxPTR, pc);
      r->ncells = 2;
      if (nf == 0 || f[j].name == NULL)
        continue;
      r->sym = f[j];
      r->sym.name = uv_pprof__symbol_readable(f[j].name);
      /* A made-up name already says where it is. */
      if (!f[j].nameless)
        snprintf(r->func_off, sizeof(r->func_off), "+0x%" PRIxPTR,
                 pc - f[j].start);
      r->ncells = f[j].file != NULL ? 4 : 3;
    }
  }
  tabs = calloc((nrows != 0 ? nrows : 1) * 3, sizeof(*tabs));
  if (tabs == NULL) {
    free(rows);
    return UV_ENOMEM;
  }
  align(rows, nrows, 1, tabs);
  align(rows, nrows, 2, tabs);
  for (i = 0; i < nrows; i++) {
    const row_t* r = &rows[i];
    uv_pprof__buf_append(out, "#\t", 2);
    uv_pprof__buf_append(out, r->addr, strlen(r->addr));
    if (r->ncells > 2) {
      append_tabs(out, tabs[i * 3 + 1]);
      uv_pprof__buf_printf(out, "%s%s", r->sym.name, r->func_off);
    }
    if (r->ncells > 3) {
      append_tabs(out, tabs[i * 3 + 2]);
      uv_pprof__buf_printf(out, "%s:%d", r->sym.file, r->sym.line);
    }
    uv_pprof__buf_append(out, "\n", 1);
  }
  free(rows);
  free(tabs);
  return out->oom ? UV_ENOMEM : 0;
}

/* A record without a stack prints the zero frame "#\t0x0" as Go does. */
static int append_frames(uv_pprof__buf_t* out,
                         const uv_pprof__count_record_t* r) {
  int rc = 0;

  if (r->npcs == 0)
    uv_pprof__buf_append(out, "#\t0x0\n", 6);
  else
    rc = uv_pprof__text_frames(r->pcs, r->npcs, out);
  uv_pprof__buf_append(out, "\n", 1);
  return rc;
}

/* Appends the text to out. Records with equal pcs and string labels are
 * printed once with their counts summed; the header's total is the sum of
 * all counts. Returns 0 or UV_ENOMEM. */
int uv_pprof__text_count_profile(const char* name,
                                 uv_pprof__count_record_t* records, size_t n,
                                 uv_pprof__buf_t* out) {
  uv_pprof__buf_t keys;
  size_t* offs;
  group_t* groups;
  size_t ngroups = 0;
  int64_t total = 0;
  size_t i;
  int rc = 0;

  uv_pprof__buf_init(&keys);
  offs = malloc((n != 0 ? n : 1) * sizeof(*offs));
  groups = malloc((n != 0 ? n : 1) * sizeof(*groups));
  if (offs == NULL || groups == NULL)
    rc = UV_ENOMEM;
  for (i = 0; rc == 0 && i < n; i++) {
    offs[i] = keys.len;
    append_pcs(&keys, &records[i]);
    rc = append_labels(&keys, &records[i]);
    uv_pprof__buf_append(&keys, "", 1); /* the NUL ending this key */
    total += records[i].count;
  }
  if (rc == 0 && keys.oom)
    rc = UV_ENOMEM;
  if (rc == 0) {
    for (i = 0; i < n; i++) {
      groups[i].record = i;
      groups[i].key = keys.base + offs[i];
      groups[i].count = records[i].count;
    }
    qsort(groups, n, sizeof(*groups), compare_keys);
    for (i = 0; i < n; i++) {
      if (ngroups > 0 && strcmp(groups[ngroups - 1].key, groups[i].key) == 0)
        groups[ngroups - 1].count += groups[i].count;
      else
        groups[ngroups++] = groups[i];
    }
    qsort(groups, ngroups, sizeof(*groups), compare_groups);

    uv_pprof__buf_printf(out, "%s profile: total %" PRId64 "\n", name, total);
    for (i = 0; i < ngroups && rc == 0; i++) {
      uv_pprof__buf_printf(out, "%" PRId64 " %s\n", groups[i].count,
                           groups[i].key);
      rc = append_frames(out, &records[groups[i].record]);
    }
    if (rc == 0 && out->oom)
      rc = UV_ENOMEM;
  }
  free(offs);
  free(groups);
  uv_pprof__buf_free(&keys);
  return rc;
}
