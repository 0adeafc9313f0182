/* Unit test of uv_pprof__maps_read (src/maps.c): the executable mappings of
 * this process, the test binary's first, with build ids read from the files
 * (and from memory for the vDSO). */
#include "proc.h"
#include "task.h"

static void check_hex(const char* s) {
  ASSERT(s != NULL);
  ASSERT_GE(strlen(s), 16);
  ASSERT_EQ(strlen(s) % 2, 0);
  ASSERT_EQ(strspn(s, "0123456789abcdef"), strlen(s));
}

TEST_IMPL(maps_read_exec) {
  uv_pprof__mapping_t* maps;
  size_t n;
  size_t i;
  char exe[4096];
  int vdso = 0;
  int own = 0;

  read_exe(exe, sizeof(exe));
  ASSERT_EQ(uv_pprof__maps_read(&maps, &n), 0);
  ASSERT_GE(n, 3);
  ASSERT_STR_EQ(maps[0].path, exe);
  for (i = 0; i < n; i++) {
    ASSERT_LT(maps[i].start, maps[i].limit);
    ASSERT_NE(maps[i].path[0], '\0');
    ASSERT_NOT_CONTAINS(maps[i].path, " (deleted)");
    if (strcmp(maps[i].path, exe) == 0) {
      ASSERT_EQ(i, (size_t)own); /* all of them before anything else */
      own++;
      check_hex(maps[i].build_id);
    }
    if (strstr(maps[i].path, "/libc.so") != NULL)
      check_hex(maps[i].build_id);
    if (strcmp(maps[i].path, "[vdso]") == 0) {
      vdso = 1;
      check_hex(maps[i].build_id); /* read from memory: no file needed */
    }
    if (strcmp(maps[i].path, "[vsyscall]") == 0)
      ASSERT(maps[i].build_id == NULL);
  }
  ASSERT_GE(own, 1);
  ASSERT(vdso);
  uv_pprof__maps_free(maps, n);
  return 0;
}
