/* The library test-symbolize.c dlopens after its first lookups (built with
 * -g, plus a stripped copy that keeps only .dynsym): an exported function,
 * a static one, and one function under four names of each binding. */
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT int sym_plugin_global(int x);
EXPORT uintptr_t sym_plugin_static_addr(void);

EXPORT __attribute__((noipa)) int sym_plugin_global(int x) {
  __asm__ volatile("" : "+r"(x));
  return x + 11;
}

static __attribute__((noipa)) int plugin_static(int x) {
  __asm__ volatile("" : "+r"(x));
  return x - 5;
}

EXPORT uintptr_t sym_plugin_static_addr(void) {
  return (uintptr_t)&plugin_static;
}

/* A local, two globals and a weak name: the symbolizer picks
 * sym_plugin_alias (not local, no underscores, first by name). */
static __attribute__((noipa, used)) int plugin_impl(int x) {
  __asm__ volatile("" : "+r"(x));
  return x * 5;
}
EXPORT int sym_plugin_alias(int x) __attribute__((alias("plugin_impl")));
EXPORT int __sym_plugin_alias(int x) __attribute__((alias("plugin_impl")));
EXPORT int sym_plugin_weak(int x) __attribute__((weak, alias("plugin_impl")));
