/* Captures of one thread's stack (sampler.c, for stall samples) and what
 * the unwinder makes of them (unwind.c): a thread stopped just after an
 * epilogue's `pop %rbp` unwinds to its entry, by the rule table and by
 * libdw alone, because the copy holds the red zone below sp, where that
 * epilogue's CFI still finds the popped frame pointer; and a stack that
 * ends on a return address of 0 is not complete (a stall sample that looks
 * complete without uv_run is taken for a thread outside the loop). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc.h"
#include "task.h"

#if defined(__x86_64__)
/* capture_fp_caller keeps a frame pointer (its CFA is rbp + 16) and calls
 * capture_epilogue_spin, which pops its own frame pointer and then spins
 * until capture_stop is set: from there on its CFI says CFA = rsp + 8 and
 * rbp saved at CFA - 16, below sp. capture_leaf is a leaf whose return
 * address is at sp. */
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl capture_epilogue_spin\n"
    ".type capture_epilogue_spin, @function\n"
    "capture_epilogue_spin:\n"
    ".cfi_startproc\n"
    "  pushq %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "  movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "  popq %rbp\n"
    ".cfi_def_cfa %rsp, 8\n"
    "1:\n"
    "  cmpl $0, capture_stop(%rip)\n"
    "  je 1b\n"
    "  ret\n"
    ".cfi_endproc\n"
    ".size capture_epilogue_spin, .-capture_epilogue_spin\n"
    ".p2align 4\n"
    ".globl capture_fp_caller\n"
    ".type capture_fp_caller, @function\n"
    "capture_fp_caller:\n"
    ".cfi_startproc\n"
    "  pushq %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "  movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "  subq $48, %rsp\n"
    "  call capture_epilogue_spin\n"
    "  leave\n"
    ".cfi_def_cfa %rsp, 8\n"
    "  ret\n"
    ".cfi_endproc\n"
    ".globl capture_fp_caller_end\n"
    "capture_fp_caller_end:\n"
    ".size capture_fp_caller, .-capture_fp_caller\n"
    ".p2align 4\n"
    ".globl capture_leaf\n"
    ".type capture_leaf, @function\n"
    "capture_leaf:\n"
    ".cfi_startproc\n"
    "  nop\n"
    "  ret\n"
    ".cfi_endproc\n"
    ".size capture_leaf, .-capture_leaf\n");
#endif

void capture_epilogue_spin(void);
void capture_fp_caller(void);
void capture_leaf(void);
extern const char capture_fp_caller_end[];

atomic_int capture_stop;
static atomic_int spinner_tid;

static void* spinner(void* arg) {
  atomic_store(&spinner_tid, (int)syscall(SYS_gettid));
  capture_fp_caller();
  return NULL;
}

/* Whether one of pcs lies in capture_fp_caller. */
static int has_caller(const uintptr_t* pcs, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (pcs[i] >= (uintptr_t)capture_fp_caller &&
        pcs[i] < (uintptr_t)capture_fp_caller_end)
      return 1;
  return 0;
}

TEST_IMPL(stall_capture_epilogue) {
  uv_pprof__capture_t* c;
  uv_pprof__stack_copy_t copy;
  uintptr_t pcs[UV_PPROF__CPU_MAX_FRAMES];
  pthread_t thread;
  size_t n;
  int complete;
  int tries;
  int tid;

#if !defined(__x86_64__)
  fprintf(stderr, "the epilogue is x86-64 code\n");
  return 1;
#endif
  c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  ASSERT(c != MAP_FAILED);
  atomic_store(&capture_stop, 0);
  ASSERT_EQ(pthread_create(&thread, NULL, spinner, NULL), 0);
  while ((tid = atomic_load(&spinner_tid)) == 0)
    sched_yield();
  uv_pprof__sampler_prepare();
  ASSERT_EQ(uv_pprof__sampler_capture_acquire(c), 0);
  /* The thread may still be on its way to the spin: ask until its pc is
   * in it (past the pop). */
  for (tries = 0; tries < 1000; tries++) {
    ASSERT_EQ(uv_pprof__sampler_capture_ask(tid), 0);
    while (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) !=
           UV_PPROF__CAPTURE_DONE)
      sched_yield();
    /* push, mov and pop: 5 bytes */
    if (c->regs[UV_PPROF__NREGS - 1] >= (uintptr_t)capture_epilogue_spin + 5 &&
        c->regs[UV_PPROF__NREGS - 1] < (uintptr_t)capture_fp_caller)
      break;
    usleep(1000);
  }
  ASSERT_LT(tries, 1000);
  atomic_store(&capture_stop, 1);
  pthread_join(thread, NULL);

  copy.tid = tid;
  copy.regs = c->regs;
  copy.known = c->known;
  copy.stack_addr = c->stack_addr;
  copy.stack = c->stack;
  copy.stack_len = c->stack_len;
  ASSERT(c->stack_addr < c->regs[7]); /* the red zone is in the copy */

  n = uv_pprof__sampler_unwind(&copy, pcs, UV_PPROF__ARRAY_SIZE(pcs),
                               &complete);
  ASSERT(has_caller(pcs, n));
  ASSERT_EQ(complete, 1);
  ASSERT_GE(n, 4); /* spin, caller, spinner, the thread's start */

  /* libdw alone has no frame-pointer search to fall back on: the caller's
   * CFA needs the rbp the epilogue's CFI reads below sp. */
  uv_pprof__unwind_refresh();
  n = uv_pprof__unwind(&copy, UV_PPROF__UNWIND_LIBDW, pcs,
                       UV_PPROF__ARRAY_SIZE(pcs), &complete);
  ASSERT(has_caller(pcs, n));
  ASSERT_EQ(complete, 1);
  uv_pprof__sampler_capture_release();
  munmap(c, sizeof(*c));
  return 0;
}

/* A stack that reads 0 as a return address stopped: libdw ends it without
 * an error, but only a frame whose CFI leaves the return address undefined
 * is a thread's entry. */
TEST_IMPL(unwind_zero_return_not_complete) {
  uint64_t regs[UV_PPROF__NREGS];
  uint64_t stack[8];
  uv_pprof__stack_copy_t copy;
  uintptr_t pcs[8];
  size_t n;
  int complete;

#if !defined(__x86_64__)
  fprintf(stderr, "the leaf is x86-64 code\n");
  return 1;
#endif
  memset(regs, 0, sizeof(regs));
  memset(stack, 0, sizeof(stack));
  regs[7] = (uintptr_t)stack; /* rsp: the return address 0 */
  regs[UV_PPROF__NREGS - 1] = (uintptr_t)capture_leaf; /* rip */
  copy.tid = (int)syscall(SYS_gettid);
  copy.regs = regs;
  copy.known = UV_PPROF__REGS_ALL;
  copy.stack_addr = (uintptr_t)stack;
  copy.stack = (const unsigned char*)stack;
  copy.stack_len = sizeof(stack);

  uv_pprof__sampler_prepare();
  uv_pprof__unwind_refresh();
  complete = -1;
  n = uv_pprof__unwind(&copy, UV_PPROF__UNWIND_LIBDW, pcs, 8, &complete);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(pcs[0], (uintptr_t)capture_leaf);
  ASSERT_EQ(complete, 0);
  complete = -1;
  n = uv_pprof__unwind(&copy, UV_PPROF__UNWIND_RULES, pcs, 8, &complete);
  ASSERT_EQ(n, 1);
  ASSERT_EQ(complete, 0);
  return 0;
}
