/* The process-facts layer: what uv_pprof reads of the process it lives in.
 * Its executable mappings (maps.c), threads (threads.c), code addresses
 * named (symbolize.c, demangle.c; debuginfo.c and jit.c behind symbols.h),
 * jemalloc (jemalloc.c), memory figures (memstat.c), and the CPU sampler
 * with its unwinder (sampler.c, unwind.c). Depends on base.h only: no
 * loop, request or profile format. */
#ifndef UV_PPROF_PROC_H
#define UV_PPROF_PROC_H

#include "base.h"

/* An address range [start, end). */
typedef struct uv_pprof__range_s {
  uintptr_t start;
  uintptr_t end; /* exclusive */
} uv_pprof__range_t;

/* ---- src/maps.c: the process's executable mappings --------------------- */

typedef struct uv_pprof__mapping_s {
  uintptr_t start;
  uintptr_t limit;
  uintptr_t offset;
  char* path;     /* as in /proc/self/maps, " (deleted)" trimmed */
  char* build_id; /* lowercase hex of NT_GNU_BUILD_ID, or NULL */
} uv_pprof__mapping_t;

/* Executable mappings of /proc/self/maps in maps order, except that those of
 * the main executable come first. Anonymous regions are skipped; [vdso] and
 * [vsyscall] are kept. Returns 0 or a negative libuv code. */
int uv_pprof__maps_read(uv_pprof__mapping_t** maps, size_t* count);
/* The executable mappings of maps text[0..len) (need not be NUL-ended), in
 * its order, without build ids. Lines that are not maps lines are skipped.
 * Returns 0 or UV_ENOMEM. Free with uv_pprof__maps_free(). */
int uv_pprof__maps_parse(const char* text, size_t len,
                         uv_pprof__mapping_t** maps, size_t* count);
void uv_pprof__maps_free(uv_pprof__mapping_t* maps, size_t count);
/* The executable memory of /proc/self/maps that no file backs: anonymous
 * regions (named or not) and memfd mappings, where JIT compilers put their
 * code. *ranges (malloc'd, the caller frees it) in maps order, which is by
 * address. Returns 0 or a negative libuv code. Worker thread. */
int uv_pprof__maps_jit(uv_pprof__range_t** ranges, size_t* count);

#define UV_PPROF__MAX_BUILD_ID 64 /* bytes; GNU ld writes 20 (sha1) */
struct dl_phdr_info;
/* The NT_GNU_BUILD_ID of a loaded object, read from its PT_NOTE segments in
 * memory (where the loader mapped them) into id. Returns its length, 0
 * when it has none. Safe inside dl_iterate_phdr's callback. */
size_t uv_pprof__loaded_build_id(const struct dl_phdr_info* info,
                                 unsigned char id[UV_PPROF__MAX_BUILD_ID]);

/* ---- src/symbolize.c: code address -> function, file, line ------------- */

#define UV_PPROF__MAX_INLINE 8

typedef struct uv_pprof__symbol_s {
  const char* name;   /* linker name (mangled for C++), NULL when unknown */
  const char* file;   /* source file, NULL when unknown */
  int line;           /* source line, 0 when unknown */
  uintptr_t start;    /* entry of the function (for an inlined frame, of
                         the one it is inlined into, as Go prints offsets):
                         addr - start = offset */
  const char* module; /* path of the object containing the address; NULL
                         for JIT code */
  int nameless;       /* nothing names the address: name is made up,
                         "<module base name>+0x<ELF address>" (what
                         addr2line takes) or "[jit]", and shown without an
                         offset */
} uv_pprof__symbol_t;

/* Symbolizes addr, a call site (return address - 1 for every frame but the
 * leaf). Fills out[0..n) innermost inlined frame first, the real function
 * last (deeper inlining than max keeps the outermost frames), and returns
 * n >= 1 when some loaded object contains addr or it is JIT code, 0
 * otherwise. Names come from the object's symbol tables and DWARF, or its
 * separate debug file (debuginfo.c), or for JIT code from the process's
 * perf map (jit.c); when nothing names addr, n is 1 and that frame is
 * `nameless` (its file NULL; its name NULL only when the object could not
 * be told). Objects loaded later with dlopen are picked up. The strings
 * stay valid (equal strings, equal pointers) until
 * uv_pprof__symbolizer_reset(). Worker thread only. */
