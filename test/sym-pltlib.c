/* A library the test binary links (it is not dlopen'ed), so that the
 * binary's calls to it go through the binary's PLT stubs, which no symbol
 * names: test-symbolize.c finds each stub from a call's return address and
 * expects "sym_plt_called@plt" (a JUMP_SLOT stub) and "sym_plt_taken@plt"
 * (the binary also takes that function's address: a GLOB_DAT stub in
 * .plt.got). */
#include "sym-funcs.h"

__attribute__((noipa, visibility("default"))) uintptr_t sym_plt_called(void) {
  return (uintptr_t)__builtin_return_address(0);
}

__attribute__((noipa, visibility("default"))) uintptr_t sym_plt_taken(void) {
  return (uintptr_t)__builtin_return_address(0);
}
