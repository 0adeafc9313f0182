/* The build-ID reader of maps.c reads an object's notes only where the
 * object is mapped. Copies of a small shared object (uv_pprof_notelib)
 * whose PT_NOTE header lies are loaded into the test process: one places
 * its note a GiB past the object, one makes it run a GiB past the object's
 * end. Reading the mappings must not fault, and must take no build ID from
 * either; the true copy keeps its own. */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "task.h"

static char* read_all(const char* path, size_t* len) {
  struct stat st;
  char* data;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  ASSERT_GE(fd, 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  data = malloc((size_t)st.st_size);
  ASSERT(data != NULL);
  ASSERT_EQ(read(fd, data, (size_t)st.st_size), st.st_size);
  close(fd);
  *len = (size_t)st.st_size;
  return data;
}

static Elf64_Phdr* phdrs(char* elf, size_t len, size_t* n) {
  Elf64_Ehdr* eh = (Elf64_Ehdr*)elf;

  ASSERT_GE(len, sizeof(*eh));
  ASSERT_EQ(memcmp(eh->e_ident, ELFMAG, SELFMAG), 0);
  ASSERT_EQ(eh->e_ident[EI_CLASS], ELFCLASS64);
  ASSERT_LE(eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr), len);
  *n = eh->e_phnum;
  return (Elf64_Phdr*)(elf + eh->e_phoff);
}

/* The GNU build ID in the file's notes (read at their file offsets), hex. */
static void file_build_id(char* elf, size_t len, char* out) {
  size_t n;
  size_t i;
  Elf64_Phdr* ph = phdrs(elf, len, &n);

  out[0] = '\0';
  for (i = 0; i < n; i++) {
    Elf64_Nhdr nh;
    const unsigned char* desc;
    size_t j;

    if (ph[i].p_type != PT_NOTE)
      continue;
    ASSERT_LE(ph[i].p_offset + sizeof(nh), len);
    memcpy(&nh, elf + ph[i].p_offset, sizeof(nh));
    if (nh.n_type != NT_GNU_BUILD_ID)
      continue;
    desc = (const unsigned char*)elf + ph[i].p_offset + sizeof(nh) +
           ((nh.n_namesz + 3) & ~3u);
    for (j = 0; j < nh.n_descsz; j++)
      sprintf(out + 2 * j, "%02x", desc[j]);
  }
  ASSERT_NE(out[0], '\0');
}

/* The note a GiB beyond the object. */
static void far_away(Elf64_Phdr* note, const Elf64_Phdr* last_load) {
  note->p_vaddr += 1u << 30;
  note->p_paddr += 1u << 30;
}

/* The note starts at the object's last bytes and runs on for a GiB. Its
 * alignment (16) makes the loader's own check of notes skip it. */
static void past_end(Elf64_Phdr* note, const Elf64_Phdr* last_load) {
  note->p_vaddr = (last_load->p_vaddr + last_load->p_memsz - 24) & ~3ul;
  note->p_paddr = note->p_vaddr;
  note->p_filesz = note->p_memsz = 1u << 30;
  note->p_align = 16;
}

/* Writes a copy of the object with its PT_NOTE headers changed by edit. */
static void falsify(const char* src, const char* dst,
                    void (*edit)(Elf64_Phdr*, const Elf64_Phdr*)) {
  size_t len;
  size_t n;
  size_t i;
  char* elf = read_all(src, &len);
  Elf64_Phdr* ph = phdrs(elf, len, &n);
  const Elf64_Phdr* last_load = NULL;
  int fd;

  for (i = 0; i < n; i++)
    if (ph[i].p_type == PT_LOAD)
      last_load = &ph[i];
  ASSERT(last_load != NULL);
  for (i = 0; i < n; i++)
    if (ph[i].p_type == PT_NOTE && edit != NULL)
      edit(&ph[i], last_load);
  fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, elf, len), (ssize_t)len);
  close(fd);
  free(elf);
}

static const uv_pprof__mapping_t* mapping_of(const uv_pprof__mapping_t* maps,
                                             size_t n, const char* path) {
  size_t i;

  for (i = 0; i < n; i++)
    if (strcmp(maps[i].path, path) == 0)
      return &maps[i];
  fprintf(stderr, "no executable mapping of %s\n", path);
  ASSERT(0);
  return NULL;
}

TEST_IMPL(maps_note_bounds) {
  static const char* const names[] = {"true.so", "far.so", "past.so"};
  void (*const edits[])(Elf64_Phdr*, const Elf64_Phdr*) = {NULL, far_away,
                                                           past_end};
  const char* dir = test_tmpdir();
  char paths[3][256];
  char want[2 * 64 + 1];
  void* handles[3];
  uv_pprof__mapping_t* maps;
  size_t count;
  size_t len;
  char* elf;
  int i;

  elf = read_all(UV_PPROF_NOTELIB, &len);
  file_build_id(elf, len, want);
  free(elf);
  for (i = 0; i < 3; i++) {
    snprintf(paths[i], sizeof(paths[i]), "%s/%s", dir, names[i]);
    falsify(UV_PPROF_NOTELIB, paths[i], edits[i]);
    handles[i] = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
    if (handles[i] == NULL)
      fprintf(stderr, "dlopen %s: %s\n", paths[i], dlerror());
    ASSERT(handles[i] != NULL);
  }

  ASSERT_EQ(uv_pprof__maps_read(&maps, &count), 0);
  ASSERT_STR_EQ(mapping_of(maps, count, paths[0])->build_id, want);
  ASSERT(mapping_of(maps, count, paths[1])->build_id == NULL);
  ASSERT(mapping_of(maps, count, paths[2])->build_id == NULL);
  uv_pprof__maps_free(maps, count);
  for (i = 0; i < 3; i++)
    ASSERT_EQ(dlclose(handles[i]), 0);
  return 0;
}
