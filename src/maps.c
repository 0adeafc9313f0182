/* The process's executable mappings for the profile's Mapping table:
 * /proc/self/maps read as Go's runtime/pprof reads it, the main executable's
 * lines moved first, and each object's GNU build id taken from its notes in
 * memory (found with dl_iterate_phdr), so that the vdso gets one too and no
 * file is opened but maps itself; and the executable memory no file backs
 * (JIT code). Symbolization lives elsewhere. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

#define DELETED " (deleted)"

typedef struct {
  uv_pprof__mapping_t* maps;
  size_t count;
  uintptr_t page_mask;
  int err;
} scan_t;

static int read_file(const char* path, uv_pprof__buf_t* out) {
  char chunk[8192];
  ssize_t n;
  int fd;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  for (;;) {
    n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (uv_pprof__buf_append(out, chunk, (size_t)n) != 0)
      break;
  }
  if (n < 0)
    n = uv_translate_sys_error(errno);
  close(fd);
  if (out->oom)
    return UV_ENOMEM;
  return n < 0 ? (int)n : 0;
}

static void trim_deleted(char* path) {
  size_t len = strlen(path);
  size_t dlen = sizeof(DELETED) - 1;

  if (len >= dlen && strcmp(path + len - dlen, DELETED) == 0)
    path[len - dlen] = '\0';
}

/* Cuts the next field off *line and skips the spaces after it. */
static char* next_field(char** line) {
  char* field = *line;
  char* end = strchr(field, ' ');

  if (end == NULL) {
    *line = field + strlen(field);
    return field;
  }
  *end++ = '\0';
  while (*end == ' ')
    end++;
  *line = end;
  return field;
}

static int parse_hex(const char* s, uintptr_t* out) {
  unsigned long long v;
  char* end;

  /* strtoull would also take spaces, signs and "0x". */
  if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
    return -1;
  errno = 0;
  v = strtoull(s, &end, 16);
  if (*end != '\0' || errno != 0 || v > UINTPTR_MAX)
    return -1;
  *out = (uintptr_t)v;
  return 0;
}

/* Parses one maps line into m (path borrowed from line) and tells whether
 * its mapping is executable (1) or not (0); -1 for a malformed line. */
static int parse_fields(char* line, uv_pprof__mapping_t* m, int* anonymous) {
  char* range = next_field(&line);
  char* perm = next_field(&line);
  char* offset = next_field(&line);
  char* inode;
  char* dash;

  next_field(&line); /* dev */
  inode = next_field(&line);
  dash = strchr(range, '-');
  if (dash == NULL)
    return -1;
  *dash = '\0';
  if (parse_hex(range, &m->start) != 0 || parse_hex(dash + 1, &m->limit) != 0 ||
      parse_hex(offset, &m->offset) != 0 || strlen(perm) < 4)
    return -1;
  trim_deleted(line);
  m->path = line;
  m->build_id = NULL;
  /* [vdso] and [vsyscall] have inode 0 too, but are objects; anonymous
   * regions may be named ("[anon:...]"); a memfd has an inode but no file
   * anyone else can open. */
  *anonymous = (strcmp(inode, "0") == 0 &&
                (*line == '\0' || strncmp(line, "[anon:", 6) == 0)) ||
               strncmp(line, "/memfd:", 7) == 0;
  return perm[2] == 'x';
}

/* Parses one maps line into m (path borrowed from line). Returns 1 for an
 * executable mapping to keep, 0 for a line to skip. */
static int parse_line(char* line, uv_pprof__mapping_t* m) {
  int anonymous;

  if (parse_fields(line, m, &anonymous) != 1)
    return 0;
  /* Anonymous executable memory (JIT code, the unpopulated head of a
   * huge-page text mapping) has no file to point at. */
  return !(*m->path == '\0' && anonymous);
}

static void hex_encode(const unsigned char* id, size_t len, char* out) {
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < len; i++) {
    out[2 * i] = digits[id[i] >> 4];
    out[2 * i + 1] = digits[id[i] & 15];
  }
  out[2 * len] = '\0';
}

