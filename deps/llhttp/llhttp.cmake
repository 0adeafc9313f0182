# llhttp, compiled from the sources Debian ships in node-llhttp
# (/usr/share/llhttp/*.c, /usr/share/include/llhttp/llhttp.h). Nothing of
# llhttp is copied into this tree. Its symbols stay hidden inside uv_pprof.
find_path(LLHTTP_INCLUDE_DIR llhttp.h
  PATHS /usr/share/include/llhttp NO_DEFAULT_PATH REQUIRED)
find_path(LLHTTP_SOURCE_DIR llhttp.c
  PATHS /usr/share/llhttp NO_DEFAULT_PATH REQUIRED)
add_library(uv_pprof_llhttp OBJECT
  ${LLHTTP_SOURCE_DIR}/llhttp.c
  ${LLHTTP_SOURCE_DIR}/api.c
  ${LLHTTP_SOURCE_DIR}/http.c)
target_include_directories(uv_pprof_llhttp PUBLIC ${LLHTTP_INCLUDE_DIR})
target_compile_options(uv_pprof_llhttp PRIVATE -w)
