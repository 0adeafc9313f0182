/* Code address -> function, file, line and inlined frames, for every
 * profile. The loader (dl_iterate_phdr) lists the objects, their ranges and
 * build IDs, libdw opens their ELF and DWARF (the files debuginfo.c lets it
 * read), and the lookups are ours: sorted symbol tables and per-unit
 * function indexes (libdw's own are linear scans). What nothing names is
 * "<module>+0x<offset>"; code outside every object goes to jit.c. Answers
 * are cached by address with interned strings; loads and unloads are
 * noticed through the loader's counters. Worker thread only. */
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "hash.h"
#include "proc.h"
#include "symbols.h"

typedef struct {
  uintptr_t start;
  uintptr_t end;    /* exclusive */
  const char* name; /* in libdw's copy of the ELF string table */
} sym_t;

/* A subprogram's address range (DWARF's addresses: before the bias). */
typedef struct {
  Dwarf_Addr low;
  Dwarf_Addr high;
  Dwarf_Off die;
} fn_range_t;

/* The subprograms of one compilation unit by address, built on its first
 * lookup: dwarf_getscopes walks the whole unit on every call (2.6 ms per
 * address in a unit of 6 000 functions), this is a binary search. */
typedef struct {
  Dwarf_Off cu;
  fn_range_t* fns;
  size_t count;
} cu_index_t;

/* What we keep per object, in the userdata slot of its libdw module: what
 * the loader told when it was reported, its FUNC symbols by start address,
 * one per address (built on first need), and the indexes of the
 * compilation units looked into so far. */
typedef struct {
  unsigned char id[UV_PPROF__MAX_BUILD_ID]; /* the build ID in memory */
  size_t id_len;                            /* 0: none */
  uintptr_t bias;                           /* runtime address - ELF address */
  const char* base; /* the file's base name, "[vdso]" for the vdso */
  int built;        /* syms and cover are there */
  sym_t* syms;
  size_t* cover; /* cover[i]: among syms[0..i], the one ending last */
  size_t count;
  uv_pprof__plt_t plt; /* owns the names of its PLT stubs among syms */
  cu_index_t* cus;     /* by offset */
  size_t ncus;
  size_t cus_cap;
} module_t;

/* A symbol while its table is built: aliases are still there, ranked. */
typedef struct {
  uintptr_t start;
  uintptr_t end;
  uintptr_t limit; /* sizeless: the end of its section (0: unknown) */
  const char* name;
  int local; /* STB_LOCAL: visible only inside its object */
} candidate_t;

typedef struct {
  uintptr_t addr; /* 0: empty slot */
  size_t first;   /* index in state.frames */
  size_t count;
} cached_t;

typedef struct {
  uint64_t hash;
  const char* s;        /* NULL: empty slot */
  const char* readable; /* what people are shown for s; NULL: not asked */
} interned_t;

/* Interned strings live in chunks that never move. */
typedef struct chunk_s {
  struct chunk_s* next;
  size_t used;
  size_t size;
  char data[];
} chunk_t;

#define CHUNK_SIZE 65536

static Dwfl_Callbacks callbacks; /* filled once libdw is loaded */

static struct {
  Dwfl* dwfl;
  unsigned long long adds; /* the loader's counters at the last scan */
  unsigned long long subs;
  uv_pprof__range_t* ranges; /* the objects reported, by start */
  size_t nranges;
  cached_t* cache;
  size_t cache_mask;
  size_t cache_used;
  uv_pprof__symbol_t* frames;
  size_t nframes;
  size_t frames_cap;
  interned_t* strings;
  size_t strings_mask;
  size_t strings_used;
  chunk_t* chunks;
} state;

/* ---- interned strings ---------------------------------------------------- */

static char* chunk_copy(const char* s, size_t len) {
  chunk_t* c = state.chunks;
  char* p;

  if (c == NULL || c->size - c->used < len + 1) {
    size_t size = len + 1 > CHUNK_SIZE ? len + 1 : CHUNK_SIZE;
    c = malloc(sizeof(*c) + size);
    if (c == NULL)
      return NULL;
    c->size = size;
    c->used = 0;
    c->next = state.chunks;
    state.chunks = c;
  }
  p = c->data + c->used;
  memcpy(p, s, len + 1);
  c->used += len + 1;
  return p;
}

static int strings_grow(void) {
  size_t cap = state.strings != NULL ? state.strings_mask + 1 : 0;
  size_t ncap = cap != 0 ? cap * 2 : 1024;
  interned_t* slots;
  size_t i;
  size_t j;

  slots = calloc(ncap, sizeof(*slots));
  if (slots == NULL)
    return UV_ENOMEM;
  for (i = 0; i < cap; i++) {
    if (state.strings[i].s == NULL)
      continue;
    for (j = state.strings[i].hash & (ncap - 1); slots[j].s != NULL;
         j = (j + 1) & (ncap - 1))
      ;
    slots[j] = state.strings[i];
  }
  free(state.strings);
  state.strings = slots;
  state.strings_mask = ncap - 1;
  return 0;
}

