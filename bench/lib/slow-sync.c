/*
 * A disk whose flushes are slow, for the benchmarks (bench/onramp.ts, ONRAMP_SLOW_SYNC_US):
 * loaded with LD_PRELOAD into a gateway, it makes every fsync and fdatasync wait SLOW_SYNC_US
 * microseconds before the real call, as on a network block device where a flush takes
 * milliseconds. Writes and everything else are untouched (LMDB's synchronous meta-page write,
 * O_DSYNC, is not slowed). Built by the benchmark with the system's C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static useconds_t slow_us(void) {
  const char *v = getenv("SLOW_SYNC_US");
  return v == NULL ? 0 : (useconds_t)strtoul(v, NULL, 10);
}

int fsync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  usleep(slow_us());
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  usleep(slow_us());
  return real(fd);
}
