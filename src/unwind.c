/* Unwinding of the CPU sampler's stack copies, on the worker. libdw's CFI
 * unwinder (dwfl_getthread_frames, reading memory only from the copy) is
 * exact but costs about a microsecond per frame, most of it finding and
 * interpreting the same rows of .eh_frame again and again. So the row of
 * each code address is asked of libdw once and kept as a compact rule (the
 * CFA is a register plus an offset; each register is undefined, unchanged,
 * saved at CFA + offset or equal to CFA + offset), in a table by address
 * that is emptied whenever the loader's objects change; a sample whose
 * frames all have such rules is unwound by table lookups over the copy, any
 * other (no CFI, expressions, signal frames) by libdw itself from its first
 * frame, so both give the same stacks. docs/INTERNALS.md, "CPU sampler". */
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dw.h"
#include "hash.h"
#include "proc.h"

#define NREGS UV_PPROF__NREGS
#define PC_REG (NREGS - 1)

#if defined(__x86_64__)
/* The rule table: x86-64's DWARF registers 0-16, 16 (rip) holding the
 * return address; libdw's unwinder tracks exactly these. */
#define RULES 1
#define RA_REG 16
#define RULES_MIN 1024
#define RULES_MAX (64 * 1024) /* entries; a full table is emptied */

enum { R_UNDEF, R_SAME, R_AT, R_VAL };
enum { RULE_EMPTY, RULE_OK, RULE_LIBDW };

typedef struct {
  uintptr_t pc; /* the address looked up (a return address - 1 above the
                   first frame) */
  uint8_t kind;
  uint8_t cfa_reg;
  uint8_t how[NREGS];
  int32_t cfa_off;
  int32_t off[NREGS];
} rule_t;
#else
#define RULES 0
#endif

static struct {
  Dwfl* dwfl;
  int attached;
  /* The executable, opened for the session's register layout (see
   * attach); closed after the session ends. */
  Elf* elf;
  int elf_fd;
  pid_t pid;
  unsigned long long adds;
  unsigned long long subs;
  const uv_pprof__stack_copy_t* current; /* being unwound by libdw */
#if RULES
  rule_t* rules;
  size_t nrules;
  size_t cap; /* a power of 2, or 0 */
#endif
  uv_pprof__unwind_stats_t stats;
} U;

/* ---- libdw's unwinder --------------------------------------------------- */

static bool copy_read(const uv_pprof__stack_copy_t* c, uintptr_t addr,
                      uint64_t* out) {
  if (addr < c->stack_addr || c->stack_len < sizeof(*out) ||
      addr - c->stack_addr > c->stack_len - sizeof(*out))
    return false;
  memcpy(out, c->stack + (addr - c->stack_addr), sizeof(*out));
  return true;
}

/* The stack copy is all the memory the unwinder may read: the thread has
 * long moved on, and reading live memory could fault on an unmapped page. */
static bool memory_read(Dwfl* dwfl, Dwarf_Addr addr, Dwarf_Word* result,
                        void* arg) {
  uint64_t v;

  if (U.current == NULL || !copy_read(U.current, (uintptr_t)addr, &v))
    return false;
  *result = v;
  return true;
}

static pid_t next_thread(Dwfl* dwfl, void* arg, void** thread_arg) {
  return 0;
}

static bool get_thread(Dwfl* dwfl, pid_t tid, void* arg, void** thread_arg) {
  *thread_arg = (void*)U.current;
  return true;
}

/* A copy that knows only some registers (a blocked thread's sp and pc)
 * gives libdw those alone: the others stay unknown, as libdw's own frames
 * leave a register no rule recovers. */
static bool initial_registers(Dwfl_Thread* thread, void* thread_arg) {
  const uv_pprof__stack_copy_t* c = thread_arg;
  int i;

#if defined(__aarch64__)
  if (c->known == UV_PPROF__REGS_ALL) {
    if (!DW(dwfl_thread_state_registers)(thread, 0, NREGS - 1, c->regs))
      return false;
  } else {
    for (i = 0; i < NREGS - 1; i++)
      if (((c->known >> i) & 1) &&
          !DW(dwfl_thread_state_registers)(thread, i, 1, &c->regs[i]))
        return false;
  }
  DW(dwfl_thread_state_register_pc)(thread, c->regs[PC_REG]);
  return true;
#else
  if (c->known == UV_PPROF__REGS_ALL)
    return DW(dwfl_thread_state_registers)(thread, 0, NREGS, c->regs);
  for (i = 0; i < NREGS; i++)
    if (((c->known >> i) & 1) &&
        !DW(dwfl_thread_state_registers)(thread, i, 1, &c->regs[i]))
      return false;
  return true;
#endif
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = initial_registers,
};

