/* Functions with known names, files and lines for test-symbolize.c. Built
 * with -g -O2 (test/CMakeLists.txt); noipa keeps the compiler from cloning
 * or merging them (a clone would be named sym_static.isra.0), and
 * always_inline makes sym_inlined an inlined frame of sym_outer whatever
 * the optimization level. */
#include <string.h>

#include "sym-funcs.h"

__attribute__((noipa)) uintptr_t sym_capture(void) {
  return (uintptr_t)__builtin_return_address(0);
}

static inline __attribute__((always_inline)) uintptr_t sym_inlined(void) {
  uintptr_t pc = sym_capture(); /* LINE:inlined */
  /* Keeps the call above out of tail position. */
  __asm__ volatile("" : "+r"(pc));
  return pc;
}

/* Aligned so that padding (no function) follows sym_capture. */
__attribute__((noipa, aligned(64))) uintptr_t sym_outer(void) {
  uintptr_t pc = sym_inlined(); /* LINE:outer */
  __asm__ volatile("" : "+r"(pc));
  return pc;
}

__attribute__((noipa)) int sym_global(int x) { /* LINE:global-begin */
  int i;

  for (i = 0; i < x; i++)
    __asm__ volatile("" : "+r"(x));
  return x * 3 + 1;
} /* LINE:global-end */

static __attribute__((noipa)) int sym_static(int x) { /* LINE:static-begin */
  __asm__ volatile("" : "+r"(x));
  return x * 7 + 1;
} /* LINE:static-end */

uintptr_t sym_static_addr(void) {
  return (uintptr_t)&sym_static;
}

/* Taking its address in code loads it from a GOT slot (GLOB_DAT), which
 * the linker then has the calls' stub (in .plt.got) jump through. */
__attribute__((noipa)) uintptr_t sym_plt_taken_addr(void) {
  return (uintptr_t)&sym_plt_taken;
}

uintptr_t sym_plt_stub(int taken) {
  uintptr_t ra = taken ? sym_plt_taken() : sym_plt_called();
  const unsigned char* call = (const unsigned char*)ra - 5;
  int32_t rel;

  if (call[0] != 0xe8) /* not `call rel32`: built with -fno-plt? */
    return 0;
  memcpy(&rel, call + 1, sizeof(rel));
  return ra + (uintptr_t)(intptr_t)rel;
}