/* The entry of s's copy, made if needed (valid until the next one is
 * made). NULL for NULL, and when out of memory (the answer is then poorer,
 * not wrong). */
static interned_t* intern_entry(const char* s) {
  size_t len;
  uint64_t hash;
  size_t i;
  char* copy;

  if (s == NULL)
    return NULL;
  if ((state.strings_used + 1) * 4 > (state.strings_mask + 1) * 3 ||
      state.strings == NULL) {
    if (strings_grow() != 0)
      return NULL;
  }
  len = strlen(s);
  hash = uv_pprof__hash_bytes(s, len);
  for (i = hash & state.strings_mask; state.strings[i].s != NULL;
       i = (i + 1) & state.strings_mask) {
    if (state.strings[i].hash == hash && strcmp(state.strings[i].s, s) == 0)
      return &state.strings[i];
  }
  copy = chunk_copy(s, len);
  if (copy == NULL)
    return NULL;
  state.strings[i].hash = hash;
  state.strings[i].s = copy;
  state.strings_used++;
  return &state.strings[i];
}

/* Our copy of s, the same pointer for equal strings until reset. */
static const char* intern(const char* s) {
  interned_t* e = intern_entry(s);

  return e != NULL ? e->s : NULL;
}

const char* uv_pprof__symbol_readable(const char* name) {
  interned_t* e;
  char* demangled;
  const char* shown;

  if (name == NULL || strncmp(name, "_Z", 2) != 0)
    return name;
  e = intern_entry(name);
  if (e != NULL && e->readable != NULL)
    return e->readable;
  demangled = uv_pprof__demangle(name);
  shown = demangled != NULL ? intern(demangled) : NULL;
  free(demangled);
  if (shown == NULL)
    shown = name;
  /* Interning the demangled name may have moved the entries. */
  e = intern_entry(name);
  if (e != NULL)
    e->readable = shown;
  return shown;
}

/* ---- per-object symbol tables ------------------------------------------- */

static int leading_underscores(const char* s) {
  int n = 0;

  while (s[n] == '_')
    n++;
  return n;
}

/* By address; among aliases the preferred name first: global (or weak)
 * before local; then the one with a size; then fewer leading underscores
 * (libc's weak `getpid` over its global `__getpid`); then by name, so the
 * choice never depends on the order of the symbol table. */
static int compare_candidates(const void* a, const void* b) {
  const candidate_t* x = a;
  const candidate_t* y = b;
  int ux;
  int uy;

  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  if (x->local != y->local)
    return x->local - y->local;
  if ((x->end > x->start) != (y->end > y->start))
    return x->end > x->start ? -1 : 1;
  ux = leading_underscores(x->name);
  uy = leading_underscores(y->name);
  if (ux != uy)
    return ux - uy;
  return strcmp(x->name, y->name);
}

/* The end of section `shndx` of elf, as a runtime address; 0 when there is
 * no such section. */
static uintptr_t section_end(Elf* elf, GElf_Word shndx, Dwarf_Addr bias) {
  GElf_Shdr shdr;
  Elf_Scn* scn;

  if (elf == NULL || shndx >= SHN_LORESERVE ||
      (scn = DW(elf_getscn)(elf, shndx)) == NULL ||
      DW(gelf_getshdr)(scn, &shdr) == NULL)
    return 0;
  return (uintptr_t)(shdr.sh_addr + shdr.sh_size + bias);
}

/* Fills t's syms, cover and count with the module's FUNC symbols, from
 * where libdw finds them: the module's .symtab, else its separate debug
 * file's (debuginfo.c), else its .dynsym and the .gnu_debugdata
 * (MiniDebugInfo) table; and its PLT stubs ("malloc@plt", plt.c), which no
 * table names. Returns 0 or UV_ENOMEM. */
