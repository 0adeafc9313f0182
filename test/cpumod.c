/* uv_pprof_cpumod: the module that uv_pprof_cpuhost dlopens and dlcloses in
 * a loop, so that CPU samples land in code that may be unloaded before the
 * sampler unwinds them. */

__attribute__((visibility("default"))) double cpumod_work(int n);

double cpumod_work(int n) {
  double x = 1.0;
  int i;

  for (i = 0; i < n; i++)
    x = x * 1.0000002 + 0.5;
  return x;
}