/* .eh_frame in the objects themselves is all unwinding needs: no search
 * for separate debug files (nor debuginfod, which may be configured). */
static int no_debuginfo(Dwfl_Module* mod, void** userdata, const char* name,
                        Dwarf_Addr base, const char* file_name,
                        const char* debuglink_file, GElf_Word debuglink_crc,
                        char** debuginfo_file_name) {
  return -1;
}

static Dwfl_Callbacks proc_callbacks = {.find_debuginfo = no_debuginfo};

typedef struct {
  uintptr_t* pcs;
  size_t n;
  size_t max;
} frames_t;

static int on_frame(Dwfl_Frame* frame, void* arg) {
  frames_t* f = arg;
  Dwarf_Addr pc;
  bool activation;

  if (!DW(dwfl_frame_pc)(frame, &pc, &activation))
    return DWARF_CB_ABORT;
  if (!activation && pc > 0)
    pc--; /* a return address: the call is the instruction before it */
  f->pcs[f->n++] = (uintptr_t)pc;
  return f->n < f->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

static size_t unwind_libdw(const uv_pprof__stack_copy_t* c, uintptr_t* pcs,
                           size_t max, int* complete) {
  frames_t f = {pcs, 0, max};
  int rc = -1;

  if (U.attached) {
    U.current = c;
    /* Its end is often reported as an error; the frames found count. 0:
     * it walked to the outermost frame. */
    rc = DW(dwfl_getthread_frames)(U.dwfl, c->tid, on_frame, &f);
    U.current = NULL;
  }
  *complete = rc == 0;
  return f.n;
}

/* ---- the rule table ----------------------------------------------------- */

#if RULES
static void forget_rules(void) {
  free(U.rules);
  U.rules = NULL;
  U.nrules = U.cap = 0;
}

/* The slot of pc: its rule, or the empty slot it goes in. */
static rule_t* slot_of(uintptr_t pc) {
  size_t mask = U.cap - 1;
  size_t i = (size_t)uv_pprof__hash64(pc) & mask;

  while (U.rules[i].kind != RULE_EMPTY && U.rules[i].pc != pc)
    i = (i + 1) & mask;
  return &U.rules[i];
}

static int grow_rules(void) {
  rule_t* old = U.rules;
  size_t n = U.cap;
  size_t cap = n == 0 ? RULES_MIN : n * 2;
  size_t i;

  if (cap > RULES_MAX) {
    forget_rules(); /* start again rather than grow without bound */
    cap = RULES_MIN;
    old = NULL;
    n = 0;
  }
  U.rules = calloc(cap, sizeof(*U.rules));
  if (U.rules == NULL) {
    U.rules = old;
    return -1;
  }
  U.cap = cap;
  for (i = 0; i < n; i++)
    if (old[i].kind != RULE_EMPTY)
      *slot_of(old[i].pc) = old[i];
  free(old);
  return 0;
}

/* One register's rule from libdw's description of it; 0 when it is not one
 * the table can hold. */
static int reg_rule(Dwarf_Frame* frame, int regno, uint8_t* how, int32_t* off) {
  Dwarf_Op mem[3];
  Dwarf_Op* ops;
  size_t nops;
  size_t i = 1;
  int64_t v = 0;

  if (DW(dwarf_frame_register)(frame, regno, mem, &ops, &nops) != 0)
    return 0;
  if (nops == 0) {
    /* libdw.h: ops_mem means undefined, NULL unchanged ("same_value") */
    if (ops != NULL && ops != mem)
      return 0;
    *how = ops == NULL ? R_SAME : R_UNDEF;
    *off = 0;
    return 1;
  }
  if (ops[0].atom != DW_OP_call_frame_cfa)
    return 0;
  if (i < nops && ops[i].atom == DW_OP_plus_uconst)
    v = (int64_t)ops[i++].number;
  *how = R_AT;
  if (i < nops && ops[i].atom == DW_OP_stack_value) {
    *how = R_VAL;
    i++;
  }
  if (i != nops || v < INT32_MIN || v > INT32_MAX)
    return 0;
  *off = (int32_t)v;
  return 1;
}

/* Fills r from libdw's CFI row for pc; RULE_LIBDW when there is none that
 * the table can express (libdw then also tries .debug_frame and frame
 * pointers, or evaluates expressions). */
static void make_rule(rule_t* r, uintptr_t pc) {
  Dwfl_Module* mod = DW(dwfl_addrmodule)(U.dwfl, pc);
  Dwarf_CFI* cfi;
  Dwarf_Frame* frame = NULL;
  Dwarf_Addr bias;
  Dwarf_Addr start;
  Dwarf_Addr end;
  Dwarf_Op* ops;
  size_t nops;
  bool signal;
  int ok = 0;
  int i;

  memset(r, 0, sizeof(*r));
  r->pc = pc;
  r->kind = RULE_LIBDW;
  U.stats.rules++;
  if (mod == NULL || (cfi = DW(dwfl_module_eh_cfi)(mod, &bias)) == NULL ||
      DW(dwarf_cfi_addrframe)(cfi, pc - bias, &frame) != 0)
    return;
  if (DW(dwarf_frame_info)(frame, &start, &end, &signal) == RA_REG && !signal &&
      DW(dwarf_frame_cfa)(frame, &ops, &nops) == 0 && nops == 1) {
    int64_t off = (int64_t)ops[0].number2;
    int reg = -1;
    if (ops[0].atom == DW_OP_bregx)
      reg = (int)ops[0].number;
    else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
      reg = ops[0].atom - DW_OP_breg0;
      off = (int64_t)ops[0].number;
    }
    ok = reg >= 0 && reg < NREGS && off >= INT32_MIN && off <= INT32_MAX;
    r->cfa_reg = (uint8_t)reg;
    r->cfa_off = (int32_t)off;
    for (i = 0; ok && i < NREGS; i++)
      ok = reg_rule(frame, i, &r->how[i], &r->off[i]);
  }
  free(frame);
  if (ok)
    r->kind = RULE_OK;
}

