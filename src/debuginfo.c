/* The files that may speak for a module, chosen so that none lies and none
 * is fetched: the module's own file only when it carries the build ID the
 * loader mapped (symbolize.c asks), and its separate debug file looked for
 * on this machine only, in gdb's order: by build ID under each root's
 * .build-id/, then by the module's .gnu_debuglink beside it, in its .debug/
 * and under each root + its directory; a candidate is taken only when its
 * build ID (for a module without one, the link's CRC) matches. libdw's own
 * dwfl_standard_find_debuginfo asks debuginfod, the network, whenever
 * DEBUGINFOD_URLS is set. Worker thread only. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "proc.h"
#include "symbols.h"

static char default_roots[] = "/usr/lib/debug";
static char* roots = default_roots;

char** uv_pprof__debuginfo_path(void) {
  return &roots;
}

int uv_pprof__debuginfo_roots(const char* list) {
  char* copy = default_roots;

  if (list != NULL && (copy = strdup(list)) == NULL)
    return UV_ENOMEM;
  if (roots != default_roots)
    free(roots);
  roots = copy;
  return 0;
}

static int same_build_id(Elf* elf, const unsigned char* id, size_t len) {
  const void* found;
  ssize_t n = DW(dwelf_elf_gnu_build_id)(elf, &found);

  return n > 0 && (size_t)n == len && memcmp(found, id, len) == 0;
}

int uv_pprof__elf_has_build_id(int fd, const unsigned char* id, size_t len) {
  /* ELF_C_READ reads what is asked for with pread: a file truncated under
   * us gives an error, where a mapping of it would fault. */
  Elf* elf = DW(elf_begin)(fd, ELF_C_READ, NULL);
  int same = elf != NULL && DW(elf_kind)(elf) == ELF_K_ELF &&
             same_build_id(elf, id, len);

  if (elf != NULL)
    DW(elf_end)(elf);
  return same;
}

/* The CRC-32 of fd's whole contents (zlib's is the one .gnu_debuglink
 * holds). Returns 0 and sets *crc, or -1 on a read error. */
static int file_crc(int fd, uLong* crc) {
  unsigned char chunk[65536];
  off_t at = 0;
  ssize_t n;

  *crc = crc32(0, NULL, 0);
  while ((n = pread(fd, chunk, sizeof(chunk), at)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    *crc = crc32(*crc, chunk, (uInt)n);
    at += n;
  }
  return 0;
}

/* What a debug file of the module must match: its build ID, or for a
 * module without one, the CRC its link records. */
typedef struct {
  const unsigned char* id;
  size_t id_len;
  GElf_Word crc;
  dev_t dev; /* the module's own file, which a link may name by mistake */
  ino_t ino;
} want_t;

/* Opens path and keeps it when it is the module's debug file. Returns the
 * fd, or -1. Never blocks on a FIFO, never takes the module itself. */
static int try_candidate(const char* path, const want_t* want) {
  struct stat st;
  uLong crc;
  int ok = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

  if (fd < 0)
    return -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      !(st.st_dev == want->dev && st.st_ino == want->ino)) {
    if (want->id_len > 0)
      ok = uv_pprof__elf_has_build_id(fd, want->id, want->id_len);
    else
      ok = file_crc(fd, &crc) == 0 && crc == want->crc;
  }
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Tries link in dir, dir/.debug and root + dir for every root. */
static int search_dir(const char* dir, const char* link, const want_t* want,
                      char* path, size_t size) {
  const char* root;
  int fd;

  snprintf(path, size, "%s/%s", dir, link);
  if ((fd = try_candidate(path, want)) >= 0)
    return fd;
  snprintf(path, size, "%s/.debug/%s", dir, link);
  if ((fd = try_candidate(path, want)) >= 0)
    return fd;
  for (root = roots; *root != '\0';) {
    size_t len = strcspn(root, ":");
    if (len > 0 && root[0] == '/') {
      snprintf(path, size, "%.*s%s/%s", (int)len, root, dir, link);
      if ((fd = try_candidate(path, want)) >= 0)
        return fd;
    }
    root += len;
    if (*root == ':')
      root++;
  }
  return -1;
}

/* The module's debug file by its .gnu_debuglink, in the module's directory
 * as named and, when that is a symlink's (/lib is /usr/lib on Debian), as
 * resolved. Returns an fd and sets *name, or -1. */
static int find_by_link(const char* file_name, const char* link,
                        const want_t* want, char** name) {
  char dir[PATH_MAX];
  char real[PATH_MAX];
  char path[PATH_MAX * 2];
  const char* slash = strrchr(file_name, '/');
  int fd;

  /* A link is a file name, never a path that could lead elsewhere. */
  if (slash == NULL || strchr(link, '/') != NULL || link[0] == '\0' ||
      strcmp(link, ".") == 0 || strcmp(link, "..") == 0 ||
      (size_t)(slash - file_name) >= sizeof(dir))
    return -1;
  memcpy(dir, file_name, (size_t)(slash - file_name));
  dir[slash - file_name] = '\0';
  fd = search_dir(dir, link, want, path, sizeof(path));
  if (fd < 0 && realpath(file_name, real) != NULL &&
      (slash = strrchr(real, '/')) != NULL) {
    real[slash - real] = '\0';
    if (strcmp(real, dir) != 0)
      fd = search_dir(real, link, want, path, sizeof(path));
  }
  if (fd >= 0 && (*name = strdup(path)) == NULL) {
    close(fd);
    fd = -1;
  }
  return fd;
}

int uv_pprof__find_debuginfo(Dwfl_Module* mod, void** userdata,
                             const char* modname, Dwarf_Addr base,
                             const char* file_name, const char* debuglink,
                             GElf_Word crc, char** debuginfo_file_name) {
  const unsigned char* id = NULL;
  const char* own_link = NULL;
  GElf_Word own_crc;
  GElf_Addr vaddr;
  GElf_Addr bias;
  struct stat st;
  want_t want;
  Elf* elf;
  int id_len;
  int fd;

  /* libdw's own lookup by build ID reads only the roots' .build-id/ trees
   * (for the module, and for a dwz file its debug file shares) and checks
   * what it finds; debuginfod is asked by the standard callback only. */
  fd = DW(dwfl_build_id_find_debuginfo)(mod, userdata, modname, base, file_name,
                                        debuglink, crc, debuginfo_file_name);
  if (fd >= 0)
    return fd;
  free(*debuginfo_file_name);
  *debuginfo_file_name = NULL;
  if (debuglink == NULL || file_name == NULL)
    return -1;
  /* libdw also calls here for a dwz file by its .gnu_debugaltlink name:
   * that is looked for by build ID only (above). */
  elf = DW(dwfl_module_getelf)(mod, &bias);
  if (elf != NULL)
    own_link = DW(dwelf_elf_gnu_debuglink)(elf, &own_crc);
  if (own_link == NULL || strcmp(own_link, debuglink) != 0)
    return -1;
  id_len = DW(dwfl_module_build_id)(mod, &id, &vaddr);
  memset(&want, 0, sizeof(want));
  want.id = id;
  want.id_len = id_len > 0 ? (size_t)id_len : 0;
  want.crc = crc;
  if (stat(file_name, &st) == 0) {
    want.dev = st.st_dev;
    want.ino = st.st_ino;
  }
  return find_by_link(file_name, debuglink, &want, debuginfo_file_name);
}
