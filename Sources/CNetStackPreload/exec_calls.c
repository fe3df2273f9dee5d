// Stack sockets across exec. The table is this image's memory and goes with
// it, so before exec the library writes it to a memfd the new image inherits
// (its number in NETSTACK_EXEC_STATE, which the new image's constructor
// reads and removes): each socket as it was, with only its descriptors that
// are not close-on-exec. The control channel and the doorbells of those
// sockets are left open across the exec, so the new image is the same
// session to the stack (nothing to claim); it maps each region again from
// the memfd the stack sends (NS_OP_REGION), and closes the sockets all of
// whose descriptors were close-on-exec (a FIN, as the kernel's close; the
// stack keeps a socket another process still holds). If exec fails, the
// descriptors get their flags back and nothing else changed.
//
// The exec calls that end in execve inside libc are wrapped one by one (libc
// calls its own execve directly). posix_spawn and a vfork child carry
// nothing: the child shares this memory, not the session.
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NS_EXEC_ENV "NETSTACK_EXEC_STATE"
#define NS_EXEC_MAGIC 0x4e534558u  // "NSEX"

extern char **environ;

typedef struct state_header {
    uint32_t magic;
    uint32_t record_size;  // sizeof(ns_sock): the same library on both sides
    int32_t channel;
    int32_t count;
} state_header;

/// What an exec under way changed, to undo if it fails.
typedef struct carry {
    bool active;
    int memfd, channel;
    char **envp;
    char *added[3];
} carry;

static bool has_variable(char *const envp[], const char *name) {
    size_t n = strlen(name);
    for (int i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=') return true;
    return false;
}

static char *variable(const char *name, const char *value) {
    size_t n = strlen(name) + strlen(value) + 2;
    char *v = malloc(n);
    if (v) snprintf(v, n, "%s=%s", name, value);
    return v;
}

/// `envp` with the state's variable, and the library's own two if the caller
/// left them out (the sockets are of no use to an image without the library).
static char **environment_with_state(char *const envp[], carry *c) {
    int n = 0;
    while (envp && envp[n]) n++;
    char **out = malloc((size_t)(n + 4) * sizeof *out);
    if (!out) return NULL;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (strncmp(envp[i], NS_EXEC_ENV "=", sizeof NS_EXEC_ENV) != 0) out[k++] = envp[i];
    char number[16];
    snprintf(number, sizeof number, "%d", c->memfd);
    int added = 0;
    c->added[added++] = variable(NS_EXEC_ENV, number);
    const char *names[] = {"LD_PRELOAD", NS_API_ENV};
    for (int i = 0; i < 2; i++) {
        const char *value = getenv(names[i]);
        if (value && !has_variable(envp, names[i])) c->added[added++] = variable(names[i], value);
    }
    for (int i = 0; i < added; i++)
        if (c->added[i]) out[k++] = c->added[i];
    out[k] = NULL;
    return out;
}

static void set_cloexec(int fd, bool on) { LIBC(fcntl)(fd, F_SETFD, on ? FD_CLOEXEC : 0); }

/// Writes the table for the new image and leaves what it needs open; the environment to exec with.
static char *const *prepare(char *const envp[], carry *c) {
    memset(c, 0, sizeof *c);
    if (ns_socket_count() == 0) return envp;
    int channel = ns_channel_hold();
    if (channel < 0) return envp;
    int count = 0;
    ns_sock **all = ns_all_sockets(&count);
    c->memfd = memfd_create("netstack-exec", 0);  // not close-on-exec: the new image reads it
    if (!all || c->memfd < 0) goto fail;
    state_header h = {.magic = NS_EXEC_MAGIC, .record_size = sizeof(ns_sock), .channel = channel, .count = count};
    if (LIBC(write)(c->memfd, &h, sizeof h) != sizeof h) goto fail;
    for (int i = 0; i < count; i++) {
        ns_sock record = *all[i];
        record.alias_count = 0;
        for (int j = 0; j < all[i]->alias_count; j++) {
            int flags = LIBC(fcntl)(all[i]->aliases[j], F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC)) record.aliases[record.alias_count++] = all[i]->aliases[j];
        }
        if (record.alias_count > 0) {
            record.fd = record.aliases[0];
            set_cloexec(record.doorbell, false);
        }
        if (LIBC(write)(c->memfd, &record, sizeof record) != sizeof record) goto fail;
    }
    if (!(c->envp = environment_with_state(envp, c))) goto fail;
    free(all);
    set_cloexec(channel, false);
    c->channel = channel;
    c->active = true;
    return c->envp;
fail:
    if (all)
        for (int i = 0; i < count; i++) set_cloexec(all[i]->doorbell, true);
    free(all);
    if (c->memfd >= 0) LIBC(close)(c->memfd);
    memset(c, 0, sizeof *c);
    ns_channel_unhold();
    return envp;
}

/// The exec failed: the old image carries on as before.
static void undo(carry *c) {
    if (!c->active) return;
    int e = errno;
    int count = 0;
    ns_sock **all = ns_all_sockets(&count);
    for (int i = 0; i < count; i++) set_cloexec(all[i]->doorbell, true);
    free(all);
    LIBC(close)(c->memfd);
    for (int i = 0; i < 3; i++) free(c->added[i]);
    free(c->envp);
    set_cloexec(c->channel, true);
    ns_channel_unhold();
    errno = e;
}

NS_EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    carry c;
    char *const *env = prepare(envp, &c);
    int r = LIBC(execve)(path, argv, env);
    undo(&c);
    return r;
}

NS_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    carry c;
    char *const *env = prepare(envp, &c);
    int r = LIBC(execvpe)(file, argv, env);
    undo(&c);
    return r;
}

NS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
    carry c;
    char *const *env = prepare(envp, &c);
    int r = LIBC(fexecve)(fd, argv, env);
    undo(&c);
    return r;
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

// MARK: The new image

/// Takes over what the old image left: the channel, then each socket (its
/// region mapped anew), closing those none of whose descriptors came along.
void ns_exec_restore(void) {
    const char *value = getenv(NS_EXEC_ENV);
    if (!value) return;
    int memfd = atoi(value);
    unsetenv(NS_EXEC_ENV);
    state_header h;
    if (pread(memfd, &h, sizeof h, 0) != sizeof h || h.magic != NS_EXEC_MAGIC || h.record_size != sizeof(ns_sock)) {
        LIBC(close)(memfd);
        return;
    }
    ns_channel_adopt(h.channel);
    for (int i = 0; i < h.count; i++) {
        ns_sock record;
        if (pread(memfd, &record, sizeof record, (off_t)(sizeof h + (size_t)i * sizeof record)) != sizeof record) break;
        if (record.alias_count > 0) {
            ns_request req = {.op = NS_OP_REGION, .socket = record.id};
            ns_reply reply;
            int fds[3], nfds;
            if (ns_call(&req, &reply, fds, &nfds) == 0 && reply.result >= 0 && nfds == 1) {
                int r = ns_adopt_carried(&record, fds[0]);
                LIBC(close)(fds[0]);
                if (r >= 0) continue;
            } else {
                for (int j = 0; j < nfds; j++) LIBC(close)(fds[j]);
            }
            LIBC(close)(record.doorbell);
        }
        ns_request close_it = {.op = NS_OP_CLOSE, .socket = record.id};
        ns_post(&close_it);
    }
    LIBC(close)(memfd);
}