static const rule_t* rule_for(uintptr_t pc) {
  rule_t* r;

  if ((U.nrules + 1) * 2 > U.cap && grow_rules() != 0)
    return NULL;
  r = slot_of(pc);
  if (r->kind == RULE_EMPTY) {
    make_rule(r, pc);
    U.nrules++;
  }
  return r;
}

#define RBP_REG 6
#define RSP_REG 7
#define FP_SCAN 4096 /* bytes above sp searched for a saved frame pointer */

/* The bytes come by process_vm_readv, not loads: an address not mapped is
 * an error, not a fault. */
int uv_pprof__after_call(uintptr_t ra) {
  unsigned char b[9];
  struct iovec local = {b, sizeof(b)};
  struct iovec remote = {(void*)(ra - sizeof(b)), sizeof(b)};
  size_t len;

  if (ra < sizeof(b) || syscall(SYS_process_vm_readv, (long)getpid(), &local,
                                1L, &remote, 1L, 0UL) != (long)sizeof(b))
    return 0;
  if (b[sizeof(b) - 5] == 0xe8)
    return 1;
  for (len = 2; len <= 8; len++) {
    const unsigned char* op = b + sizeof(b) - len;
    size_t need = 2;
    unsigned mod;
    unsigned rm;
    /* `need` bytes from the start are read only when need <= len: they
     * lie in b (fuzz_unwind found a read past it). */
    if (op[0] >= 0x40 && op[0] <= 0x4f) { /* REX */
      op++;
      need++;
    }
    if (need > len || op[0] != 0xff || ((op[1] >> 3) & 7) != 2)
      continue;
    mod = op[1] >> 6;
    rm = op[1] & 7;
    if (mod != 3 && rm == 4) {
      if (++need > len) /* SIB */
        continue;
      if (mod == 0 && (op[2] & 7) == 5)
        need += 4;
    }
    if (mod == 0 && rm == 5)
      need += 4; /* rip-relative */
    else if (mod == 1)
      need += 1;
    else if (mod == 2)
      need += 4;
    if (need == len)
      return 1;
  }
  return 0;
}

