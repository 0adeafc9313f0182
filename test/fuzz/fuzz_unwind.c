/* libFuzzer target: the CPU unwinder, fed registers and stack bytes as a
 * signal handler would have copied them. Either the input is all of it
 * (the pc one of this process's real code addresses plus an offset, or
 * raw; the stack pointer into the copy, or anywhere), or this very
 * thread's registers and stack are captured and the input is XORed into
 * them: a real stack, corrupted. The copy ends a readable page followed by
 * a PROT_NONE one. The unwinder may read only the copy: an address outside
 * it must become "unknown", never a load (which random addresses would
 * make a crash), and a read past the copy's end faults at once. Both the
 * rule table and libdw's own unwinder run, and pick bit 0x40 loads and
 * unloads a library first, so that the unwinder reports the modules again
 * (how it once read libdw's freed memory: scripts/fuzz.sh has ASan fill
 * freed memory, libdw's too). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#define STACK_MAX 32768

static uint8_t* guarded; /* STACK_MAX bytes, then a PROT_NONE page */

static uint64_t take64(const uint8_t** p, size_t* left) {
  uint64_t v = 0;

  if (*left >= 8) {
    memcpy(&v, *p, 8);
    *p += 8;
    *left -= 8;
  }
  return v;
}

/* This thread's registers, and its stack from the stack pointer up, into
 * regs and the end of `guarded`; returns the stack bytes copied. Byte by
 * byte and unchecked: the stack holds the sanitizer's red zones. */
__attribute__((noinline, no_sanitize("address"))) static size_t capture(
    uint64_t* regs, size_t len) {
  ucontext_t uc;
  const volatile uint8_t* sp;
  size_t i;

  getcontext(&uc);
#if defined(__x86_64__)
  {
    static const int dwarf[17] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI,
                                  REG_RDI, REG_RBP, REG_RSP, REG_R8,  REG_R9,
                                  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14,
                                  REG_R15, REG_RIP};
    for (i = 0; i < 17; i++)
      regs[i] = (uint64_t)uc.uc_mcontext.gregs[dwarf[i]];
  }
#else
  return 0;
#endif
  sp = (const volatile uint8_t*)(uintptr_t)regs[7];
  for (i = 0; i < len; i++)
    guarded[STACK_MAX - len + i] = sp[i];
  regs[0] = regs[7]; /* where the copy comes from */
  return len;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const void* code[] = {(const void*)&qsort,
                               (const void*)&memcpy,
                               (const void*)&snprintf,
                               (const void*)&uv_pprof__unwind,
                               (const void*)&LLVMFuzzerTestOneInput,
                               (const void*)&uv_pprof__builder_encode};
  uint64_t regs[UV_PPROF__NREGS];
  uv_pprof__stack_copy_t c;
  uintptr_t pcs[UV_PPROF__CPU_MAX_FRAMES];
  const uint8_t* p = data;
  size_t left = size;
  size_t len;
  size_t n;
  int i;

  if (guarded == NULL) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t* region = mmap(NULL, STACK_MAX + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED ||
        mprotect(region + STACK_MAX, page, PROT_NONE) != 0)
      abort();
    guarded = region;
  }
  if (left < 2)
    return 0;
  {
    uint8_t how = *p++;
    uint8_t pick = *p++;
    left -= 2;
    if (pick & 0x80) {
      /* A real stack (4 KiB of it: this thread's frames are above the
       * stack pointer), the input XORed into its registers and bytes. */
      len = capture(regs, 4096);
      for (i = 0; i < UV_PPROF__NREGS; i++)
        regs[i] ^= take64(&p, &left);
      for (i = 0; (size_t)i < len && left > 0; i++, left--)
        guarded[STACK_MAX - len + (size_t)i] ^= *p++;
    } else {
      for (i = 0; i < UV_PPROF__NREGS; i++)
        regs[i] = take64(&p, &left);
      len = left < STACK_MAX ? left : STACK_MAX;
      memcpy(guarded + STACK_MAX - len, p, len);
    }
    c.tid = 1;
    c.regs = regs;
    /* A signal's copy knows every register; a blocked thread's some (the
     * input says which), the pc always. */
    c.known = pick & 0x40
                  ? take64(&p, &left) | (uint64_t)1 << (UV_PPROF__NREGS - 1)
                  : UV_PPROF__REGS_ALL;
    c.stack = guarded + STACK_MAX - len;
    /* Where the copy claims to come from: anywhere, as the input says. */
    c.stack_addr = (uintptr_t)regs[0];
    c.stack_len = len;
#if defined(__x86_64__)
    if ((pick & 0x81) == 1) /* rsp inside the copy, so that rules read it */
      regs[7] = c.stack_addr + (len > 0 ? regs[7] % len : 0);
#endif
    if ((pick & 0x82) == 2)
      regs[UV_PPROF__NREGS - 1] =
          (uint64_t)(uintptr_t)
              code[(pick >> 2) % (sizeof(code) / sizeof(code[0]))] +
          (regs[UV_PPROF__NREGS - 1] % 512);
    uv_pprof__unwind_refresh();
    n = uv_pprof__unwind(
        &c, how & 1 ? UV_PPROF__UNWIND_LIBDW : UV_PPROF__UNWIND_RULES, pcs,
        1 + how % UV_PPROF__CPU_MAX_FRAMES, NULL);
    if (n < 1 || n > 1 + (size_t)how % UV_PPROF__CPU_MAX_FRAMES)
      abort();
    if (pcs[0] != (uintptr_t)regs[UV_PPROF__NREGS - 1])
      abort();
  }
  return 0;
}
