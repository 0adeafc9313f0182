/* A PNG decoder for the screenshots the tests take (headless Chromium's):
 * 8-bit, non-interlaced RGB or RGBA, inflated with zlib, unfiltered into
 * RGB. Test code: malformed input fails an assertion. */
#ifndef UV_PPROF_TEST_PNG_H
#define UV_PPROF_TEST_PNG_H

#include <stdint.h>

typedef struct {
  uint32_t w;
  uint32_t h;
  unsigned char* rgb; /* w * h * 3, malloc'd: free() it */
} png_image_t;

/* Decodes the PNG file at path into img; asserts it is one this decoder
 * reads (8-bit, non-interlaced RGB or RGBA). */
void png_decode(const char* path, png_image_t* img);

#endif /* UV_PPROF_TEST_PNG_H */
