/* libFuzzer target: the /proc/self/maps parser. Every mapping it keeps
 * must be executable text it really read: start and limit as parsed, a
 * path that is a NUL-ended piece of the input, no build id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uv_pprof__mapping_t* maps;
  size_t count;
  size_t i;
  int rc = uv_pprof__maps_parse((const char*)data, size, &maps, &count);

  if (rc != 0) {
    if (rc != UV_ENOMEM || maps != NULL || count != 0)
      abort();
    return 0;
  }
  if ((count == 0) != (maps == NULL))
    abort();
  for (i = 0; i < count; i++) {
    const char* path = maps[i].path;
    if (path == NULL || maps[i].build_id != NULL)
      abort();
    if (strlen(path) > size || strchr(path, '\n') != NULL)
      abort();
  }
  uv_pprof__maps_free(maps, count);
  return 0;
}