size_t uv_pprof__symbolize(uintptr_t addr, uv_pprof__symbol_t* out, size_t max);
/* Frees every table and cache (the next use rebuilds them). Called with no
 * worker thread running. */
void uv_pprof__symbolizer_reset(void);
/* Where separate debug files are looked for: ':'-separated roots, each
 * with its .build-id/ tree and the modules' directories below it; NULL
 * restores the default, /usr/lib/debug. For tests. Returns 0 or
 * UV_ENOMEM. With no worker thread running. */
int uv_pprof__debuginfo_roots(const char* roots);
/* The name to show people for a name from uv_pprof__symbolize(): a C++
 * linker name demangled and shortened (uv_pprof__demangle), else name
 * itself. Text views use it; protos and /symbol keep the linker's names,
 * which pprof demangles itself. Kept beside the interned name (demangling
 * costs ~10 us a name). Worker thread only. */
const char* uv_pprof__symbol_readable(const char* name);

/* ---- src/demangle.c: readable C++ names -------------------------------- */

/* A C++ linker name ("_Z...") demangled by the process's C++ runtime and
 * shortened as go tool pprof shows it ("node::Environment::RunTimers"), in
 * memory the caller frees; NULL when name is not mangled or the process has
 * no C++ runtime. Any thread. */
char* uv_pprof__demangle(const char* name);

/* ---- src/stacks.c: the heap's stack table ------------------------------ */

/* Every stack of jemalloc's heap profile, interned once and named by a
 * small id, for the live heap profiles and the history of snapshots alike.
 * Worker thread only. */

/* The most frames a stack keeps (jemalloc records at most 128). */
#define UV_PPROF__STACK_MAX 256

/* Id 0 is the empty stack. Every other id names one stack until the table
 * frees it, which happens only to stacks nobody holds, in
 * uv_pprof__stacks_collect(). */

/* Interns frames[0..n) (return addresses, leaf first) and holds the id once
 * (release it with uv_pprof__stacks_release). Returns 0 or UV_ENOMEM. */
int uv_pprof__stacks_intern(const uintptr_t* frames, size_t n, uint32_t* id);
/* A stack found by the 128-bit key a caller gave it with add_key (the hash
 * of its text, say): 1 and the id, held once, or 0 when unknown. */
int uv_pprof__stacks_find_key(uint64_t h1, uint64_t h2, uint32_t* id);
/* Remembers a key for id (which must be held). Returns 0 or UV_ENOMEM (the
 * table then merely forgets more). */
int uv_pprof__stacks_add_key(uint64_t h1, uint64_t h2, uint32_t id);
void uv_pprof__stacks_hold(uint32_t id);
void uv_pprof__stacks_release(uint32_t id);

/* The frames of id into out[0..max), leaf first; returns how many. */
size_t uv_pprof__stacks_frames(uint32_t id, uintptr_t* out, size_t max);
/* The frames of id as numbers of the address table, leaf first: *numbers
 * points into the table (valid until the next intern or collection);
 * returns how many. A caller that derives something from each address (a
 * profile's location) caches it by number: stacks share most frames. */
size_t uv_pprof__stacks_numbers(uint32_t id, const uint32_t** numbers);
uintptr_t uv_pprof__stacks_addr(uint32_t number);
/* How many addresses are numbered: the size of an array indexed by
 * number. */
size_t uv_pprof__stacks_naddrs(void);
/* One more than the largest id in use: the size of an array indexed by
 * id. */
size_t uv_pprof__stacks_limit(void);
/* Bytes mapped by the table. */
size_t uv_pprof__stacks_bytes(void);
/* Frees every stack nobody holds (and its keys); when nothing is held any
 * more, unmaps everything. */
