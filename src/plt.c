/* Names for an object's PLT stubs, "malloc@plt" as objdump and perf call
 * them. A stub has no symbol, yet a sample lands in one whenever a thread
 * is caught between a call and the jump to its target (a loop preempted
 * there, a stall sampled there); nameless, it would leave its mapping's
 * has_functions false. A stub is named from the GOT slot its indirect jump
 * reads, by the relocation that fills that slot; a lazy stub without such a
 * jump (the first half of an IBT PLT) by the .rela.plt index it pushes.
 * x86-64 only; worker thread, called by symbolize.c. */
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "symbols.h"

#if defined(__x86_64__)

#define MIN_STUB 8
#define MAX_STUB 32

/* A GOT slot and what fills it. */
typedef struct {
  GElf_Addr slot;
  const char* name;
  size_t index; /* in its section, for a JUMP_SLOT ("push index") */
  int jump_slot;
} reloc_t;

typedef struct {
  reloc_t* v;
  size_t n;
  size_t cap;
} relocs_t;

static int compare_relocs(const void* a, const void* b) {
  const reloc_t* x = a;
  const reloc_t* y = b;

  return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static int add_reloc(relocs_t* r, const reloc_t* one) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 64;
    reloc_t* v = realloc(r->v, cap * sizeof(*v));
    if (v == NULL)
      return UV_ENOMEM;
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = *one;
  return 0;
}

/* The JUMP_SLOT and GLOB_DAT relocations of every SHT_RELA section, with
 * their symbols' names (from the symbol table each section links to). */
static int read_relocs(Elf* elf, relocs_t* r) {
  Elf_Scn* scn = NULL;

  while ((scn = DW(elf_nextscn)(elf, scn)) != NULL) {
    GElf_Shdr shdr;
    GElf_Shdr symshdr;
    Elf_Scn* symscn;
    Elf_Data* data;
    Elf_Data* syms;
    size_t i;
    size_t n;

    if (DW(gelf_getshdr)(scn, &shdr) == NULL || shdr.sh_type != SHT_RELA ||
        shdr.sh_entsize == 0 ||
        (symscn = DW(elf_getscn)(elf, shdr.sh_link)) == NULL ||
        DW(gelf_getshdr)(symscn, &symshdr) == NULL ||
        (data = DW(elf_getdata)(scn, NULL)) == NULL ||
        (syms = DW(elf_getdata)(symscn, NULL)) == NULL)
      continue;
    n = shdr.sh_size / shdr.sh_entsize;
    for (i = 0; i < n; i++) {
      GElf_Rela rela;
      GElf_Sym sym;
      reloc_t one;
      unsigned type;
      if (DW(gelf_getrela)(data, (int)i, &rela) == NULL)
        break;
      type = (unsigned)GELF_R_TYPE(rela.r_info);
      if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) ||
          GELF_R_SYM(rela.r_info) == 0 ||
          DW(gelf_getsym)(syms, (int)GELF_R_SYM(rela.r_info), &sym) == NULL)
        continue;
      one.name = DW(elf_strptr)(elf, symshdr.sh_link, sym.st_name);
      if (one.name == NULL || one.name[0] == '\0')
        continue;
      one.slot = rela.r_offset;
      one.index = i;
      one.jump_slot = type == R_X86_64_JUMP_SLOT;
      if (add_reloc(r, &one) != 0)
        return UV_ENOMEM;
    }
  }
  if (r->n > 0)
    qsort(r->v, r->n, sizeof(*r->v), compare_relocs);
  return 0;
}

static const reloc_t* reloc_at(const relocs_t* r, GElf_Addr slot) {
  reloc_t key;

  key.slot = slot;
  return r->n == 0 ? NULL
                   : bsearch(&key, r->v, r->n, sizeof(*r->v), compare_relocs);
}

static const reloc_t* pushed(const relocs_t* r, uint32_t index) {
  size_t i;

  for (i = 0; i < r->n; i++)
    if (r->v[i].jump_slot && r->v[i].index == index)
      return &r->v[i];
  return NULL;
}

/* What the stub at `addr` (ELF address) with bytes code[0..len) jumps
 * through, or NULL: its first `jmp *disp32(%rip)` (ff 25), else its
 * `push imm32` (68) of a .rela.plt index. */
static const reloc_t* stub_target(const relocs_t* r, GElf_Addr addr,
                                  const unsigned char* code, size_t len) {
  size_t i;

  for (i = 0; i + 6 <= len; i++) {
    int32_t disp;
    if (code[i] != 0xff || code[i + 1] != 0x25)
      continue;
    memcpy(&disp, code + i + 2, sizeof(disp));
    return reloc_at(r, addr + i + 6 + (GElf_Addr)(int64_t)disp);
  }
  for (i = 0; i + 5 <= len; i++) {
    uint32_t index;
    if (code[i] != 0x68)
      continue;
    memcpy(&index, code + i + 1, sizeof(index));
    return pushed(r, index);
  }
  return NULL;
}

