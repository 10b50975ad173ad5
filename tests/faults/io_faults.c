/* LD_PRELOAD shim for the fault tests (tests/io_faults.rs): while the
 * file named by $WAL_FAIL_SYNC_WHEN exists, fdatasync and fsync fail with
 * EIO, as they do when a disk drops writes; while $WAL_FAIL_READ_WHEN
 * exists, pread fails with EIO, as on a bad sector. No product code knows
 * about this. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static int triggered(const char *variable) {
    const char *trigger = getenv(variable);
    return trigger && access(trigger, F_OK) == 0;
}

int fdatasync(int fd) {
    if (triggered("WAL_FAIL_SYNC_WHEN")) { errno = EIO; return -1; }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd) {
    if (triggered("WAL_FAIL_SYNC_WHEN")) { errno = EIO; return -1; }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset) {
    if (triggered("WAL_FAIL_READ_WHEN")) { errno = EIO; return -1; }
    ssize_t (*real)(int, void *, size_t, off_t) =
        (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    return real(fd, buf, count, offset);
}
