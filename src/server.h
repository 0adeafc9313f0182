/* The server layer: the listener and its connections on the host's loop
 * (server.c), which parse requests, hand them to the router and write the
 * answers. Depends on router.h and everything below it. */
#ifndef UV_PPROF_SERVER_H
#define UV_PPROF_SERVER_H

#include "router.h"

typedef struct uv_pprof__server_s uv_pprof__server_t;

typedef struct uv_pprof__server_config_s {
  struct sockaddr_storage addr;
  char token[256];
  size_t token_len;
  unsigned int max_connections;
  unsigned int idle_timeout_ms;
  unsigned int request_timeout_ms;
  unsigned int write_timeout_ms;
  /* Called on the loop's thread when a fork's child first runs its loop
   * (uv_pprof__server_fork_child): the inherited server must be stopped
   * there, by whoever owns it. */
  void (*on_forked)(uv_loop_t* loop);
} uv_pprof__server_config_t;

/* Binds and listens on `loop`. Returns 0 and *out, or a negative libuv code
 * with nothing left open. Loop thread. */
int uv_pprof__server_start(uv_loop_t* loop,
                           const uv_pprof__server_config_t* config,
                           uv_pprof__server_t** out);
/* Closes the listener, every connection and the worker; frees the server once
 * all its handles have closed. Loop thread. */
void uv_pprof__server_close(uv_pprof__server_t* s);
void uv_pprof__server_address(const uv_pprof__server_t* s,
                              struct sockaddr_storage* addr);
/* The server's worker thread (the timeline's samples run there too). */
uv_pprof__worker_t* uv_pprof__server_worker(const uv_pprof__server_t* s);
/* Connections open (each may have a write or shutdown request in flight).
 * Loop thread. */
unsigned int uv_pprof__server_connections(const uv_pprof__server_t* s);
/* In a fork's child (inside fork(), with the worker's lock held by the
 * prepare handler): the listener and connection descriptors are replaced by
 * eventfds (the parent's sockets leave the child), the listener's readable,
 * so that accept fails the first time the child runs its loop and the
 * server calls config.on_forked there; the worker forgets its thread. */
void uv_pprof__server_fork_child(uv_pprof__server_t* s);
/* Serves fd, a connected stream socket (a socketpair's end: the HTTP
 * fuzzer), as if the listener had accepted it, without the loopback-peer
 * rule; the server owns fd from then on, also on failure. Returns 0, or
 * UV_ENOMEM or UV_ECANCELED (closing). Loop thread. */
int uv_pprof__server_adopt(uv_pprof__server_t* s, uv_os_sock_t fd);

#endif /* UV_PPROF_SERVER_H */