void uv_pprof__stacks_collect(void);
/* Called after a dump held its stacks: collects once the table has grown
 * by half since the last collection, so that stacks a busy process drops
 * do not pile up while the worker never idles. */
void uv_pprof__stacks_maybe_collect(void);

/* ---- src/jemalloc.c: mallctl, prof.dump, heap_v2, allocator stats ------ */

/* What the process's allocator offers for heap profiling. */
typedef enum {
  UV_PPROF__HEAP_NO_JEMALLOC, /* malloc is not jemalloc's (or no mallctl) */
  UV_PPROF__HEAP_NO_PROF,     /* jemalloc built without profiling */
  UV_PPROF__HEAP_PROF_OFF,    /* opt.prof false: not enabled at startup */
  UV_PPROF__HEAP_PROF_ON      /* opt.prof true: prof.dump works */
} uv_pprof__heap_mode_t;

typedef struct uv_pprof__je_state_s {
  uv_pprof__heap_mode_t mode;
  int active;         /* prof.active: sampling now (PROF_ON only) */
  int accum;          /* opt.prof_accum: cumulative counts (PROF_ON only) */
  unsigned lg_sample; /* prof.lg_sample, else opt.lg_prof_sample */
} uv_pprof__je_state_t;

/* Reads the state with a few mallctl reads; finds jemalloc on first use.
 * Any thread. */
void uv_pprof__je_state(uv_pprof__je_state_t* st);
/* Sets prof.active when opt.prof is on and sampling is off. Returns 1 when
 * it turned sampling on, else 0. Any thread. */
int uv_pprof__je_activate(void);
/* Stops jemalloc sampling this thread's allocations (thread.prof.active),
 * when jemalloc profiles at all: the worker's symbol tables and buffers are
 * uv_pprof's, not the host's, and must not show in its heap profile. The
 * calling thread only. */
void uv_pprof__je_thread_unsampled(void);
/* One sentence saying why heap profiling is off in `mode` and how to turn
 * it on (a static string), or NULL for UV_PPROF__HEAP_PROF_ON. */
const char* uv_pprof__je_howto(uv_pprof__heap_mode_t mode);

typedef struct uv_pprof__je_counts_s {
  uint64_t cur_objs; /* live sampled objects */
  uint64_t cur_bytes;
  uint64_t accum_objs; /* all-time, only with opt.prof_accum */
  uint64_t accum_bytes;
} uv_pprof__je_counts_t;

typedef struct uv_pprof__je_stack_s {
  uv_pprof__je_counts_t counts; /* as printed: sampled, not unbiased */
  uint32_t id; /* in the stack table (stacks.c), held by the dump */
} uv_pprof__je_stack_t;

/* A parsed heap_v2 dump (jemalloc's prof.dump format). Two rows may name
 * one stack: stacks that differ only in jemalloc's own frames. */
typedef struct uv_pprof__je_dump_s {
  uint64_t period;             /* R of "heap_v2/R": 2^lg_prof_sample bytes */
  uv_pprof__je_counts_t total; /* the "t*:" summary line */
  uv_pprof__je_stack_t* stacks;
  size_t nstacks;
} uv_pprof__je_dump_t;

/* Which leading frames of a stack are jemalloc's own, to be dropped (a
 * stack made only of such frames is kept whole): those in `ranges` (its
 * image's code), or with by_name those whose symbol is an allocator's
 * (a static jemalloc: jeprof's rule). Neither: none. */
typedef struct uv_pprof__je_strip_s {
  const uv_pprof__range_t* ranges;
  size_t nranges;
  int by_name;
} uv_pprof__je_strip_t;

/* Parses text[0..len) (need not be NUL-terminated; never read beyond),
 * interning each stack, stripped, in the stack table (a stack seen before
 * costs a hash of its line, not a parse). Anything but jemalloc's layout
 * gives UV_EINVAL; out of memory UV_ENOMEM; *out is then empty. Free with
 * uv_pprof__je_dump_free(), which releases the stacks. Worker thread. */
