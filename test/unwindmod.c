/* The module test-unwind.c burns CPU in, built twice (uv_pprof_unwindmod_a
 * and _b) with different UNWINDMOD_FRAME: the same code at the same offsets
 * with different stack frames, so that a rule kept for an address of the
 * first copy is wrong for the second one loaded at the same place. Built
 * without frame pointers. */
#define EXPORT __attribute__((visibility("default")))

EXPORT double unwindmod_burn(int n);

EXPORT __attribute__((noinline)) double unwindmod_burn(int n) {
  volatile double scratch[UNWINDMOD_FRAME / sizeof(double)];
  int i;

  scratch[0] = 1.0;
  for (i = 0; i < n; i++)
    scratch[0] = scratch[0] * 1.0000002 + 0.5;
  return scratch[0];
}
