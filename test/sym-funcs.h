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

#endif /* UV_PPROF_TEST_SYM_FUNCS_H */
