/* What symbolize.c asks of its three helpers, in libdw's types: debuginfo.c
 * (which files may speak for a module), plt.c (names for PLT stubs) and
 * jit.c (names for code that no loaded object holds). Worker thread only, like
 * the symbolizer. */
#ifndef UV_PPROF_SYMBOLS_H
#define UV_PPROF_SYMBOLS_H

#include "dw.h"
#include "proc.h"

/* ---- src/debuginfo.c: the files behind a module ------------------------- */

/* Whether the ELF file open on fd carries the GNU build ID id[0..len)
 * (a truncated or foreign file does not). fd stays open and unmoved. */
int uv_pprof__elf_has_build_id(int fd, const unsigned char* id, size_t len);
/* Dwfl_Callbacks.find_debuginfo: the module's separate debug file, found
 * locally only and checked (see debuginfo.c). Returns an open fd and sets
 * *debuginfo_file_name (malloc'd, libdw frees it), or returns -1 with it
 * NULL. */
int uv_pprof__find_debuginfo(Dwfl_Module* mod, void** userdata,
                             const char* modname, Dwarf_Addr base,
                             const char* file_name, const char* debuglink,
                             GElf_Word crc, char** debuginfo_file_name);
/* Dwfl_Callbacks.debuginfo_path: the roots, as libdw reads them for its
 * build ID lookups. */
char** uv_pprof__debuginfo_path(void);

/* ---- src/plt.c: PLT stubs ---------------------------------------------- */

typedef struct {
  uintptr_t start;  /* runtime addresses */
  uintptr_t end;    /* exclusive */
  const char* name; /* "malloc@plt", in the table's names */
} uv_pprof__plt_stub_t;

typedef struct {
  uv_pprof__plt_stub_t* stubs; /* in section order */
  size_t count;
  char* names;
} uv_pprof__plt_t;

/* Names the PLT stubs of elf (loaded at `bias`) whose targets its
 * relocations tell; the rest of its PLT (the resolver's entry) stays
 * unnamed. Fills *out (free it with uv_pprof__plt_free; empty when elf is
 * NULL, has no PLT or is not x86-64). Returns 0 or UV_ENOMEM. */
int uv_pprof__plt_read(Elf* elf, uintptr_t bias, uv_pprof__plt_t* out);
void uv_pprof__plt_free(uv_pprof__plt_t* plt);

/* ---- src/jit.c: JIT code ------------------------------------------------ */

/* Names addr, an address no loaded object holds: from the process's perf
 * map (/tmp/perf-<pid>.map) when a line covers it, *nameless 0 and *start
 * that line's start; else "[jit]" when it lies in executable memory no
 * file backs, *nameless 1 and *start addr. `objects` are the loaded
 * objects' ranges sorted by start: map lines overlapping one are never
 * used. Returns 1, or 0 when addr is no JIT code. *name stays valid until
 * the next call. */
int uv_pprof__jit_lookup(uintptr_t addr, const uv_pprof__range_t* objects,
                         size_t nobjects, const char** name, uintptr_t* start,
                         int* nameless);
/* Forgets the map and the memory ranges read so far. */
void uv_pprof__jit_reset(void);

#endif /* UV_PPROF_SYMBOLS_H */
