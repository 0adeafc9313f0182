/* libdw, loaded with dlopen on first use instead of linked: linking it (with
 * libelf, liblzma and libbz2 behind it) cost every host ~800 KiB of RSS even
 * with UV_PPROF unset, and only the symbolizer and the CPU unwinder need it,
 * on the worker thread, after a request. Calls go through DW(name)(...), a
 * table of pointers with libdw's own prototypes. */
#ifndef UV_PPROF_DW_H
#define UV_PPROF_DW_H

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>

/* clang-format off */
#define UV_PPROF__DW_FUNCTIONS(X)                                          \
  X(dwarf_attr) X(dwarf_attr_integrate) X(dwarf_child) X(dwarf_cu_getdwarf) \
  X(dwarf_dieoffset) X(dwarf_entrypc) X(dwarf_filesrc) X(dwarf_formstring)  \
  X(dwarf_formudata) X(dwarf_getscopes) X(dwarf_getsrcfiles)                \
  X(dwarf_haspc) X(dwarf_hasattr) X(dwarf_offdie) X(dwarf_ranges)          \
  X(dwarf_siblingof) X(dwarf_tag)                                          \
  X(dwarf_cfi_addrframe) X(dwarf_frame_cfa) X(dwarf_frame_info)          \
  X(dwarf_frame_register) X(dwfl_module_eh_cfi)                            \
  X(dwelf_elf_gnu_build_id) X(dwelf_elf_gnu_debuglink)                     \
  X(dwfl_addrmodule) X(dwfl_attach_state) X(dwfl_begin) X(dwfl_end)        \
  X(dwfl_frame_pc) X(dwfl_getmodules) X(dwfl_getthread_frames)             \
  X(dwfl_lineinfo) X(dwfl_linux_proc_find_elf) X(dwfl_linux_proc_report)   \
  X(dwfl_module_addrdie) X(dwfl_module_getsrc) X(dwfl_module_getsym_info)  \
  X(dwfl_module_getsymtab) X(dwfl_module_info) X(dwfl_report_begin)        \
  X(dwfl_report_end) X(dwfl_report_module)                                 \
  X(dwfl_build_id_find_debuginfo) X(dwfl_module_build_id)                 \
  X(dwfl_module_getelf) X(dwfl_thread_state_register_pc)                   \
  X(dwfl_thread_state_registers)                                           \
  X(elf_begin) X(elf_end) X(elf_getdata) X(elf_getscn)                     \
  X(elf_getshdrstrndx) X(elf_kind) X(elf_nextscn) X(elf_strptr)            \
  X(elf_version) X(gelf_getrela) X(gelf_getshdr) X(gelf_getsym)
/* clang-format on */

typedef struct uv_pprof__dw_s {
#define UV_PPROF__DW_POINTER(name) __typeof__(name)* name;
  UV_PPROF__DW_FUNCTIONS(UV_PPROF__DW_POINTER)
#undef UV_PPROF__DW_POINTER
} uv_pprof__dw_t;

extern uv_pprof__dw_t uv_pprof__dw;

#define DW(name) (uv_pprof__dw.name)

/* Loads libdw.so.1 and fills uv_pprof__dw, once. Returns 0, or UV_ENOSYS
 * when libdw (Debian's libdw1) cannot be loaded: profiles then stay
 * unsymbolized. Worker thread. */
int uv_pprof__dw_load(void);

#endif /* UV_PPROF_DW_H */