/* Whether scn is a PLT section (.plt, .plt.sec, .plt.got) of stubs of a
 * size we read; its header in *shdr. */
static int plt_section(Elf* elf, Elf_Scn* scn, size_t shstrndx,
                       GElf_Shdr* shdr) {
  const char* name;

  if (DW(gelf_getshdr)(scn, shdr) == NULL || shdr->sh_entsize < MIN_STUB ||
      shdr->sh_entsize > MAX_STUB ||
      (name = DW(elf_strptr)(elf, shstrndx, shdr->sh_name)) == NULL)
    return 0;
  return strcmp(name, ".plt") == 0 || strcmp(name, ".plt.sec") == 0 ||
         strcmp(name, ".plt.got") == 0;
}

/* Appends the stubs of one PLT section to out->stubs (room for all of them
 * is there) and their names to `names` (room too), returning the bytes of
 * names used. */
static size_t name_section(const relocs_t* r, const GElf_Shdr* shdr,
                           const Elf_Data* data, uintptr_t bias,
                           uv_pprof__plt_t* out, char* names) {
  size_t size = shdr->sh_entsize;
  size_t used = 0;
  size_t at;

  for (at = 0; at + size <= data->d_size && at + size <= shdr->sh_size;
       at += size) {
    const reloc_t* t = stub_target(
        r, shdr->sh_addr + at, (const unsigned char*)data->d_buf + at, size);
    uv_pprof__plt_stub_t* s;
    size_t len;
    if (t == NULL)
      continue;
    len = strlen(t->name);
    s = &out->stubs[out->count++];
    s->start = (uintptr_t)(shdr->sh_addr + at + bias);
    s->end = s->start + size;
    s->name = names + used;
    memcpy(names + used, t->name, len);
    memcpy(names + used + len, "@plt", sizeof("@plt"));
    used += len + sizeof("@plt");
  }
  return used;
}

/* How many stubs elf's PLT sections may hold, and the bytes their names
 * may need. */
static size_t count_stubs(Elf* elf, size_t shstrndx, const relocs_t* r,
                          size_t* bytes) {
  Elf_Scn* scn = NULL;
  size_t longest = 0;
  size_t stubs = 0;
  size_t i;

  for (i = 0; i < r->n; i++)
    if (strlen(r->v[i].name) > longest)
      longest = strlen(r->v[i].name);
  while ((scn = DW(elf_nextscn)(elf, scn)) != NULL) {
    GElf_Shdr shdr;
    if (plt_section(elf, scn, shstrndx, &shdr))
      stubs += shdr.sh_size / shdr.sh_entsize;
  }
  *bytes = stubs * (longest + sizeof("@plt"));
  return stubs;
}

int uv_pprof__plt_read(Elf* elf, uintptr_t bias, uv_pprof__plt_t* out) {
  relocs_t r = {NULL, 0, 0};
  Elf_Scn* scn = NULL;
  size_t shstrndx;
  size_t stubs;
  size_t bytes;
  size_t used = 0;
  int err;

  memset(out, 0, sizeof(*out));
  if (elf == NULL || DW(elf_getshdrstrndx)(elf, &shstrndx) != 0)
    return 0;
  err = read_relocs(elf, &r);
  if (err != 0 || r.n == 0 ||
      (stubs = count_stubs(elf, shstrndx, &r, &bytes)) == 0) {
    free(r.v);
    return err;
  }
  out->stubs = malloc(stubs * sizeof(*out->stubs));
  out->names = malloc(bytes);
  if (out->stubs == NULL || out->names == NULL) {
    free(r.v);
    uv_pprof__plt_free(out);
    return UV_ENOMEM;
  }
  while ((scn = DW(elf_nextscn)(elf, scn)) != NULL) {
    GElf_Shdr shdr;
    Elf_Data* data;
    if (!plt_section(elf, scn, shstrndx, &shdr) ||
        (data = DW(elf_getdata)(scn, NULL)) == NULL || data->d_buf == NULL)
      continue;
    used += name_section(&r, &shdr, data, bias, out, out->names + used);
  }
  free(r.v);
  return 0;
}

#else

int uv_pprof__plt_read(Elf* elf, uintptr_t bias, uv_pprof__plt_t* out) {
  (void)elf;
  (void)bias;
  memset(out, 0, sizeof(*out));
  return 0;
}

#endif

void uv_pprof__plt_free(uv_pprof__plt_t* plt) {
  free(plt->stubs);
  free(plt->names);
  memset(plt, 0, sizeof(*plt));
}
