#ifndef NETSTACK_PRELOAD_H
#define NETSTACK_PRELOAD_H
// libNetStackPreload.so: loaded with LD_PRELOAD (`netstack run`), it puts an
// unmodified program's AF_INET/AF_INET6 stream sockets on the stack that
// `netstack up --api PATH` runs, and passes every other descriptor and call
// to libc. It exports the POSIX socket calls themselves; nothing else.
#endif
