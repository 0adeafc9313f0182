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
 * across loads, unloads and a reset.
 *
 * unwind_after_call_bounds (fuzz_unwind found it): a blocked thread's copy
 * knows sp and pc only, and a caller built with frame pointers is unwound by
 * finding its saved rbp, whose return address must follow a call
 * instruction. The decoder of that instruction read a byte past its 9-byte
 * window when the byte before the return address looked like a REX prefix
 * (or a ModRM asked for a SIB byte the window did not hold): a read past a
 * stack buffer, which the sanitized build reports. The decoder is checked
 * on known encodings too.
 *
 * heap_rows_of_one_stack_saturate (fuzz_heap found it): two rows of a dump
 * may name one stack (they differ only in jemalloc's frames, or a dump says
 * so), and the heap profile sums their unbiased values, each of which may
 * be INT64_MAX for a dump's huge counts: the sum overflowed (undefined,
 * and a negative value in the proto). It is held at INT64_MAX.
 *
 * server_peer_gone_no_sigpipe (fuzz_http found it): a client that sends
 * requests and closes leaves the server's socket in CLOSE_WAIT (half-closed
 * clients are answered), the first answer draws the peer's RST, and libuv's
 * write of the next one failed with EPIPE and raised SIGPIPE, which killed
 * every host that does not ignore it. Answers now go out with
 * send(MSG_NOSIGNAL). The host here (uv_pprof_failhost, whose SIGPIPE is
 * the default) must survive such clients and answer the next one. */
#include <dlfcn.h>
#include <ucontext.h>

#include "profile.h"
#include "profile.pb-c.h"
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
  c.known = UV_PPROF__REGS_ALL;
  c.stack = stack;
  c.stack_len = COPY;
  uv_pprof__unwind_refresh();
  return uv_pprof__unwind(&c, UV_PPROF__UNWIND_LIBDW, pcs,
                          UV_PPROF__CPU_MAX_FRAMES, NULL);
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

/* `code` with `n` bytes before the return address at its end. */
static int ends_in_call(const unsigned char* bytes, size_t n) {
  static unsigned char code[32];

  memset(code, 0x90, sizeof(code)); /* nop */
  memcpy(code + sizeof(code) - n, bytes, n);
  return uv_pprof__after_call((uintptr_t)(code + sizeof(code)));
}

TEST_IMPL(unwind_after_call_bounds) {
  static const unsigned char rel32[] = {0xe8, 1, 2, 3, 4};
  static const unsigned char rax[] = {0xff, 0xd0};             /* call *%rax */
  static const unsigned char r12[] = {0x41, 0xff, 0xd4};       /* call *%r12 */
  static const unsigned char rip[] = {0xff, 0x15, 1, 2, 3, 4}; /* *x(%rip) */
  static const unsigned char sib[] = {0xff, 0x14, 0x24};       /* *(%rsp) */
  static const unsigned char rex_last[] = {0x48, 0x90};
  static const unsigned char modrm_sib_end[] = {0xff, 0x14};
  static const unsigned char jmp[] = {0xff, 0xe0}; /* jmp *%rax: FF /4 */

#if !defined(__x86_64__)
  return 0;
#endif
  ASSERT_EQ(ends_in_call(rel32, sizeof(rel32)), 1);
  ASSERT_EQ(ends_in_call(rax, sizeof(rax)), 1);
  ASSERT_EQ(ends_in_call(r12, sizeof(r12)), 1);
  ASSERT_EQ(ends_in_call(rip, sizeof(rip)), 1);
  ASSERT_EQ(ends_in_call(sib, sizeof(sib)), 1);
  ASSERT_EQ(ends_in_call(jmp, sizeof(jmp)), 0);
  /* The windows that made the decoder read past its buffer. */
  ASSERT_EQ(ends_in_call(rex_last, sizeof(rex_last)), 0);
  ASSERT_EQ(ends_in_call(modrm_sib_end, sizeof(modrm_sib_end)), 0);
  /* Not mapped. */
  ASSERT_EQ(uv_pprof__after_call(16), 0);
  return 0;
}

TEST_IMPL(heap_rows_of_one_stack_saturate) {
  static const char dump[] =
      "heap_v2/524288\n"
      "  t*: 2: 2048 [2: 2048]\n"
      "@ 0x401000 0x402000\n"
      "  t*: 18446744073709551615: 18446744073709551615 "
      "[18446744073709551615: 18446744073709551615]\n"
      "@ 0x401000 0x402000\n"
      "  t*: 9223372036854775807: 9223372036854775807 "
      "[9223372036854775807: 9223372036854775807]\n"
      "\nMAPPED_LIBRARIES:\n";
  Perftools__Profiles__Profile* p;
  uv_pprof__je_state_t st;
  uv_pprof__je_dump_t d;
  uv_pprof__builder_t* b;
  uv_pprof__buf_t gz;
  void* snap;
  size_t i;

  ASSERT_EQ(uv_pprof__je_parse(dump, sizeof(dump) - 1, NULL, &d), 0);
  ASSERT_EQ(d.nstacks, 2);
  ASSERT_EQ(d.stacks[0].id, d.stacks[1].id);
  memset(&st, 0, sizeof(st));
  st.mode = UV_PPROF__HEAP_PROF_ON;
  st.active = 1;
  st.accum = 1;
  st.lg_sample = 19;
  ASSERT_EQ(uv_pprof__heap_snapshot(&st, &d, &snap), 0);
  b = uv_pprof__builder_new();
  ASSERT(b != NULL);
  uv_pprof__buf_init(&gz);
  uv_pprof__profile_heap.types(b);
  uv_pprof__profile_heap.emit(snap, b, 1);
  ASSERT_EQ(uv_pprof__builder_encode(b, &gz), 0);
  uv_pprof__builder_free(b);
  p = profile_decode(gz.base, gz.len);
  ASSERT_EQ(p->n_sample, 1);
  ASSERT_EQ(p->sample[0]->n_value, 4);
  for (i = 0; i < 4; i++)
    ASSERT_EQ(p->sample[0]->value[i], INT64_MAX);
  perftools__profiles__profile__free_unpacked(p, NULL);
  uv_pprof__buf_free(&gz);
  uv_pprof__profile_heap.snapshot_free(snap);
  uv_pprof__stacks_collect();
  return 0;
}

TEST_IMPL(server_peer_gone_no_sigpipe) {
  static const char req[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  static const char last[] =
      "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n";
  const char* argv[] = {UV_PPROF_FAILHOST, NULL};
  const char* env[] = {"UV_PPROF=127.0.0.1:0", NULL};
  child_t c;
  char line[64];
  char* out;
  size_t len;
  int port;
  int fd;
  int i;
  int k;

  child_start(&c, "failhost", argv, env);
  child_line(&c, line, sizeof(line), 30000);
  ASSERT_EQ(sscanf(line, "port=%d", &port), 1);
  for (i = 0; i < 20; i++) {
    fd = tcp_connect(port);
    for (k = 0; k < 20; k++)
      ASSERT_EQ(tcp_send(fd, req, sizeof(req) - 1), 0);
    close(fd);
    usleep(20000);
  }
  fd = tcp_connect(port);
  ASSERT_EQ(tcp_send(fd, last, sizeof(last) - 1), 0);
  out = tcp_read_all(fd, 20000, &len);
  ASSERT_STARTS_WITH(out, "HTTP/1.1 200 ");
  free(out);
  close(fd);
  ASSERT_EQ(child_end(&c, 30000, NULL), 0);
  return 0;
}
