/* The PNG decoder of png.h: the chunks of the file, IHDR's format checked,
 * IDAT inflated with zlib, each row unfiltered (PNG's five filters). */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "png.h"
#include "task.h"

static uint32_t be32(const unsigned char* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static int paeth(int a, int b, int c) {
  int p = a + b - c;
  int pa = abs(p - a);
  int pb = abs(p - b);
  int pc = abs(p - c);

  if (pa <= pb && pa <= pc)
    return a;
  return pb <= pc ? b : c;
}

void png_decode(const char* path, png_image_t* img) {
  static const unsigned char sig[8] = {137, 'P', 'N', 'G', 13, 10, 26, 10};
  unsigned char* file;
  unsigned char* idat = NULL;
  unsigned char* raw;
  size_t idat_len = 0;
  size_t size;
  size_t off = 8;
  uLongf raw_len;
  int channels = 0;
  uint32_t x;
  uint32_t y;
  FILE* f = fopen(path, "rb");

  ASSERT(f != NULL);
  fseek(f, 0, SEEK_END);
  size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  file = malloc(size);
  ASSERT(file != NULL);
  ASSERT_EQ(fread(file, 1, size, f), size);
  fclose(f);
  ASSERT_GT(size, 8);
  ASSERT(memcmp(file, sig, 8) == 0);
  while (off + 12 <= size) {
    uint32_t len = be32(file + off);
    const unsigned char* type = file + off + 4;
    const unsigned char* d = file + off + 8;
    ASSERT_LE(off + 12 + len, size);
    if (memcmp(type, "IHDR", 4) == 0) {
      img->w = be32(d);
      img->h = be32(d + 4);
      ASSERT_EQ(d[8], 8); /* bit depth */
      ASSERT(d[9] == 2 || d[9] == 6);
      ASSERT_EQ(d[12], 0); /* not interlaced */
      channels = d[9] == 2 ? 3 : 4;
    } else if (memcmp(type, "IDAT", 4) == 0) {
      idat = realloc(idat, idat_len + len);
      ASSERT(idat != NULL);
      memcpy(idat + idat_len, d, len);
      idat_len += len;
    }
    off += 12 + len;
  }
  ASSERT_NE(channels, 0);
  ASSERT(idat != NULL);
  raw_len = (uLongf)img->h * (1 + img->w * channels);
  raw = malloc(raw_len);
  ASSERT(raw != NULL);
  ASSERT_EQ(uncompress(raw, &raw_len, idat, idat_len), Z_OK);
  ASSERT_EQ(raw_len, (uLongf)img->h * (1 + img->w * channels));
  img->rgb = malloc((size_t)img->w * img->h * 3);
  ASSERT(img->rgb != NULL);
  for (y = 0; y < img->h; y++) {
    unsigned char* line = raw + (size_t)y * (1 + img->w * channels);
    unsigned char* cur = line + 1;
    unsigned char* prev = y > 0 ? cur - (1 + img->w * channels) : NULL;
    for (x = 0; x < img->w * (uint32_t)channels; x++) {
      int a = x >= (uint32_t)channels ? cur[x - channels] : 0;
      int b = prev != NULL ? prev[x] : 0;
      int c = prev != NULL && x >= (uint32_t)channels ? prev[x - channels] : 0;
      switch (line[0]) {
        case 0:
          break;
        case 1:
          cur[x] = (unsigned char)(cur[x] + a);
          break;
        case 2:
          cur[x] = (unsigned char)(cur[x] + b);
          break;
        case 3:
          cur[x] = (unsigned char)(cur[x] + (a + b) / 2);
          break;
        case 4:
          cur[x] = (unsigned char)(cur[x] + paeth(a, b, c));
          break;
        default:
          ASSERT(0);
      }
    }
    for (x = 0; x < img->w; x++)
      memcpy(img->rgb + ((size_t)y * img->w + x) * 3, cur + x * channels, 3);
  }
  free(raw);
  free(idat);
  free(file);
}
