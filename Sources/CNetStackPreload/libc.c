// libc's functions behind the ones this library exports, found once with
// dlsym(RTLD_NEXT): every call on a descriptor that is not a stack socket
// goes to them untouched.
#include "preload_internal.h"
#include <dlfcn.h>

struct ns_libc ns_libc;

#define RESOLVE(name) ns_libc.name = dlsym(RTLD_NEXT, #name)

void ns_resolve(void) {
    RESOLVE(socket); RESOLVE(bind); RESOLVE(listen); RESOLVE(accept4); RESOLVE(connect);
    RESOLVE(shutdown); RESOLVE(close); RESOLVE(syscall); RESOLVE(close_range); RESOLVE(closefrom); RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3); RESOLVE(read); RESOLVE(write); RESOLVE(readv); RESOLVE(writev);
    RESOLVE(recv); RESOLVE(send); RESOLVE(recvfrom); RESOLVE(sendto); RESOLVE(recvmsg); RESOLVE(sendmsg); RESOLVE(recvmmsg); RESOLVE(sendmmsg); RESOLVE(sendfile); RESOLVE(splice); RESOLVE(fcntl); RESOLVE(fstat); RESOLVE(ioctl);
    RESOLVE(getsockopt); RESOLVE(setsockopt); RESOLVE(getsockname); RESOLVE(getpeername);
    RESOLVE(poll); RESOLVE(select); RESOLVE(pselect); RESOLVE(epoll_create); RESOLVE(epoll_create1); RESOLVE(epoll_ctl); RESOLVE(epoll_wait); RESOLVE(epoll_pwait); RESOLVE(epoll_pwait2); RESOLVE(ppoll);
    RESOLVE(execve); RESOLVE(execvpe); RESOLVE(fexecve); RESOLVE(posix_spawn); RESOLVE(posix_spawnp);
    RESOLVE(getifaddrs); RESOLVE(freeifaddrs);
}

__attribute__((constructor)) static void ns_init(void) {
    ns_resolve();
    ns_control_init();
    ns_carry_restore();
}

/// At a normal exit (exit, or main returning) every socket the process still
/// holds is closed, as the kernel closes a process's descriptors: the stack
/// sends what `tx` holds, then a FIN. A process that dies without exiting
/// (a signal, _exit) has its connections reset instead, when the stack sees
/// its channel close. Nothing is freed: other threads may still be running.
__attribute__((destructor)) static void ns_fini(void) {
    if (ns_socket_count() == 0 || ns_in_vfork_child()) return;
    int cursor = 0;
    for (ns_sock *s; (s = ns_next_socket(&cursor));) ns_post_close(s->id);
}
