// The calls that start a new image, wrapped so the stack sockets go with it
// (carry.c): the exec calls that end in execve inside libc, one by one (libc
// calls its own execve directly), and posix_spawn, whose child execs inside
// libc where no wrapper sees it. A vfork child's exec (Python's subprocess)
// comes through execve here and is carried as a spawn.
#include "preload_internal.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

/// The body of a wrapper: `call` (which passes `env`) with the sockets
/// carried; `failed` says from its result `r` that no new image started.
#define CARRIED(kind, envp, call, failed)                            \
    ns_carry c;                                                      \
    char *const *env = ns_carry_prepare(envp, kind, &c);             \
    int r = call;                                                    \
    if (failed) ns_carry_failed(&c);                                 \
    ns_carry_end(&c);                                                \
    return r;

NS_EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    CARRIED(NS_CARRY_EXEC, envp, LIBC(execve)(path, argv, env), true)
}

NS_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    CARRIED(NS_CARRY_EXEC, envp, LIBC(execvpe)(file, argv, env), true)
}

NS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
    CARRIED(NS_CARRY_EXEC, envp, LIBC(fexecve)(fd, argv, env), true)
}

/// posix_spawn's child inherits the sockets it has descriptors for without
/// close-on-exec; with file actions, which may dup2 any socket onto one
/// (a socket as the child's stdin), every socket is offered and the child
/// keeps those it finds a descriptor of. Returns as posix_spawn does (an errno, not -1).
NS_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    CARRIED(actions ? NS_CARRY_SPAWN_ALL : NS_CARRY_SPAWN, envp,
            LIBC(posix_spawn)(pid, path, actions, attributes, argv, env), r != 0)
}

NS_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                           const posix_spawnattr_t *attributes, char *const argv[], char *const envp[]) {
    CARRIED(actions ? NS_CARRY_SPAWN_ALL : NS_CARRY_SPAWN, envp,
            LIBC(posix_spawnp)(pid, file, actions, attributes, argv, env), r != 0)
}

NS_EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
NS_EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/// The list calls' arguments as an argv (after `first`, up to the NULL); with `envp` set to what follows it if asked.
static char **list_to_argv(const char *first, va_list ap, char *const **envp) {
    va_list count;
    va_copy(count, ap);
    int n = 1;
    while (va_arg(count, char *)) n++;
    va_end(count);
    char **argv = malloc((size_t)(n + 1) * sizeof *argv);
    if (!argv) return NULL;
    argv[0] = (char *)first;
    for (int i = 1; i <= n; i++) argv[i] = va_arg(ap, char *);  // the last is the NULL
    if (envp) *envp = va_arg(ap, char *const *);
    return argv;
}

#define LIST_CALL(call, with_env)                                                   \
    va_list ap;                                                                     \
    va_start(ap, arg);                                                              \
    char *const *envp = environ;                                                    \
    char **argv = list_to_argv(arg, ap, with_env ? &envp : NULL);                   \
    va_end(ap);                                                                     \
    if (!argv) { errno = ENOMEM; return -1; }                                       \
    int r = call;                                                                   \
    int e = errno;                                                                  \
    free(argv);                                                                     \
    errno = e;                                                                      \
    return r;

NS_EXPORT int execl(const char *path, const char *arg, ...) { LIST_CALL(execve(path, argv, envp), false) }
NS_EXPORT int execlp(const char *file, const char *arg, ...) { LIST_CALL(execvpe(file, argv, envp), false) }
NS_EXPORT int execle(const char *path, const char *arg, ...) { LIST_CALL(execve(path, argv, envp), true) }
