/* gzip of an encoded profile, as Go writes it (gzip.BestSpeed = deflate level
 * 1, gzip wrapper), and raw deflate of the history's snapshots. The one
 * place that talks to zlib. */
#include <string.h>

#include <zlib.h>

#include "pprof.h"

/* windowBits 15 + 16: zlib writes the gzip header and trailer; -15: no
 * wrapper at all. */
static int deflate_into(const void* data, size_t len, int window_bits,
                        uv_pprof__buf_t* out) {
  unsigned char chunk[16384];
  z_stream zs;
  int zrc;

  memset(&zs, 0, sizeof(zs));
  zrc = deflateInit2(&zs, 1, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
  if (zrc != Z_OK)
    return zrc == Z_MEM_ERROR ? UV_ENOMEM : UV_EIO;
  zs.next_in = (Bytef*)data;
  do {
    /* avail_in is a uInt: feed a huge input in pieces. */
    size_t piece = len < (1u << 30) ? len : (1u << 30);
    int flush = piece == len ? Z_FINISH : Z_NO_FLUSH;
    zs.avail_in = (uInt)piece;
    len -= piece;
    do {
      zs.next_out = chunk;
      zs.avail_out = sizeof(chunk);
      zrc = deflate(&zs, flush);
      if (zrc == Z_STREAM_ERROR) {
        deflateEnd(&zs);
        return UV_EIO;
      }
      if (uv_pprof__buf_append(out, chunk, sizeof(chunk) - zs.avail_out)) {
        deflateEnd(&zs);
        return UV_ENOMEM;
      }
    } while (zs.avail_out == 0 || (flush == Z_FINISH && zrc != Z_STREAM_END));
  } while (zrc != Z_STREAM_END);
  deflateEnd(&zs);
  return 0;
}

int uv_pprof__gzip(const void* data, size_t len, uv_pprof__buf_t* out) {
  return deflate_into(data, len, 15 + 16, out);
}

int uv_pprof__deflate(const void* data, size_t len, uv_pprof__buf_t* out) {
  return deflate_into(data, len, -15, out);
}

int uv_pprof__inflate(const void* data, size_t len, void* out, size_t size) {
  z_stream zs;
  int zrc;

  memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, -15) != Z_OK)
    return UV_ENOMEM;
  zs.next_in = (Bytef*)data;
  zs.avail_in = (uInt)len;
  zs.next_out = out;
  zs.avail_out = (uInt)size;
  zrc = inflate(&zs, Z_FINISH);
  inflateEnd(&zs);
  return zrc == Z_STREAM_END && zs.avail_out == 0 ? 0 : UV_EINVAL;
}