/* A copy of a thread blocked in a system call knows sp and pc only: a
 * caller built with frame pointers (its CFA is rbp + 16) cannot be unwound
 * without rbp, which no rule of the inner frames (libc's, without frame
 * pointers) restored. rbp then points at the frame's saved-rbp slot, with
 * the return address above it: the first slot above sp where the saved
 * rbp is 0 or further up the stack and the next word returns into known
 * code right after a call instruction is taken as rbp. Returns 0 when one
 * is found. */
static int find_frame_pointer(const uv_pprof__stack_copy_t* c, uint64_t sp,
                              uint64_t* rbp) {
  uint64_t at;

  for (at = (sp + 7) & ~(uint64_t)7; at < sp + FP_SCAN; at += 8) {
    uint64_t saved;
    uint64_t ra;
    if (!copy_read(c, (uintptr_t)at, &saved) ||
        !copy_read(c, (uintptr_t)at + 8, &ra))
      return -1; /* the end of the copy */
    if ((saved == 0 || (saved > at && saved - at < (1u << 20))) && ra > 1 &&
        DW(dwfl_addrmodule)(U.dwfl, (Dwarf_Addr)(ra - 1)) != NULL &&
        uv_pprof__after_call((uintptr_t)ra)) {
      *rbp = at;
      return 0;
    }
  }
  return -1;
}

/* What libdw's unwinder does with the same rows (frame_unwind.c): the
 * first frame is looked up at its pc, every caller at its return address
 * - 1; a register whose rule cannot be evaluated (not known, or its slot
 * outside the copy) becomes unknown; an undefined return address or a zero
 * one ends the stack; an unknown one ends it too. Returns the number of
 * frames, or 0 when a frame needs libdw; *complete is 1 when the last
 * frame is the outermost one (its return address undefined). */
static size_t unwind_rules(const uv_pprof__stack_copy_t* c, uintptr_t* pcs,
                           size_t max, int* complete) {
  uint64_t regs[NREGS];
  uint64_t next[NREGS];
  uint32_t known = (uint32_t)(c->known & ((1u << NREGS) - 1));
  uintptr_t pc = (uintptr_t)c->regs[PC_REG];
  size_t n = 0;
  int i;

  memcpy(regs, c->regs, sizeof(regs));
  *complete = 0;
  while (n < max) {
    uintptr_t at = n == 0 ? pc : pc - 1;
    const rule_t* r = rule_for(at);
    uint32_t now = 0;
    uint32_t cfa_known;
    uint64_t cfa;
    if (r == NULL || r->kind != RULE_OK)
      return 0;
    pcs[n++] = at;
    if (n == max)
      break;
    cfa_known = (known >> r->cfa_reg) & 1;
    if (!cfa_known && r->cfa_reg == RBP_REG && ((known >> RSP_REG) & 1) &&
        find_frame_pointer(c, regs[RSP_REG], &regs[RBP_REG]) == 0) {
      known |= 1u << RBP_REG;
      cfa_known = 1;
    }
    cfa = regs[r->cfa_reg] + (uint64_t)(int64_t)r->cfa_off;
    for (i = 0; i < NREGS; i++) {
      uint64_t where = cfa + (uint64_t)(int64_t)r->off[i];
      switch (r->how[i]) {
        case R_SAME:
          next[i] = regs[i];
          now |= known & (1u << i);
          break;
        case R_AT:
          if (cfa_known && copy_read(c, (uintptr_t)where, &next[i]))
            now |= 1u << i;
          break;
        case R_VAL:
          next[i] = where;
          now |= (uint32_t)cfa_known << i;
          break;
        default:
          if (i == RA_REG) {
            *complete = 1; /* the outermost frame */
            return n;
          }
          break;
      }
    }
    if (!(now & (1u << RA_REG)) || next[RA_REG] == 0)
      break;
    memcpy(regs, next, sizeof(regs));
    known = now;
    pc = (uintptr_t)regs[RA_REG];
  }
  return n;
}

/* Whether the CFI row of pc leaves the return address undefined: the
 * thread's outermost frame (_start, clone3). libdw also ends a stack
 * without an error where the return address it read is 0, which a frame it
 * misread gives too (a leaf interrupted in an epilogue under JIT code):
 * that stack is not complete. */
static int outermost(uintptr_t pc) {
  const rule_t* r = rule_for(pc);

  return r != NULL && r->kind == RULE_OK && r->how[RA_REG] == R_UNDEF;
}
#endif

