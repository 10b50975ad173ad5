/* LD_PRELOAD shim for tests/sync_failure.rs: once the file named by
 * $WAL_FAIL_SYNC_WHEN exists, fdatasync and fsync fail with EIO, as they
 * do when a disk drops writes. No product code knows about this. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int failing(void) {
    const char *trigger = getenv("WAL_FAIL_SYNC_WHEN");
    return trigger && access(trigger, F_OK) == 0;
}

int fdatasync(int fd) {
    if (failing()) { errno = EIO; return -1; }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd) {
    if (failing()) { errno = EIO; return -1; }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
