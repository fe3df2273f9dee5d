// fstat of a stack socket: its descriptor is an eventfd, but a program asks
// fstat whether it holds a socket (S_ISSOCK: libuv's guess_handle, systemd's
// sd_is_socket), so the answer is what Linux's sockfs gives, S_IFSOCK with
// mode 0777 and no size, keeping the eventfd's device and inode so that two
// descriptors of one socket still compare equal. A path (stat of
// /proc/self/fd/N) still names the eventfd.
#include "preload_internal.h"
#include <sys/stat.h>

static void as_socket(struct stat *st) {
    st->st_mode = S_IFSOCK | 0777;
    st->st_size = 0;
    st->st_blocks = 0;
    st->st_blksize = 4096;
}

NS_EXPORT int fstat(int fd, struct stat *st) {
    int r = LIBC(fstat)(fd, st);
    if (r == 0 && ns_lookup(fd)) as_socket(st);
    return r;
}

// struct stat64 is struct stat on the 64-bit ABIs this library builds for.
_Static_assert(sizeof(struct stat64) == sizeof(struct stat), "stat64 is stat");
NS_EXPORT int fstat64(int fd, struct stat64 *st) { return fstat(fd, (struct stat *)st); }

/// The entry points of programs built against glibc before 2.33.
NS_EXPORT int __fxstat(int ver, int fd, struct stat *st) {
    (void)ver;
    return fstat(fd, st);
}

NS_EXPORT int __fxstat64(int ver, int fd, struct stat *st) {
    (void)ver;
    return fstat(fd, st);
}