int uv_pprof__je_parse(const char* text, size_t len,
                       const uv_pprof__je_strip_t* strip,
                       uv_pprof__je_dump_t* out);
void uv_pprof__je_dump_free(uv_pprof__je_dump_t* d);
/* prof.dump into a memfd, parsed, jemalloc's own leading frames dropped.
 * Returns 0, UV_ENOENT when profiling is off (or no jemalloc), UV_EIO when
 * jemalloc failed to dump, or the parser's codes. Worker thread. */
int uv_pprof__je_dump(uv_pprof__je_dump_t* out);
/* Number of stacks a dump would have now (0 when profiling is off): the
 * index page's count. Dumps. Worker thread. */
int64_t uv_pprof__je_count(void);

/* The allocator figures read by uv_pprof__je_stats: id, mallctl name, C
 * type of the mallctl. The merged arena stats live at index 4096
 * (MALLCTL_ARENAS_ALL). */
#define UV_PPROF__JE_STATS_MAP(XX)                                   \
  XX(ALLOCATED, "stats.allocated", size_t)                           \
  XX(ACTIVE, "stats.active", size_t)                                 \
  XX(METADATA, "stats.metadata", size_t)                             \
  XX(RESIDENT, "stats.resident", size_t)                             \
  XX(MAPPED, "stats.mapped", size_t)                                 \
  XX(RETAINED, "stats.retained", size_t)                             \
  XX(NARENAS, "arenas.narenas", unsigned)                            \
  XX(SMALL_NMALLOC, "stats.arenas.4096.small.nmalloc", uint64_t)     \
  XX(SMALL_NDALLOC, "stats.arenas.4096.small.ndalloc", uint64_t)     \
  XX(SMALL_NREQUESTS, "stats.arenas.4096.small.nrequests", uint64_t) \
  XX(LARGE_NMALLOC, "stats.arenas.4096.large.nmalloc", uint64_t)     \
  XX(LARGE_NDALLOC, "stats.arenas.4096.large.ndalloc", uint64_t)     \
  XX(LARGE_NREQUESTS, "stats.arenas.4096.large.nrequests", uint64_t)

enum {
#define XX(id, name, type) UV_PPROF__JE_##id,
  UV_PPROF__JE_STATS_MAP(XX)
#undef XX
      UV_PPROF__JE_NSTATS
};

typedef struct uv_pprof__je_stats_s {
  const char* version; /* jemalloc's, or NULL */
  uint64_t value[UV_PPROF__JE_NSTATS];
  unsigned have;        /* bit (1 << id): value[id] read */
  uint64_t total_bytes; /* Σ nmalloc × size over all size classes */
  int have_total;
} uv_pprof__je_stats_t;

/* Refreshes jemalloc's stats epoch and reads the figures above. Returns 0
 * or UV_ENOENT without jemalloc. Worker thread. */
int uv_pprof__je_stats(uv_pprof__je_stats_t* st);

/* ---- src/threads.c: the process's threads ------------------------------ */

typedef struct uv_pprof__thread_s {
  int tid;
  char name[16]; /* /proc/self/task/<tid>/comm */
} uv_pprof__thread_t;

/* The threads of the process, sorted by tid; the caller frees the array with
 * free(). Returns 0 or a negative code. */
int uv_pprof__threads_read(uv_pprof__thread_t** threads, size_t* count);

/* ---- src/threadstate.c: what a thread is doing now --------------------- */

enum {
  UV_PPROF__THREAD_RUNNING,    /* on a CPU or ready to run */
  UV_PPROF__THREAD_IN_SYSCALL, /* blocked in system call `nr` */
  UV_PPROF__THREAD_IN_KERNEL   /* blocked in the kernel, not in a call */
};

typedef struct uv_pprof__syscall_s {
  int state; /* UV_PPROF__THREAD_* */
  long nr;
  uintptr_t args[6];
  uintptr_t sp; /* the user stack pointer and pc (not when RUNNING) */
  uintptr_t pc;
} uv_pprof__syscall_t;