static int symtab_build(Dwfl_Module* mod, module_t* t) {
  candidate_t* c;
  Dwarf_Addr mod_end;
  size_t n = 0;
  size_t k;
  size_t i;
  int nsyms = DW(dwfl_module_getsymtab)(mod);
  Dwarf_Addr elf_bias;
  Elf* main_elf = DW(dwfl_module_getelf)(mod, &elf_bias);

  if (nsyms < 0)
    nsyms = 0;
  if (uv_pprof__plt_read(main_elf, (uintptr_t)elf_bias, &t->plt) != 0)
    return UV_ENOMEM;
  if (nsyms == 0 && t->plt.count == 0)
    return 0;
  c = malloc(((size_t)nsyms + t->plt.count) * sizeof(*c));
  if (c == NULL) {
    uv_pprof__plt_free(&t->plt);
    return UV_ENOMEM;
  }
  for (i = 0; i < t->plt.count; i++, n++) {
    c[n].start = t->plt.stubs[i].start;
    c[n].end = t->plt.stubs[i].end;
    c[n].limit = 0;
    c[n].name = t->plt.stubs[i].name;
    c[n].local = 1;
  }
  for (i = 0; i < (size_t)nsyms; i++) {
    GElf_Sym sym;
    GElf_Addr addr;
    GElf_Word shndx;
    Dwarf_Addr bias;
    Elf* elf;
    const char* name;
    int type;

    name = DW(dwfl_module_getsym_info)(mod, (int)i, &sym, &addr, &shndx, &elf,
                                       &bias);
    if (name == NULL || name[0] == '\0' || shndx == SHN_UNDEF || addr == 0)
      continue;
    type = GELF_ST_TYPE(sym.st_info);
    if (type != STT_FUNC && type != STT_GNU_IFUNC)
      continue;
    c[n].start = (uintptr_t)addr;
    c[n].end = (uintptr_t)(addr + sym.st_size);
    c[n].limit = sym.st_size == 0 ? section_end(elf, shndx, bias) : 0;
    c[n].name = name;
    c[n].local = GELF_ST_BIND(sym.st_info) == STB_LOCAL;
    n++;
  }
  if (n == 0) {
    free(c);
    return 0;
  }
  qsort(c, n, sizeof(*c), compare_candidates);

  /* One entry per address, named by its first (preferred) alias, reaching
   * as far as the longest alias with a size does. */
  for (i = 0, k = 0; i < n; i++) {
    if (k > 0 && c[k - 1].start == c[i].start) {
      if (c[i].end > c[k - 1].end)
        c[k - 1].end = c[i].end;
      if (c[i].limit > c[k - 1].limit)
        c[k - 1].limit = c[i].limit;
      continue;
    }
    c[k++] = c[i];
  }
  /* A sizeless one (hand-written assembly, crti's _init) reaches the next
   * symbol, but not past its own section: _init's would cover .plt. */
  DW(dwfl_module_info)(mod, NULL, NULL, &mod_end, NULL, NULL, NULL, NULL);
  for (i = 0; i < k; i++) {
    if (c[i].end > c[i].start)
      continue;
    c[i].end = i + 1 < k ? c[i + 1].start : (uintptr_t)mod_end;
    if (c[i].limit > c[i].start && c[i].limit < c[i].end)
      c[i].end = c[i].limit;
  }
  t->syms = malloc(k * sizeof(*t->syms));
  t->cover = malloc(k * sizeof(*t->cover));
  if (t->syms == NULL || t->cover == NULL) {
    free(t->syms);
    free(t->cover);
    free(c);
    t->syms = NULL;
    t->cover = NULL;
    uv_pprof__plt_free(&t->plt);
    return UV_ENOMEM;
  }
  for (i = 0; i < k; i++) {
    t->syms[i].start = c[i].start;
    t->syms[i].end = c[i].end;
    t->syms[i].name = c[i].name;
  }
  free(c);
  for (i = 0; i < k; i++) {
    size_t prev = i > 0 ? t->cover[i - 1] : 0;
    t->cover[i] = i > 0 && t->syms[prev].end > t->syms[i].end ? prev : i;
  }
  t->count = k;
  return 0;
}

/* The symbol containing addr, or NULL. A symbol nested in a larger one
 * (a label inside a function) loses to it past its own end. */
static const sym_t* symtab_find(const module_t* t, uintptr_t addr) {
  size_t lo = 0;
  size_t hi = t->count;
  const sym_t* s;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t->syms[mid].start <= addr)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0)
    return NULL;
  s = &t->syms[lo - 1];
  if (addr < s->end)
    return s;
  s = &t->syms[t->cover[lo - 1]];
  return addr < s->end ? s : NULL;
}

static void module_free(module_t* m) {
  size_t i;

  if (m == NULL)
    return;
  for (i = 0; i < m->ncus; i++)
    free(m->cus[i].fns);
  free(m->cus);
  free(m->syms);
  free(m->cover);
  uv_pprof__plt_free(&m->plt);
  free(m);
}

/* Our data of mod, its symbol table built on first need. NULL when out of
 * memory (the table is retried on the next lookup). */