/* How many of the `size` bytes at `vaddr` of a loaded object may be read:
 * those inside one of its readable PT_LOAD segments, which the loader has
 * mapped. A PT_NOTE header is only the object's word, and a file can say
 * anything (a note beyond the mapping would fault in the host). */
static size_t mapped_bytes(const struct dl_phdr_info* info, ElfW(Addr) vaddr,
                           size_t size) {
  size_t i;

  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    size_t room;

    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_R) || vaddr < ph->p_vaddr ||
        vaddr - ph->p_vaddr >= ph->p_memsz)
      continue;
    room = ph->p_memsz - (vaddr - ph->p_vaddr);
    return size < room ? size : room;
  }
  return 0;
}

size_t uv_pprof__loaded_build_id(const struct dl_phdr_info* info,
                                 unsigned char id[UV_PPROF__MAX_BUILD_ID]) {
  size_t i;

  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    const unsigned char* p;
    size_t left;
    size_t align;

    if (ph->p_type != PT_NOTE)
      continue;
    p = (const unsigned char*)(info->dlpi_addr + ph->p_vaddr);
    left = mapped_bytes(info, ph->p_vaddr, ph->p_filesz);
    /* Notes are 4-aligned, except in segments aligned to 8 (gnu.property). */
    align = ph->p_align == 8 ? 8 : 4;
    while (left >= sizeof(ElfW(Nhdr))) {
      ElfW(Nhdr) nh;
      size_t name_off = sizeof(nh);
      size_t desc_off;
      size_t next;

      memcpy(&nh, p, sizeof(nh));
      desc_off = name_off + (((size_t)nh.n_namesz + align - 1) & ~(align - 1));
      next = desc_off + (((size_t)nh.n_descsz + align - 1) & ~(align - 1));
      if (desc_off + nh.n_descsz > left)
        break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          memcmp(p + name_off, "GNU", 4) == 0 && nh.n_descsz > 0 &&
          nh.n_descsz <= UV_PPROF__MAX_BUILD_ID) {
        memcpy(id, p + desc_off, nh.n_descsz);
        return nh.n_descsz;
      }
      if (next >= left)
        break;
      p += next;
      left -= next;
    }
  }
  return 0;
}

static int object_contains(const struct dl_phdr_info* info, uintptr_t addr,
                           uintptr_t page_mask) {
  size_t i;

  for (i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    uintptr_t hi = lo + ph->p_memsz;

    /* The kernel maps whole pages: a segment's mapping starts at the page
     * holding its first byte. */
    if (ph->p_type == PT_LOAD && (lo & page_mask) <= addr && addr < hi)
      return 1;
  }
  return 0;
}

static int on_object(struct dl_phdr_info* info, size_t size, void* arg) {
  scan_t* scan = arg;
  unsigned char id[UV_PPROF__MAX_BUILD_ID];
  char hex[2 * UV_PPROF__MAX_BUILD_ID + 1];
  int looked = 0;
  size_t found = 0;
  size_t i;

  for (i = 0; i < scan->count; i++) {
    uv_pprof__mapping_t* m = &scan->maps[i];
    if (m->build_id != NULL ||
        !object_contains(info, m->start, scan->page_mask))
      continue;
    if (!looked) {
      found = uv_pprof__loaded_build_id(info, id);
      if (found != 0)
        hex_encode(id, found, hex);
      looked = 1;
    }
    if (found == 0)
      return 0;
    m->build_id = strdup(hex);
    if (m->build_id == NULL) {
      scan->err = UV_ENOMEM;
      return 1;
    }
  }
  return 0;
}

/* Moves the main executable's mappings first, keeping maps order otherwise. */
static void order_main_first(uv_pprof__mapping_t* maps, size_t count,
                             uv_pprof__mapping_t* out) {
  char exe[PATH_MAX];
  ssize_t len;
  size_t n = 0;
  size_t i;
  int pass;

  len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[len > 0 ? len : 0] = '\0';
  trim_deleted(exe);
  for (pass = 0; pass < 2; pass++)
    for (i = 0; i < count; i++)
      if ((strcmp(maps[i].path, exe) == 0) == (pass == 0))
        out[n++] = maps[i];
}