/* Reads /proc/self/task/<tid>/syscall. Returns 0, UV_ESRCH when the thread
 * has exited, or another negative code (the file cannot be read). Any
 * thread but `tid` itself. */
int uv_pprof__thread_syscall(int tid, uv_pprof__syscall_t* out);
/* Parses that file's text ("running", "NR 0xARG x6 0xSP 0xPC", or "-1 0xSP
 * 0xPC"). Returns 0 or UV_EINVAL. */
int uv_pprof__parse_syscall(const char* text, uv_pprof__syscall_t* out);
/* 1 when s is a wait in epoll_wait, epoll_pwait or epoll_pwait2 on epfd. */
int uv_pprof__syscall_waits_on(const uv_pprof__syscall_t* s, int epfd);

/* ---- src/unwind.c: unwinding the CPU sampler's stack copies ------------ */

/* The registers a sample keeps, in DWARF numbering. */
#if defined(__x86_64__)
#define UV_PPROF__NREGS 17 /* rax..r15 (0-15), rip (16) */
#elif defined(__aarch64__)
#define UV_PPROF__NREGS 33 /* x0..x30 (0-30), sp (31), pc (kept last) */
#else
#define UV_PPROF__NREGS 1
#endif

/* Every register of a copy known (uv_pprof__stack_copy_t.known). */
#define UV_PPROF__REGS_ALL (~(uint64_t)0)

typedef struct uv_pprof__stack_copy_s {
  int tid;
  const uint64_t* regs;       /* UV_PPROF__NREGS, the pc last */
  uint64_t known;             /* bit i: regs[i] holds the register's value
                                 (a blocked thread's copy knows sp and pc
                                 only); UV_PPROF__REGS_ALL for a signal's */
  uintptr_t stack_addr;       /* where the copy of the stack starts */
  const unsigned char* stack; /* the copy: all the unwinder may read */
  size_t stack_len;
} uv_pprof__stack_copy_t;

typedef struct uv_pprof__unwind_stats_s {
  uint64_t by_rules; /* samples unwound from the rule table */
  uint64_t by_libdw; /* samples unwound by libdw's own unwinder */
  uint64_t rules;    /* rules asked of libdw */
  uint64_t flushes;  /* times the table was emptied: the objects changed */
  size_t cached;     /* rules in the table now */
} uv_pprof__unwind_stats_t;

enum { UV_PPROF__UNWIND_RULES, UV_PPROF__UNWIND_LIBDW };

/* Tells libdw the process's objects again, and empties the rule table,
 * when the loader's counters say something was loaded or unloaded since
 * the last call (the first call loads libdw). */
void uv_pprof__unwind_refresh(void);
/* Whether the instruction that ends at `ra` is a call (E8 rel32, or FF /2
 * with its prefix, ModRM, SIB and displacement), read from the process's
 * own memory: an address not mapped is no. Any thread. */
int uv_pprof__after_call(uintptr_t ra);
/* The stack of a copy into pcs (at most max >= 1): the interrupted pc, then
 * return address - 1 for each caller. UV_PPROF__UNWIND_RULES uses the rule
 * table and falls back to libdw for a stack it cannot do alone;
 * UV_PPROF__UNWIND_LIBDW is libdw only (tests compare the two). Returns
 * >= 1 (the pc alone without libdw). *complete (when not NULL) is set to 1
 * when the unwinding reached the outermost frame (the thread's entry: its
 * CFI leaves the return address undefined), 0 when it stopped early (max
 * reached, the copy's end, no rule, a return address of 0). */
size_t uv_pprof__unwind(const uv_pprof__stack_copy_t* c, int how,
                        uintptr_t* pcs, size_t max, int* complete);

void uv_pprof__unwind_stats(uv_pprof__unwind_stats_t* st);
/* Frees libdw's session and the rule table. */
void uv_pprof__unwind_reset(void);
/* None of these is thread-safe: the sampler calls them under its lock. */

/* ---- src/sampler.c: the CPU sampler ------------------------------------ */

