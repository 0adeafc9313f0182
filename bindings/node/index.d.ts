// Typings of uv-pprof (index.js).

export interface StartOptions {
  /** Listen address: an IPv4 or IPv6 literal, or "localhost". Default "127.0.0.1". */
  host?: string;
  /** TCP port, 0 picks a free one. Default 6060. */
  port?: number;
  /** Every request must carry "Authorization: Bearer <token>". Required for a non-loopback host, and then at least 16 characters (EINVAL otherwise). */
  token?: string;
  /** Do not print the "pprof enabled on ..." banner. Default false. */
  quiet?: boolean;
}

/**
 * Starts serving /debug/pprof/ on this thread's loop; returns the index URL.
 * In a worker thread while another thread serves, registers this thread's
 * loop (its handles join the goroutine profile) and returns null.
 */
export function start(options?: StartOptions): string | null;
/** Starts as UV_PPROF / UV_PPROF_TOKEN say; null when UV_PPROF is unset, empty or 0. */
export function startFromEnv(): string | null;
/** Closes everything uv-pprof opened on this thread's loop. */
export function stop(): void;
/** The index URL while serving on this thread's loop, else null. */
export function url(): string | null;