static module_t* module_of(Dwfl_Module* mod) {
  void** userdata;
  module_t* m;

  DW(dwfl_module_info)(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
  m = *userdata;
  if (m == NULL || m->built)
    return m;
  if (symtab_build(mod, m) != 0)
    return NULL;
  m->built = 1;
  return m;
}

/* ---- the process's objects ---------------------------------------------- */

/* A loaded object as the loader sees it. */
typedef struct {
  char* name;    /* its file, or "[vdso: PID]" (libdw reads that from memory) */
  uintptr_t low; /* load bias + first PT_LOAD's aligned p_vaddr, where libdw
                    expects a module to start to get its bias right */
  uintptr_t high; /* end of its last PT_LOAD */
  uintptr_t bias;
  unsigned char id[UV_PPROF__MAX_BUILD_ID];
  size_t id_len;
} object_t;

typedef struct {
  object_t* objects;
  size_t count;
  size_t cap;
  size_t entries;                 /* the loader's entries seen so far */
  unsigned long long counters[2]; /* dlpi_adds, dlpi_subs */
  int failed;
} objects_t;

static int on_counters(struct dl_phdr_info* info, size_t size, void* arg) {
  unsigned long long* counters = arg;

  counters[0] = info->dlpi_adds;
  counters[1] = info->dlpi_subs;
  return 1; /* they are the same in every entry */
}

/* Names the object of info: the main program (the first entry) by
 * /proc/self/exe, the vdso as libdw's "[vdso: PID]", a library by its
 * path made absolute. NULL when it has none or out of memory. */
static char* object_name(const struct dl_phdr_info* info, uintptr_t low,
                         uintptr_t high, int first) {
  uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
  char path[PATH_MAX];
  ssize_t n;

  if (vdso != 0 && low <= vdso && vdso < high) {
    snprintf(path, sizeof(path), "[vdso: %d]", (int)getpid());
    return strdup(path);
  }
  if (first) {
    n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
      return NULL;
    path[n] = '\0';
    return strdup(path);
  }
  if (info->dlpi_name[0] == '/')
    return strdup(info->dlpi_name);
  if (info->dlpi_name[0] != '\0' && realpath(info->dlpi_name, path) != NULL)
    return strdup(path);
  return NULL;
}

/* Runs under the loader's lock: it copies and names, and calls neither
 * libdw nor the loader. */
static int on_object(struct dl_phdr_info* info, size_t size, void* arg) {
  objects_t* list = arg;
  uintptr_t low = 0;
  uintptr_t high = 0;
  int loads = 0;
  size_t i;
  object_t* o;

  if (list->entries++ == 0) {
    list->counters[0] = info->dlpi_adds;
    list->counters[1] = info->dlpi_subs;
  }
  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    uintptr_t end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    if (ph->p_type != PT_LOAD)
      continue;
    if (loads++ == 0)
      low = info->dlpi_addr + (ph->p_vaddr & -(uintptr_t)ph->p_align);
    if (end > high)
      high = end;
  }
  if (loads == 0)
    return 0;
  if (list->count == list->cap) {
    size_t cap = list->cap != 0 ? list->cap * 2 : 64;
    object_t* grown = realloc(list->objects, cap * sizeof(*grown));
    if (grown == NULL) {
      list->failed = 1;
      return 1;
    }
    list->objects = grown;
    list->cap = cap;
  }
  o = &list->objects[list->count];
  o->name = object_name(info, low, high, list->entries == 1);
  o->low = low;
  o->high = high;
  o->bias = info->dlpi_addr;
  o->id_len = uv_pprof__loaded_build_id(info, o->id);
  if (o->name != NULL)
    list->count++;
  return 0;
}

/* Gives a module reported for the first time its module_t, with what the
 * loader told of it. Out of memory, it has none and stays unnamed. */
