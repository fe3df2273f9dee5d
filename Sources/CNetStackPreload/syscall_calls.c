// syscall(2) with a number the library must see: libuv (Node) closes every
// descriptor with syscall(SYS_close, fd), not close, so without this a
// stack socket it closed would stay open on the stack, unflushed and
// unfinished, and the library's table would still name its number when
// the kernel hands it out again (to a file Node then reads). Every other
// number goes to libc's syscall untouched.
#include "preload_internal.h"
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

NS_EXPORT long syscall(long number, ...) {
    va_list ap;
    va_start(ap, number);
    // As libc's: six register-sized arguments, whatever the call uses.
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    switch (number) {
    case SYS_close: return close((int)a1);
    case SYS_close_range: return close_range((unsigned int)a1, (unsigned int)a2, (int)a3);
    default: return LIBC(syscall)(number, a1, a2, a3, a4, a5, a6);
    }
}
