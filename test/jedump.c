/* uv_pprof_jedump: makes the jemalloc dumps of the heap parser's tests at
 * test time, with the real jemalloc (linked, or linked statically), so that
 * no fixture comes from outside the repository. `jedump FILE` makes the
 * allocations below and writes jemalloc's prof.dump to FILE; the test sets
 * MALLOC_CONF (prof:true and the sampling wanted). Exit status 0 or 1. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024 * 1024)
#define KEPT_BLOCKS 25  /* 4 MiB each: sampled for sure even at lg 17 */
#define FREED_BLOCKS 10 /* 4 MiB each, freed: only in the cumulative pair */

int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp,
            size_t newlen);

__attribute__((noinline)) void jedump_keep_calloc(void);
__attribute__((noinline)) void jedump_churn_malloc(void);
__attribute__((noinline)) void jedump_entry_points(void);

static void* kept[KEPT_BLOCKS + 16];
static size_t nkept;

static void keep(void* p) {
  if (p == NULL) {
    fprintf(stderr, "jedump: out of memory\n");
    exit(1);
  }
  kept[nkept++] = p;
}

void jedump_keep_calloc(void) {
  int i;

  for (i = 0; i < KEPT_BLOCKS; i++)
    keep(calloc(1, 4 * MIB));
}

void jedump_churn_malloc(void) {
  int i;

  for (i = 0; i < FREED_BLOCKS; i++) {
    char* volatile p = malloc(4 * MIB);
    if (p == NULL)
      exit(1);
    p[0] = 1;
    free(p);
  }
}

/* One block of a distinct size class from each entry point, so that every
 * one of them shows as its own stack with exactly that size (at lg 0). */
void jedump_entry_points(void) {
  void* p = NULL;

  keep(malloc(1024));
  keep(calloc(1, 2048));
  p = malloc(16);
  keep(realloc(p, 4096));
  if (posix_memalign(&p, 64, 8192) != 0)
    exit(1);
  keep(p);
  keep(aligned_alloc(64, 16384));
  keep(memalign(64, 32768));
  keep(valloc(65536));
}

int main(int argc, char** argv) {
  const char* path;
  int i;

  if (argc != 2) {
    fprintf(stderr, "usage: jedump FILE\n");
    return 1;
  }
  path = argv[1];
  jedump_keep_calloc();
  jedump_churn_malloc();
  jedump_entry_points();
  if (mallctl("prof.dump", NULL, NULL, &path, sizeof(path)) != 0) {
    fprintf(stderr, "jedump: prof.dump failed (is MALLOC_CONF=prof:true?)\n");
    return 1;
  }
  for (i = 0; i < (int)nkept; i++)
    free(kept[i]);
  return 0;
}