static void attach(Dwfl_Module* mod, const object_t* o) {
  const char* slash = strrchr(o->name, '/');
  void** userdata;
  module_t* m;

  DW(dwfl_module_info)(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
  if (*userdata != NULL || (m = calloc(1, sizeof(*m))) == NULL)
    return;
  memcpy(m->id, o->id, o->id_len);
  m->id_len = o->id_len;
  m->bias = o->bias;
  m->base = intern(strncmp(o->name, "[vdso", 5) == 0 ? "[vdso]"
                   : slash != NULL                   ? slash + 1
                                                     : o->name);
  *userdata = m;
}

static int compare_ranges(const void* a, const void* b) {
  const uv_pprof__range_t* x = a;
  const uv_pprof__range_t* y = b;

  return (x->start > y->start) - (x->start < y->start);
}

static int on_removed(Dwfl_Module* mod, void* userdata, const char* name,
                      Dwarf_Addr base, void* arg) {
  void** slot;
  int* removed = arg;

  /* Ask for the slot rather than trusting the callback's argument, which
   * libdw passes as the slot's address despite its declared type. */
  DW(dwfl_module_info)(mod, &slot, NULL, NULL, NULL, NULL, NULL, NULL);
  module_free(*slot);
  *slot = NULL;
  *removed = 1;
  return DWARF_CB_OK;
}

static void cache_clear(void) {
  if (state.cache != NULL)
    memset(state.cache, 0, (state.cache_mask + 1) * sizeof(*state.cache));
  state.cache_used = 0;
  state.nframes = 0;
}

/* Re-reads the loaded objects. libdw keeps the modules it knows with the
 * same name and range (and our tables with them); those gone are freed,
 * and with them every cached answer, since another object may now sit at
 * their addresses. Ranges come from the loader, not /proc/self/maps, where
 * libdw's own mappings of the files it opened would blur them. */
static void rescan(void) {
  uv_pprof__range_t* ranges;
  objects_t list;
  int removed = 0;
  size_t i;

  memset(&list, 0, sizeof(list));
  dl_iterate_phdr(on_object, &list);
  if (list.failed) {
    /* Out of memory: keep what we know; the next miss tries again. */
    for (i = 0; i < list.count; i++)
      free(list.objects[i].name);
    free(list.objects);
    return;
  }
  ranges = malloc((list.count != 0 ? list.count : 1) * sizeof(*ranges));
  DW(dwfl_report_begin)(state.dwfl);
  for (i = 0; i < list.count; i++) {
    const object_t* o = &list.objects[i];
    Dwfl_Module* mod =
        DW(dwfl_report_module)(state.dwfl, o->name, o->low, o->high);
    if (mod != NULL)
      attach(mod, o);
    if (ranges != NULL) {
      ranges[i].start = o->low;
      ranges[i].end = o->high;
    }
    free(o->name);
  }
  DW(dwfl_report_end)(state.dwfl, on_removed, &removed);
  free(list.objects);
  free(state.ranges);
  state.ranges = ranges;
  state.nranges = ranges != NULL ? list.count : 0;
  if (ranges != NULL)
    qsort(ranges, list.count, sizeof(*ranges), compare_ranges);
  if (removed)
    cache_clear();
  state.adds = list.counters[0];
  state.subs = list.counters[1];
}

/* The module holding addr. libdw's lookup may answer with the module
 * below a gap, so its range is checked here. */
static Dwfl_Module* module_at(uintptr_t addr) {
  Dwfl_Module* mod = DW(dwfl_addrmodule)(state.dwfl, addr);
  Dwarf_Addr low;
  Dwarf_Addr high;

  if (mod == NULL)
    return NULL;
  DW(dwfl_module_info)(mod, NULL, &low, &high, NULL, NULL, NULL, NULL);
  return low <= addr && addr < high ? mod : NULL;
}

/* ---- DWARF: lines and inlined frames ------------------------------------ */

/* The linker name of a subprogram or inlined subroutine (through its
 * abstract origin or specification): the mangled name for C++. */
static const char* die_name(Dwarf_Die* die) {
  static const int attrs[] = {DW_AT_linkage_name, DW_AT_MIPS_linkage_name,
                              DW_AT_name};
  Dwarf_Attribute attr;
  size_t i;

  for (i = 0; i < UV_PPROF__ARRAY_SIZE(attrs); i++) {
    const char* s =
        DW(dwarf_formstring)(DW(dwarf_attr_integrate)(die, attrs[i], &attr));
    if (s != NULL)
      return s;
  }
  return NULL;
}

/* Where the inlined subroutine `die` of unit `cu` was called from. */
static void call_site(Dwarf_Die* cu, Dwarf_Die* die, const char** file,
                      int* line) {
  Dwarf_Attribute attr;
  Dwarf_Word index;
  Dwarf_Word lineno;
  Dwarf_Files* files;
  size_t nfiles;

  *file = NULL;
  *line = 0;
  if (DW(dwarf_formudata)(DW(dwarf_attr)(die, DW_AT_call_file, &attr),
                          &index) == 0 &&
      DW(dwarf_getsrcfiles)(cu, &files, &nfiles) == 0 && index < nfiles)
    *file = DW(dwarf_filesrc)(files, index, NULL, NULL);
  if (DW(dwarf_formudata)(DW(dwarf_attr)(die, DW_AT_call_line, &attr),
                          &lineno) == 0)
    *line = (int)lineno;
}

typedef struct {
  fn_range_t* fns;
  size_t count;
  size_t cap;
  int failed;
} fn_list_t;

static void add_function(fn_list_t* list, Dwarf_Die* die) {
  Dwarf_Addr base;
  Dwarf_Addr low;
  Dwarf_Addr high;
  ptrdiff_t off = 0;

  while ((off = DW(dwarf_ranges)(die, off, &base, &low, &high)) > 0) {
    if (list->count == list->cap) {
      size_t cap = list->cap != 0 ? list->cap * 2 : 64;
      fn_range_t* grown = realloc(list->fns, cap * sizeof(*grown));
      if (grown == NULL) {
        list->failed = 1;
        return;
      }
      list->fns = grown;
      list->cap = cap;
    }
    list->fns[list->count].low = low;
    list->fns[list->count].high = high;
    list->fns[list->count].die = DW(dwarf_dieoffset)(die);
    list->count++;
  }
}

/* The subprograms among parent's children, and inside its namespaces and
 * classes (where C++ may define them). */
static void collect_functions(Dwarf_Die* parent, fn_list_t* list) {
  Dwarf_Die child;

  if (DW(dwarf_child)(parent, &child) != 0)
    return;
  do {
    switch (DW(dwarf_tag)(&child)) {
      case DW_TAG_subprogram:
        add_function(list, &child);
        break;
      case DW_TAG_namespace:
      case DW_TAG_class_type:
      case DW_TAG_structure_type:
      case DW_TAG_union_type:
        collect_functions(&child, list);
        break;
      default:
        break;
    }
  } while (!list->failed && DW(dwarf_siblingof)(&child, &child) == 0);
}

static int compare_fn_ranges(const void* a, const void* b) {
  const fn_range_t* x = a;
  const fn_range_t* y = b;

  return (x->low > y->low) - (x->low < y->low);
}

/* The index of unit cu in m, built when new. NULL when out of memory. */
static const cu_index_t* cu_index_of(module_t* m, Dwarf_Die* cu) {
  Dwarf_Off off = DW(dwarf_dieoffset)(cu);
  size_t lo = 0;
  size_t hi = m->ncus;
  fn_list_t list;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->cus[mid].cu == off)
      return &m->cus[mid];
    if (m->cus[mid].cu < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (m->ncus == m->cus_cap) {
    size_t cap = m->cus_cap != 0 ? m->cus_cap * 2 : 16;
    cu_index_t* grown = realloc(m->cus, cap * sizeof(*grown));
    if (grown == NULL)
      return NULL;
    m->cus = grown;
    m->cus_cap = cap;
  }
  memset(&list, 0, sizeof(list));
  collect_functions(cu, &list);
  if (list.failed) {
    free(list.fns);
    return NULL;
  }
  if (list.count != 0)
    qsort(list.fns, list.count, sizeof(*list.fns), compare_fn_ranges);
  memmove(&m->cus[lo + 1], &m->cus[lo], (m->ncus - lo) * sizeof(*m->cus));
  m->cus[lo].cu = off;
  m->cus[lo].fns = list.fns;
  m->cus[lo].count = list.count;
  m->ncus++;
  return &m->cus[lo];
}

/* The subprogram of unit cu holding pc (a DWARF address). Returns 0 and
 * fills *fn, or -1. */
static int find_function(module_t* m, Dwarf_Die* cu, Dwarf_Addr pc,
                         Dwarf_Die* fn) {
  const cu_index_t* index = cu_index_of(m, cu);
  size_t lo = 0;
  size_t hi;

  if (index == NULL)
    return -1;
  hi = index->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (index->fns[mid].low <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || pc >= index->fns[lo - 1].high)
    return -1;
  return DW(dwarf_offdie)(DW(dwarf_cu_getdwarf)(cu->cu), index->fns[lo - 1].die,
                          fn) != NULL
             ? 0
             : -1;
}

static int is_block(int tag) {
  return tag == DW_TAG_lexical_block || tag == DW_TAG_try_block ||
         tag == DW_TAG_catch_block;
}

/* The inlined subroutines inside `parent` whose ranges hold pc, outermost
 * first: chain[depth..cap) is filled, and the total depth returned. Only
 * the scopes that hold pc are entered, so the cost is one function's. */
static int inline_chain(Dwarf_Die* parent, Dwarf_Addr pc, Dwarf_Die* chain,
                        int depth, int cap) {
  Dwarf_Die child;

  if (DW(dwarf_child)(parent, &child) != 0)
    return depth;
  do {
    int tag = DW(dwarf_tag)(&child);
    int has;
    int deeper;
    if (tag != DW_TAG_inlined_subroutine && !is_block(tag))
      continue;
    has = DW(dwarf_haspc)(&child, pc);
    if (has == 1) {
      if (tag == DW_TAG_inlined_subroutine) {
        if (depth < cap)
          chain[depth] = child;
        depth++;
      }
      return inline_chain(&child, pc, chain, depth, cap);
    }
    /* A block with no addresses of its own may still hold the code. */
    if (has == 0 && is_block(tag) && !DW(dwarf_hasattr)(&child, DW_AT_low_pc) &&
        !DW(dwarf_hasattr)(&child, DW_AT_ranges)) {
      deeper = inline_chain(&child, pc, chain, depth, cap);
      if (deeper != depth)
        return deeper;
    }
  } while (DW(dwarf_siblingof)(&child, &child) == 0);
  return depth;
}

static void set_frame(uv_pprof__symbol_t* f, const char* name, const char* file,
                      int line, uintptr_t start, const char* module) {
  f->name = intern(name);
  f->file = intern(file);
  f->line = line;
  f->start = start;
  f->module = module;
  f->nameless = 0;
}

/* The frame of an address in m that nothing names: "<base>+0x<ELF
 * address>", which addr2line on the module (or its debug file) answers. */
static void nameless_frame(const module_t* m, uintptr_t addr,
                           const char* module, uv_pprof__symbol_t* f) {
  char name[PATH_MAX + 32];

  memset(f, 0, sizeof(*f));
  f->module = module;
  if (m == NULL || m->base == NULL)
    return;
  snprintf(name, sizeof(name), "%s+0x%" PRIxPTR, m->base, addr - m->bias);
  f->name = intern(name);
  f->start = addr;
  f->nameless = f->name != NULL;
}

/* Symbolizes addr in mod into f[0..UV_PPROF__MAX_INLINE), innermost first,
 * and returns the count (>= 1). Deeper inlining keeps the outermost frames:
 * each frame's line is where it is in that frame, so the kept ones stay
 * right. An address no symbol and no DWARF names gives one nameless
 * frame. */
static size_t resolve(Dwfl_Module* mod, uintptr_t addr, uv_pprof__symbol_t* f) {
  module_t* m = module_of(mod);
  const sym_t* sym = m != NULL ? symtab_find(m, addr) : NULL;
  const char* module = intern(
      DW(dwfl_module_info)(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL));
  const char* name = sym != NULL ? sym->name : NULL;
  uintptr_t start = sym != NULL ? sym->start : 0;
  Dwarf_Die chain[UV_PPROF__MAX_INLINE];
  Dwarf_Die fn;
  Dwarf_Die* cu;
  Dwarf_Addr bias;
  Dwfl_Line* src;
  const char* file = NULL;
  int line = 0;
  int depth = 0;
  int kept;
  int j;
  size_t n = 0;

  src = DW(dwfl_module_getsrc)(mod, addr);
  if (src != NULL)
    file = DW(dwfl_lineinfo)(src, NULL, &line, NULL, NULL, NULL);
  cu = DW(dwfl_module_addrdie)(mod, addr, &bias);
  if (m != NULL && cu != NULL && find_function(m, cu, addr - bias, &fn) == 0) {
    Dwarf_Addr entry;
    if (name == NULL && DW(dwarf_entrypc)(&fn, &entry) == 0 &&
        (name = die_name(&fn)) != NULL)
      start = (uintptr_t)(entry + bias);
    depth = inline_chain(&fn, addr - bias, chain, 0, UV_PPROF__MAX_INLINE);
  }
  if (name == NULL) {
    void** userdata;
    DW(dwfl_module_info)(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
    nameless_frame(*userdata, addr, module, f);
    return 1;
  }
  /* chain[0] is called from the function, chain[j + 1] from chain[j]; the
   * innermost of all is where the line table says. */
  kept = depth < UV_PPROF__MAX_INLINE - 1 ? depth : UV_PPROF__MAX_INLINE - 1;
  for (j = kept - 1; j >= 0; j--) {
    const char* inlined = die_name(&chain[j]);
    const char* at_file = file;
    int at_line = line;
    if (j + 1 < depth)
      call_site(cu, &chain[j + 1], &at_file, &at_line);
    if (inlined != NULL)
      set_frame(&f[n++], inlined, at_file, at_line, start, module);
  }
  if (depth > 0)
    call_site(cu, &chain[0], &file, &line);
  set_frame(&f[n++], name, file, line, start, module);
  return n;
}

/* ---- the cache ---------------------------------------------------------- */

/* The cache's bound, 16 MiB: 2^17 slots (3 MiB, 98304 answers at 3/4
 * load) and 13 MiB of frames. Addresses come from profiles but also from
 * whoever asks /debug/pprof/symbol, so without a bound each request of fresh
 * addresses kept ~100 bytes per address until the worker idled out. When full,
 * the cache is emptied and starts again: its answers are only ever wanted again
 * by later requests, the strings they point to stay interned, and a profile
 * asks each address once per encode. */
#define CACHE_MAX_SLOTS ((size_t)1 << 17)
#define CACHE_MAX_FRAMES ((size_t)(13 << 20) / sizeof(uv_pprof__symbol_t))

static int cache_grow(void) {
  size_t cap = state.cache != NULL ? state.cache_mask + 1 : 0;
  size_t ncap = cap != 0 ? cap * 2 : 4096;
  cached_t* slots;
  size_t i;
  size_t j;

  slots = calloc(ncap, sizeof(*slots));
  if (slots == NULL)
    return UV_ENOMEM;
  for (i = 0; i < cap; i++) {
    if (state.cache[i].addr == 0)
      continue;
    for (j = uv_pprof__hash64(state.cache[i].addr) & (ncap - 1);
         slots[j].addr != 0; j = (j + 1) & (ncap - 1))
      ;
    slots[j] = state.cache[i];
  }
  free(state.cache);
  state.cache = slots;
  state.cache_mask = ncap - 1;
  return 0;
}

static const cached_t* cache_find(uintptr_t addr) {
  size_t i;

  if (state.cache == NULL)
    return NULL;
  for (i = uv_pprof__hash64(addr) & state.cache_mask; state.cache[i].addr != 0;
       i = (i + 1) & state.cache_mask) {
    if (state.cache[i].addr == addr)
      return &state.cache[i];
  }
  return NULL;
}

/* Remembers f[0..n) for addr, emptying the cache first when it is full;
 * out of memory, the answer is just not kept. */
static void cache_put(uintptr_t addr, const uv_pprof__symbol_t* f, size_t n) {
  size_t i;

  if (state.nframes + n > CACHE_MAX_FRAMES ||
      (state.cache_used + 1) * 4 > CACHE_MAX_SLOTS * 3)
    cache_clear();
  if (state.nframes + n > state.frames_cap) {
    size_t cap = state.frames_cap != 0 ? state.frames_cap * 2 : 4096;
    uv_pprof__symbol_t* frames;
    if (cap > CACHE_MAX_FRAMES)
      cap = CACHE_MAX_FRAMES;
    frames = realloc(state.frames, cap * sizeof(*frames));
    if (frames == NULL)
      return;
    state.frames = frames;
    state.frames_cap = cap;
  }
  if ((state.cache_used + 1) * 4 > (state.cache_mask + 1) * 3 ||
      state.cache == NULL) {
    if (cache_grow() != 0)
      return;
  }
  for (i = uv_pprof__hash64(addr) & state.cache_mask; state.cache[i].addr != 0;
       i = (i + 1) & state.cache_mask)
    ;
  memcpy(state.frames + state.nframes, f, n * sizeof(*f));
  state.cache[i].addr = addr;
  state.cache[i].first = state.nframes;
  state.cache[i].count = n;
  state.nframes += n;
  state.cache_used++;
}

/* ---- entry points ------------------------------------------------------- */

/* Dwfl_Callbacks.find_elf: the module's file as libdw finds it (or its
 * image in memory for the vdso and deleted files), but a file whose build
 * ID is not the one the loader mapped (replaced on disk, truncated) is not
 * read at all: its symbols would name other code. */
static int on_find_elf(Dwfl_Module* mod, void** userdata, const char* name,
                       Dwarf_Addr base, char** file_name, Elf** elfp) {
  const module_t* m = *userdata;
  int fd =
      DW(dwfl_linux_proc_find_elf)(mod, userdata, name, base, file_name, elfp);

  if (fd < 0 || m == NULL || m->id_len == 0 ||
      uv_pprof__elf_has_build_id(fd, m->id, m->id_len))
    return fd;
  close(fd);
  free(*file_name);
  *file_name = NULL;
  return -1;
}

/* The frame of addr when no object holds it: JIT code, or nothing. */
static size_t jit_frame(uintptr_t addr, uv_pprof__symbol_t* out) {
  const char* name;
  uintptr_t start;
  int nameless;

  if (!uv_pprof__jit_lookup(addr, state.ranges, state.nranges, &name, &start,
                            &nameless))
    return 0;
  memset(out, 0, sizeof(*out));
  out->name = intern(name);
  out->start = start;
  out->nameless = nameless;
  return out->name != NULL;
}

/* Copies the outermost `max` of f[0..n) to out. */
static size_t deliver(const uv_pprof__symbol_t* f, size_t n,
                      uv_pprof__symbol_t* out, size_t max) {
  size_t skip = n > max ? n - max : 0;

  memcpy(out, f + skip, (n - skip) * sizeof(*f));
  return n - skip;
}

size_t uv_pprof__symbolize(uintptr_t addr, uv_pprof__symbol_t* out,
                           size_t max) {
  uv_pprof__symbol_t f[UV_PPROF__MAX_INLINE];
  unsigned long long counters[2] = {0, 0};
  const cached_t* hit;
  Dwfl_Module* mod;
  size_t n;

  if (addr == 0 || max == 0)
    return 0;
  if (state.dwfl == NULL) {
    if (uv_pprof__dw_load() != 0)
      return 0;
    callbacks.find_elf = on_find_elf;
    callbacks.find_debuginfo = uv_pprof__find_debuginfo;
    callbacks.debuginfo_path = uv_pprof__debuginfo_path();
    state.dwfl = DW(dwfl_begin)(&callbacks);
    if (state.dwfl == NULL)
      return 0;
    rescan();
  }
  /* 30 ns, and it keeps every answer true after a dlclose. */
  dl_iterate_phdr(on_counters, counters);
  if (counters[1] != state.subs)
    rescan();
  hit = cache_find(addr);
  if (hit != NULL)
    return deliver(state.frames + hit->first, hit->count, out, max);
  mod = module_at(addr);
  if (mod == NULL && counters[0] != state.adds) {
    rescan();
    mod = module_at(addr);
  }
  if (mod == NULL)
    return jit_frame(addr, out);
  n = resolve(mod, addr, f);
  cache_put(addr, f, n);
  return deliver(f, n, out, max);
}

static int free_module(Dwfl_Module* mod, void** userdata, const char* name,
                       Dwarf_Addr base, void* arg) {
  module_free(*userdata);
  *userdata = NULL;
  return DWARF_CB_OK;
}

void uv_pprof__symbolizer_reset(void) {
  chunk_t* c;

  if (state.dwfl != NULL) {
    DW(dwfl_getmodules)(state.dwfl, free_module, NULL, 0);
    DW(dwfl_end)(state.dwfl);
  }
  while ((c = state.chunks) != NULL) {
    state.chunks = c->next;
    free(c);
  }
  free(state.cache);
  free(state.frames);
  free(state.strings);
  free(state.ranges);
  memset(&state, 0, sizeof(state));
  uv_pprof__jit_reset();
}
