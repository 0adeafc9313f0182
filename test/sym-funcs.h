/* Functions of sym-funcs.c, whose names, files and lines test-symbolize.c
 * knows. Lines it looks for carry a "LINE:<tag>" comment in sym-funcs.c. */
#ifndef UV_PPROF_TEST_SYM_FUNCS_H
#define UV_PPROF_TEST_SYM_FUNCS_H

#include <stdint.h>

/* Returns its own return address. */
uintptr_t sym_capture(void);
/* Returns the return address of a call made from an inlined function
 * (sym_inlined), so that address - 1 has two frames. */
uintptr_t sym_outer(void);
int sym_global(int x);
/* The address of the static function sym_static. */
uintptr_t sym_static_addr(void);

/* sym-pltlib.c, a library the test binary links: each returns its
 * return address. */
uintptr_t sym_plt_called(void);
uintptr_t sym_plt_taken(void);
/* Calls sym_plt_called (taken 0) or sym_plt_taken (1) through this
 * binary's PLT and returns the stub the call went to. */
uintptr_t sym_plt_stub(int taken);
uintptr_t sym_plt_taken_addr(void);

#endif /* UV_PPROF_TEST_SYM_FUNCS_H */
