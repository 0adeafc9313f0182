/* Tests on what the fuzzers of test/fuzz found.
 *
 * unwind_libdw_across_reloads (fuzz_unwind found it): libdw's session took
 * its register layout from the first module it knew; when a dlopen made
 * the unwinder report the process's modules again, that module could be
 * replaced and the layout freed, and libdw's next unwind read freed memory
 * and aborted the process (an assertion in dwfl_frame.c). The executable's
 * range in /proc/self/maps changes once libdw has mapped the file to read
 * its CFI, but only where no other file lies between the two mappings,
 * which is the fuzzer's layout and not this binary's: the deterministic
 * regression check is fuzz_unwind's seeds real_libdw_reload* under
 * scripts/fuzz.sh, whose ASan fills freed memory (they abort before the
 * fix). Here: libdw's unwinds of this thread's real stack stay whole
 * across loads, unloads and a reset. */
#include <dlfcn.h>
#include <ucontext.h>

#include "profile.h"
#include "task.h"

#define COPY 4096

/* This thread's registers and the COPY bytes above its stack pointer, as a
 * signal handler copies them. Byte by byte and unchecked: the stack holds
 * the sanitizer's red zones. */
__attribute__((noinline, no_sanitize_address)) static void capture(
    uint64_t* regs, unsigned char* stack, uintptr_t* stack_addr) {
#if defined(__x86_64__)
  static const int dwarf[17] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI,
                                REG_RDI, REG_RBP, REG_RSP, REG_R8,  REG_R9,
                                REG_R10, REG_R11, REG_R12, REG_R13, REG_R14,
                                REG_R15, REG_RIP};
  ucontext_t uc;
  const volatile unsigned char* sp;
  size_t i;

  getcontext(&uc);
  for (i = 0; i < 17; i++)
    regs[i] = (uint64_t)uc.uc_mcontext.gregs[dwarf[i]];
  sp = (const volatile unsigned char*)(uintptr_t)regs[7];
  for (i = 0; i < COPY; i++)
    stack[i] = sp[i];
  *stack_addr = (uintptr_t)regs[7];
#else
  (void)regs;
  (void)stack;
  *stack_addr = 0;
#endif
}

/* Unwinds this thread's own stack with libdw's unwinder. */
static size_t unwind_here(void) {
  static unsigned char stack[COPY];
  uint64_t regs[UV_PPROF__NREGS];
  uintptr_t pcs[UV_PPROF__CPU_MAX_FRAMES];
  uv_pprof__stack_copy_t c;

  memset(regs, 0, sizeof(regs));
  capture(regs, stack, &c.stack_addr);
  c.tid = 1;
  c.regs = regs;
  c.stack = stack;
  c.stack_len = COPY;
  uv_pprof__unwind_refresh();
  return uv_pprof__unwind(&c, UV_PPROF__UNWIND_LIBDW, pcs,
                          UV_PPROF__CPU_MAX_FRAMES);
}

TEST_IMPL(unwind_libdw_across_reloads) {
  void* mods[3];
  int i;

#if !defined(__x86_64__)
  return 0;
#endif
  ASSERT(unwind_here() >= 3);
  /* Each dlopen, and each dlclose, has the next unwind report the modules
   * again. */
  mods[0] = dlopen(UV_PPROF_UNWINDMOD_A, RTLD_NOW | RTLD_LOCAL);
  mods[1] = dlopen(SYM_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  mods[2] = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
  for (i = 0; i < 3; i++) {
    ASSERT(mods[i] != NULL);
    ASSERT(unwind_here() >= 3);
  }
  for (i = 0; i < 3; i++) {
    dlclose(mods[i]);
    ASSERT(unwind_here() >= 3);
  }
  uv_pprof__unwind_reset();
  ASSERT(unwind_here() >= 3);
  uv_pprof__unwind_reset();
  return 0;
}