#define UV_PPROF__CPU_HZ 100
#define UV_PPROF__CPU_PERIOD_NS (1000000000 / UV_PPROF__CPU_HZ)
#define UV_PPROF__CPU_MAX_FRAMES 64

typedef struct uv_pprof__cpu_sample_s {
  int64_t time; /* when it was taken, uv_pprof__sampler_now()'s clock */
  int tid;
  const char* thread;   /* the thread's name, "" when unknown */
  int64_t weight;       /* periods of CPU time it stands for (>= 1) */
  const uintptr_t* pcs; /* the interrupted pc, then call sites (return
                           address - 1), leaf first */
  size_t npcs;          /* >= 1 */
  const uv_pprof__stack_copy_t* copy; /* what pcs were unwound from */
} uv_pprof__cpu_sample_t;

typedef void (*uv_pprof__cpu_sample_cb)(const uv_pprof__cpu_sample_t* s,
                                        void* arg);

typedef struct uv_pprof__sampler_stats_s {
  uint64_t samples;     /* taken since the process started */
  uint64_t lost;        /* dropped: the ring was full */
  uint64_t handler_ns;  /* wall time spent in the signal handler */
  uint64_t stack_bytes; /* of stack copied by the handler */
  uint64_t unwind_ns;   /* time spent unwinding on the worker */
  uint64_t frames;      /* frames unwound */
  size_t threads;       /* threads with a timer now */
  int signo;            /* the signal in use, 0 when disarmed */
} uv_pprof__sampler_stats_t;

/* Registers the sampler's fork handlers (once). Called when a server
 * starts, long before any arming: a fork already under way when the handlers
 * are registered runs none of them, and if the first arming raced with it
 * the child would inherit the handler. Any thread. */
void uv_pprof__sampler_prepare(void);
/* Takes a reference on the sampler; the first one arms it: a free real-time
 * signal gets the handler, every thread a timer on its CPU clock (100 Hz of
 * its CPU time). Returns 0 or a negative libuv code (UV_EBUSY: no free
 * real-time signal; UV_ENOTSUP: unsupported architecture). Any thread. */
int uv_pprof__sampler_acquire(void);
/* Drops a reference; the last one removes the timers and the handler (the
 * previous disposition comes back); the buffers stay for the next window
 * until uv_pprof__sampler_trim. Any thread. */
void uv_pprof__sampler_release(void);
/* Gives threads started since the last call a timer, then unwinds every
 * sample taken so far and passes each to cb (in no particular order of
 * time), on the calling thread. Nothing when disarmed. Worker thread. */
void uv_pprof__sampler_drain(uv_pprof__cpu_sample_cb cb, void* arg);
/* Whether a drain is due: the ring is a quarter full, a thread's stack
 * bounds are to be learnt, or the last drain is DRAIN_NS (0.5 s) old. Each
 * drain wakes the worker, whose cold start costs more than a few samples,
 * so windows ask every 100 ms and drain only then. Any thread. */
int uv_pprof__sampler_due(void);
/* Frees what is kept from one window to the next (the unwinder's state:
 * libdw's session and the rule table; the ring and the thread table),
 * unless a window is open. Worker thread, when it
 * exits for idleness. */
void uv_pprof__sampler_trim(void);
/* The clock of sample times (CLOCK_MONOTONIC, ns). Any thread. */
int64_t uv_pprof__sampler_now(void);
/* The counters (since the process started) and the state now. Any
 * thread. */
void uv_pprof__sampler_stats(uv_pprof__sampler_stats_t* st);

/* One thread's registers and stack, copied on request (stall sampling): by
 * the thread itself in the sampler's signal handler when it runs, by the
 * asker from /proc's sp and pc when it is blocked in a system call. */
#define UV_PPROF__STACK_COPY_MAX (32 * 1024) /* bytes of stack copied */

enum {
  UV_PPROF__CAPTURE_FREE,
  UV_PPROF__CAPTURE_ASKED,   /* the signal is on its way */
  UV_PPROF__CAPTURE_WRITING, /* the handler is copying */
  UV_PPROF__CAPTURE_DONE
};