/* ---- the interface ------------------------------------------------------ */

static int count_objects(struct dl_phdr_info* info, size_t size, void* arg) {
  unsigned long long* counts = arg;

  if (size <
      offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    counts[0] = counts[1] = ~0ull; /* unknown: report every time */
  } else {
    counts[0] = info->dlpi_adds;
    counts[1] = info->dlpi_subs;
  }
  return 1;
}

/* Attaches libdw's unwinder with the register layout of an ELF file of our
 * own, the executable. Given none, libdw borrows the layout of the first
 * module it knows, and frees it with that module: the executable's module
 * is replaced at a later report whenever libdw's own mapping of the file
 * (to read its CFI) changes its range in /proc/self/maps, and the next
 * unwind then read freed memory and aborted the process (found by
 * fuzz_unwind). */
static void attach(void) {
  U.elf_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (U.elf_fd < 0)
    return;
  DW(elf_version)(EV_CURRENT);
  U.elf = DW(elf_begin)(U.elf_fd, ELF_C_READ_MMAP, NULL);
  if (U.elf != NULL)
    U.attached =
        DW(dwfl_attach_state)(U.dwfl, U.elf, U.pid, &thread_callbacks, NULL);
  if (!U.attached) {
    if (U.elf != NULL)
      DW(elf_end)(U.elf);
    close(U.elf_fd);
    U.elf = NULL;
    U.elf_fd = -1;
  }
}

void uv_pprof__unwind_refresh(void) {
  unsigned long long counts[2] = {~0ull, ~0ull};

  if (U.dwfl == NULL && uv_pprof__dw_load() != 0)
    return; /* no libdw: samples keep their leaf frame only */
  /* Counted after loading libdw, which loads objects itself. */
  dl_iterate_phdr(count_objects, counts);
  if (U.dwfl != NULL && counts[0] == U.adds && counts[1] == U.subs &&
      counts[0] != ~0ull)
    return;
#if RULES
  if (U.nrules > 0) {
    forget_rules(); /* rules of code that may be gone */
    U.stats.flushes++;
  }
#endif
  if (U.dwfl == NULL) {
    proc_callbacks.find_elf = DW(dwfl_linux_proc_find_elf);
    U.dwfl = DW(dwfl_begin)(&proc_callbacks);
    if (U.dwfl == NULL)
      return;
    U.pid = getpid();
  }
  DW(dwfl_report_begin)(U.dwfl);
  if (DW(dwfl_linux_proc_report)(U.dwfl, U.pid) != 0) {
    DW(dwfl_report_end)(U.dwfl, NULL, NULL);
    return;
  }
  DW(dwfl_report_end)(U.dwfl, NULL, NULL);
  if (!U.attached)
    attach();
  U.adds = counts[0];
  U.subs = counts[1];
}

size_t uv_pprof__unwind(const uv_pprof__stack_copy_t* c, int how,
                        uintptr_t* pcs, size_t max, int* complete) {
  size_t n = 0;
  int done = 0;

#if RULES
  if (how == UV_PPROF__UNWIND_RULES && U.attached) {
    n = unwind_rules(c, pcs, max, &done);
    if (n > 0)
      U.stats.by_rules++;
  }
#endif
  if (n == 0) {
    n = unwind_libdw(c, pcs, max, &done);
    U.stats.by_libdw++;
#if RULES
    if (done && n > 0 && !outermost(pcs[n - 1]))
      done = 0;
#endif
  }
  if (n == 0) {
    pcs[n++] = (uintptr_t)c->regs[PC_REG];
    done = 0;
  }
  if (complete != NULL)
    *complete = done;
  return n;
}

void uv_pprof__unwind_stats(uv_pprof__unwind_stats_t* st) {
  *st = U.stats;
#if RULES
  st->cached = U.nrules;
#else
  st->cached = 0;
#endif
}

void uv_pprof__unwind_reset(void) {
#if RULES
  forget_rules();
#endif
  if (U.dwfl != NULL)
    DW(dwfl_end)(U.dwfl);
  if (U.elf != NULL) {
    DW(elf_end)(U.elf);
    close(U.elf_fd);
  }
  U.elf = NULL;
  U.dwfl = NULL;
  U.attached = 0;
  U.adds = U.subs = 0;
}
