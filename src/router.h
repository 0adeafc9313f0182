/* The router layer: the one route table (router.c) that dispatches a
 * request to its endpoint and gives the server each route's body limit.
 * Depends on profile.h, which defines what a route is. */
#ifndef UV_PPROF_ROUTER_H
#define UV_PPROF_ROUTER_H

#include "profile.h"

/* The route of a (percent-decoded) path, or NULL when none is served there
 * exactly. Any thread. */
const uv_pprof__route_t* uv_pprof__route_find(const char* path);
/* The route table, in its order (count rows). Any thread. */
const uv_pprof__route_t* const* uv_pprof__route_table(size_t* count);
/* Decides the response of a complete request. From this call on the route's
 * handler owns req and finishes it exactly once: at once (cmdline, errors,
 * redirects), or when its job or timer is done. Loop thread. */
void uv_pprof__route(uv_pprof__request_t* req);

#endif /* UV_PPROF_ROUTER_H */
