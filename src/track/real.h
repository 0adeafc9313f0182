/* Finding the libuv function an interposed call was meant for, shared by
 * the libraries that define libuv's names (libuv_pprof_track and
 * libuv_pprof_attach). dlsym(RTLD_NEXT) alone is wrong twice over: it finds
 * nothing when libuv was loaded RTLD_LOCAL (a Python extension, a Lua
 * module), and the wrong libuv when the caller carries a copy of its own
 * that it calls through its PLT. */
#ifndef UV_PPROF_TRACK_REAL_H
#define UV_PPROF_TRACK_REAL_H

/* The definition of `name` that the code returning to `ra` would call
 * without us: its own object's, else one of that object's dependencies'
 * (found with dlsym on the object's handle, which searches nothing
 * preloaded), else the next one after us in the global lookup order.
 * `self` is our own definition, never returned. NULL when no libuv has it:
 * the wrapper then does nothing and answers as libuv would for a bad
 * argument. Cached by call site (a return address calls one function), so
 * a call costs a hash probe; an object whose code called us is kept loaded
 * (one dlopen reference), so a cached answer never outlives its code.
 * Any thread. */
void* uv_pprof__real(const char* name, void* self, void* ra);

/* The object defining `fn` (its dli_fbase), for telling libuvs apart. */
void* uv_pprof__object_of(void* fn);

#endif /* UV_PPROF_TRACK_REAL_H */