typedef struct uv_pprof__capture_s {
  int state; /* atomic, UV_PPROF__CAPTURE_* */
  int tid;
  int64_t time; /* uv_pprof__sampler_now() when copied */
  uint64_t regs[UV_PPROF__NREGS];
  uint64_t known; /* as in uv_pprof__stack_copy_t */
  uintptr_t stack_addr;
  size_t stack_len;
  unsigned char stack[UV_PPROF__STACK_COPY_MAX];
} uv_pprof__capture_t;

/* Makes c (mapped by the caller, populated: the handler must not fault) the
 * capture buffer and takes a reference on the sampler's signal, installing
 * its handler if no CPU profile has. One capturer at a time. Returns 0,
 * UV_EBUSY (another capturer, or no free real-time signal) or UV_ENOTSUP.
 * Any thread. */
int uv_pprof__sampler_capture_acquire(uv_pprof__capture_t* c);
/* Unregisters the buffer and drops the reference; when it returns no
 * handler writes into the buffer any more. Any thread. */
void uv_pprof__sampler_capture_release(void);
/* Asks thread `tid` of this process for a capture: queues the signal with a
 * fresh token (a late answer to an earlier request is ignored); the buffer's
 * state becomes DONE once the thread has run the handler. A thread that
 * blocks the signal answers when it unblocks it, or never: ask again only
 * once the previous request is DONE, so at most one is queued. Returns 0 or
 * a negative libuv code (UV_ESRCH: no such thread). The capturer's thread. */
int uv_pprof__sampler_capture_ask(int tid);
/* Fills the buffer for thread `tid`, blocked in a system call whose user
 * sp and pc /proc reported: sp and pc known, the stack read from sp with
 * process_vm_readv (a page that cannot be read ends the copy). The caller
 * checks afterwards that the thread was still blocked there. */
void uv_pprof__sampler_capture_blocked(int tid, uintptr_t sp, uintptr_t pc);
/* Unwinds a copy with the sampler's unwinder (uv_pprof__unwind), under the
 * sampler's lock. Any thread. */
size_t uv_pprof__sampler_unwind(const uv_pprof__stack_copy_t* c, uintptr_t* pcs,
                                size_t max, int* complete);
/* The counters (since the process started) and the state now. Any
 * thread. */
void uv_pprof__sampler_stats(uv_pprof__sampler_stats_t* st);

/* ---- src/memstat.c: the process's memory figures ----------------------- */

typedef enum {
  UV_PPROF__ALLOC_JEMALLOC, /* jemalloc is malloc: je has its stats */
  UV_PPROF__ALLOC_GLIBC,    /* glibc's malloc: mi has mallinfo2() */
  UV_PPROF__ALLOC_OTHER     /* another malloc (a sanitizer's): no figures */
} uv_pprof__alloc_kind_t;

typedef struct uv_pprof__memstat_s {
  uv_pprof__alloc_kind_t kind;
  const char* object; /* the object defining malloc (basename), or "" */
  uv_pprof__je_stats_t je;
  struct {
    uint64_t arena, ordblks, hblks, hblkhd, uordblks, fordblks, keepcost;
  } mi;
  uint64_t heap_alloc; /* Go's HeapAlloc: stats.allocated, glibc
                          uordblks + hblkhd, 0 for OTHER */
  uint64_t heap_inuse; /* Go's HeapInuse: stats.active, glibc as above */
  uint64_t rss;        /* resident now (/proc/self/statm), bytes */
  uint64_t max_rss;    /* peak (getrusage), bytes */
} uv_pprof__memstat_t;

/* Reads the allocator's figures and RSS. Worker thread (jemalloc's stats
 * epoch is refreshed; /proc is read). */
void uv_pprof__memstat_read(uv_pprof__memstat_t* m);
/* The resident set now (/proc/self/statm), bytes; 0 when unreadable. Worker
 * thread (reads /proc). */
uint64_t uv_pprof__memstat_rss(void);

#endif /* UV_PPROF_PROC_H */