int uv_pprof__maps_parse(const char* text, size_t len,
                         uv_pprof__mapping_t** maps, size_t* count) {
  uv_pprof__buf_t copy;
  uv_pprof__buf_t found;
  uv_pprof__mapping_t* list;
  size_t n;
  size_t i;
  char* line;
  int rc;

  *maps = NULL;
  *count = 0;
  uv_pprof__buf_init(&copy);
  uv_pprof__buf_init(&found);
  rc = uv_pprof__buf_append(&copy, text, len); /* writable, NUL-ended */
  for (line = copy.base; rc == 0 && line < copy.base + copy.len;) {
    char* eol = memchr(line, '\n', (size_t)(copy.base + copy.len - line));
    uv_pprof__mapping_t m;
    if (eol != NULL)
      *eol = '\0';
    if (parse_line(line, &m)) {
      m.path = strdup(m.path);
      if (m.path == NULL || uv_pprof__buf_append(&found, &m, sizeof(m))) {
        free(m.path);
        rc = UV_ENOMEM;
      }
    }
    line = eol != NULL ? eol + 1 : copy.base + copy.len;
  }
  uv_pprof__buf_free(&copy);
  list = (uv_pprof__mapping_t*)found.base;
  n = found.len / sizeof(*list);
  if (rc != 0) {
    for (i = 0; i < n; i++)
      free(list[i].path);
    uv_pprof__buf_free(&found);
    return rc;
  }
  /* The buffer becomes the array (NULL when empty). */
  *maps = n > 0 ? list : NULL;
  *count = n;
  if (n == 0)
    uv_pprof__buf_free(&found);
  return 0;
}

int uv_pprof__maps_read(uv_pprof__mapping_t** maps, size_t* count) {
  uv_pprof__buf_t text;
  uv_pprof__mapping_t* list = NULL;
  uv_pprof__mapping_t* out = NULL;
  scan_t scan;
  size_t n = 0;
  int rc;

  *maps = NULL;
  *count = 0;
  uv_pprof__buf_init(&text);
  rc = read_file("/proc/self/maps", &text);
  if (rc == 0)
    rc = uv_pprof__maps_parse(text.base, text.len, &list, &n);
  uv_pprof__buf_free(&text);
  if (rc == 0 && n > 0) {
    scan.maps = list;
    scan.count = n;
    scan.page_mask = ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1);
    scan.err = 0;
    dl_iterate_phdr(on_object, &scan);
    rc = scan.err;
  }
  if (rc == 0 && n > 0) {
    out = malloc(n * sizeof(*out));
    if (out == NULL)
      rc = UV_ENOMEM;
  }
  if (rc != 0) {
    uv_pprof__maps_free(list, n);
    return rc;
  }
  if (n > 0)
    order_main_first(list, n, out);
  free(list);
  *maps = out;
  *count = n;
  return 0;
}

int uv_pprof__maps_jit(uv_pprof__range_t** ranges, size_t* count) {
  uv_pprof__buf_t text;
  uv_pprof__buf_t found;
  char* line;
  int rc;

  *ranges = NULL;
  *count = 0;
  uv_pprof__buf_init(&text);
  uv_pprof__buf_init(&found);
  rc = read_file("/proc/self/maps", &text);
  for (line = text.base; rc == 0 && line != NULL && *line != '\0';) {
    char* eol = strchr(line, '\n');
    uv_pprof__mapping_t m;
    uv_pprof__range_t r;
    int anonymous;
    if (eol != NULL)
      *eol = '\0';
    if (parse_fields(line, &m, &anonymous) == 1 && anonymous) {
      r.start = m.start;
      r.end = m.limit;
      if (uv_pprof__buf_append(&found, &r, sizeof(r)) != 0)
        rc = UV_ENOMEM;
    }
    line = eol != NULL ? eol + 1 : NULL;
  }
  uv_pprof__buf_free(&text);
  if (rc != 0) {
    uv_pprof__buf_free(&found);
    return rc;
  }
  *ranges = (uv_pprof__range_t*)found.base;
  *count = found.len / sizeof(**ranges);
  return 0;
}

void uv_pprof__maps_free(uv_pprof__mapping_t* maps, size_t count) {
  size_t i;

  for (i = 0; i < count; i++) {
    free(maps[i].path);
    free(maps[i].build_id);
  }
  free(maps);
}
