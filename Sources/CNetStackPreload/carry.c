// Stack sockets carried into a new image: across exec, and into a child
// started by posix_spawn or by a vfork child's exec (Python's subprocess).
// The table is an image's memory and goes with it, so before the new image
// starts the library writes it to a memfd the new image inherits (its number
// in NETSTACK_EXEC_STATE, which the new image's constructor reads and
// removes), one record per socket.
//
// The new image finds each socket's descriptors by the kernel's id of the
// eventfd they name ("eventfd-id" in /proc/self/fdinfo): what exec kept (not
// close-on-exec), and what a spawn's file actions or a vfork child's dup2
// made of it (a socket as a child's stdin), whatever their numbers. It maps
// each region again, with the doorbell, from what the stack sends
// (NS_OP_REGION), and closes the sockets none of whose descriptors came along.
//
// - exec: the control channel is left open, so the new image is the same
//   session (nothing to claim). Every socket is carried: those whose
//   descriptors were all close-on-exec are closed by the new image with a
//   FIN, as the kernel's close (without it the stack would see the session
//   end and reset them). A failed exec leaves the old image as it was.
// - A spawned child (posix_spawn, or exec in a vfork child): the parent lives
//   on with its session, so the child is a session of its own, as after
//   fork. Before it starts, the parent side asks the stack, on a connection
//   of its own (a vfork child's parent channel may be closed by then), for a
//   pending hold on each socket the child inherits (NS_OP_SPAWN_HOLD); the
//   child claims them with the token (NS_OP_FORK_CLAIM). The parent is held
//   up until the child execs, so it cannot close a socket before the hold is
//   there. A failed spawn or exec gives the holds back at once; one a child
//   never claims (a program without the library) goes after 10 s.
//
// A vfork child shares its parent's memory and may not allocate: this side
// uses system calls and an mmap'd scratch area only.
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NS_CARRY_ENV "NETSTACK_EXEC_STATE"
#define NS_CARRY_MAGIC 0x4e534558u  // "NSEX"
/// The most eventfds a scan of an image's descriptors looks at.
#define NS_CARRY_MAX_EVENTFDS 1024

extern char **environ;

typedef struct state_header {
    uint32_t magic;
    uint32_t record_size;  // sizeof(state_record): the same library on both sides
    int32_t channel;       // exec: the channel to adopt; -1: a spawned child, which claims `token`
    int32_t count;
    int32_t token;
    int32_t reserved;
} state_header;

typedef struct state_record {
    ns_sock sock;      // as it was; its aliases those without close-on-exec
    int64_t event_id;  // its eventfd's id, by which the new image finds its descriptors (-1: unknown)
} state_record;

/// An eventfd descriptor and the kernel's id of the eventfd.
typedef struct fd_id {
    int fd;
    int64_t id;
} fd_id;

// MARK: Descriptors by eventfd id (system calls only: `ns_eventfd_kernel_id`)

/// This image's eventfd descriptors and their ids (those without close-on-exec
/// only, if asked), up to `max`; their number.
static int scan_eventfds(fd_id *out, int max, bool inheritable_only) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 0;
    int count = 0;
    char entries[4096] __attribute__((aligned(8)));
    long n;
    while (count < max && (n = syscall(SYS_getdents64, dir, entries, sizeof entries)) > 0) {
        for (long at = 0; at < n && count < max;) {
            // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name
            unsigned short length;
            memcpy(&length, entries + at + 16, sizeof length);
            const char *name = entries + at + 19;
            at += length;
            if (*name < '0' || *name > '9') continue;
            int fd = atoi(name);
            if (fd == dir) continue;
            int flags = LIBC(fcntl)(fd, F_GETFD);
            if (flags < 0 || (inheritable_only && (flags & FD_CLOEXEC))) continue;
            int64_t id = ns_eventfd_kernel_id(0, fd);
            if (id >= 0) out[count++] = (fd_id){fd, id};
        }
    }
    LIBC(close)(dir);
    return count;
}

static bool listed(const fd_id *fds, int count, int64_t id) {
    for (int i = 0; i < count; i++)
        if (fds[i].id == id) return true;
    return false;
}

// MARK: Before the new image starts

/// `envp` with the state's variable (replacing any), and the library's own
/// two if the caller left them out (the sockets are of no use to an image
/// without the library), laid out in `c`'s scratch area.
static char **environment_with_state(char *const envp[], ns_carry *c) {
    const char *names[] = {"LD_PRELOAD", NS_API_ENV};
    const char *values[2] = {NULL, NULL};
    int n = 0;
    size_t bytes = sizeof NS_CARRY_ENV + 24;
    while (envp && envp[n]) n++;
    for (int i = 0; i < 2; i++) {
        values[i] = getenv(names[i]);
        size_t length = strlen(names[i]);
        for (int j = 0; values[i] && j < n; j++)
            if (strncmp(envp[j], names[i], length) == 0 && envp[j][length] == '=') values[i] = NULL;
        if (values[i]) bytes += strlen(names[i]) + strlen(values[i]) + 2;
    }
    c->scratch_length = (size_t)(n + 4) * sizeof(char *) + bytes;
    void *scratch = mmap(NULL, c->scratch_length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED) return NULL;
    c->scratch = scratch;
    char **out = scratch;
    char *text = (char *)(out + n + 4);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (strncmp(envp[i], NS_CARRY_ENV "=", sizeof NS_CARRY_ENV) != 0) out[k++] = envp[i];
    out[k++] = text;
    memcpy(text, NS_CARRY_ENV "=", sizeof NS_CARRY_ENV);
    text = ns_put_decimal(text + sizeof NS_CARRY_ENV, c->memfd) + 1;
    for (int i = 0; i < 2; i++) {
        if (!values[i]) continue;
        out[k++] = text;
        size_t length = strlen(names[i]);
        memcpy(text, names[i], length);
        text[length] = '=';
        strcpy(text + length + 1, values[i]);
        text += length + strlen(values[i]) + 2;
    }
    out[k] = NULL;
    return out;
}

/// This socket's descriptors that a new image inherits (not close-on-exec), into `record`.
static void inheritable_aliases(const ns_sock *s, ns_sock *record) {
    record->alias_count = 0;
    for (int j = 0; j < s->alias_count; j++) {
        int flags = LIBC(fcntl)(s->aliases[j], F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) record->aliases[record->alias_count++] = s->aliases[j];
    }
    if (record->alias_count > 0) record->fd = record->aliases[0];
}

/// Asks for a spawned child's hold on `s` under `*token` (0: a new one).
static bool hold_for_child(int connection, ns_sock *s, int32_t *token) {
    ns_request req = {.op = NS_OP_SPAWN_HOLD, .socket = s->id, .arg0 = *token};
    ns_reply reply;
    if (ns_exchange_on(connection, &req, &reply) != 0 || reply.result <= 0) return false;
    *token = reply.result;
    ns_mark_shared(s);
    return true;
}

char *const *ns_carry_prepare(char *const envp[], ns_carry_kind kind, ns_carry *c) {
    *c = (ns_carry){.memfd = -1, .kept_channel = -1};
    if (ns_socket_count() == 0) return envp;
    // A vfork child's exec starts a child beside its parent: a spawn. Its
    // descriptors are known, so it finds what it inherits by eventfd id
    // (its parent's table, which it shares, names the parent's descriptors).
    bool vfork_child = ns_in_vfork_child();
    if (kind == NS_CARRY_EXEC && vfork_child) kind = NS_CARRY_SPAWN;
    fd_id inherited[vfork_child ? NS_CARRY_MAX_EVENTFDS : 1];
    int inherited_count = vfork_child ? scan_eventfds(inherited, NS_CARRY_MAX_EVENTFDS, true) : 0;
    pid_t owner = vfork_child ? getppid() : 0;

    int connection = kind == NS_CARRY_EXEC ? ns_channel_hold() : ns_api_connect();
    if (connection < 0) return envp;
    c->memfd = memfd_create("netstack-exec", 0);  // not close-on-exec: the new image reads it
    state_header h = {.magic = NS_CARRY_MAGIC, .record_size = sizeof(state_record), .channel = -1};
    int cursor = 0;
    for (ns_sock *s; c->memfd >= 0 && (s = ns_next_socket(&cursor));) {
        state_record r = {.sock = *s, .event_id = ns_eventfd_kernel_id(owner, s->fd)};
        inheritable_aliases(s, &r.sock);
        bool inherits = kind != NS_CARRY_SPAWN || r.sock.alias_count > 0
                        || (r.event_id >= 0 && listed(inherited, inherited_count, r.event_id));
        if (!inherits || (kind != NS_CARRY_EXEC && !hold_for_child(connection, s, &h.token))) continue;
        c->token = h.token;
        off_t at = (off_t)(sizeof h + (size_t)h.count * sizeof r);
        if (pwrite(c->memfd, &r, sizeof r, at) != sizeof r) goto fail;
        h.count++;
    }
    if (h.count == 0) goto fail;
    if (kind == NS_CARRY_EXEC) {
        h.channel = connection;
        LIBC(fcntl)(connection, F_SETFD, 0);
        c->kept_channel = connection;
    } else {
        LIBC(close)(connection);  // the holds are the stack's now, under the token
    }
    connection = -1;
    if (pwrite(c->memfd, &h, sizeof h, 0) != sizeof h || !(c->envp = environment_with_state(envp, c))) goto fail;
    return c->envp;
fail:
    if (connection >= 0) {
        if (kind == NS_CARRY_EXEC) ns_channel_unhold(); else LIBC(close)(connection);
    }
    ns_carry_failed(c);  // the new image starts without the state: the holds taken for it go
    ns_carry_end(c);
    return envp;
}

void ns_carry_failed(ns_carry *c) {
    if (c->token <= 0) return;
    int e = errno;
    ns_reply reply;
    if (!ns_in_vfork_child()) {
        // Claimed on this process's own session, which holds them already: the holds just go.
        ns_simple_call(NULL, NS_OP_FORK_CLAIM, c->token, 0, 0, NULL, &reply);
    } else {
        // Claimed by a session that ends at once; the parent still holds every socket.
        int connection = ns_api_connect();
        ns_request req = {.op = NS_OP_FORK_CLAIM, .arg0 = c->token};
        if (connection >= 0) {
            ns_exchange_on(connection, &req, &reply);
            LIBC(close)(connection);
        }
    }
    c->token = 0;
    errno = e;
}

void ns_carry_end(ns_carry *c) {
    int e = errno;
    if (c->kept_channel >= 0) {
        LIBC(fcntl)(c->kept_channel, F_SETFD, FD_CLOEXEC);
        ns_channel_unhold();
    }
    if (c->memfd >= 0) LIBC(close)(c->memfd);
    if (c->scratch) munmap(c->scratch, c->scratch_length);
    *c = (ns_carry){.memfd = -1, .kept_channel = -1};
    errno = e;
}

// MARK: The new image

/// `record`'s descriptors in this image: those naming its eventfd, or
/// without the kernel's ids, those it listed that are still open.
static void find_descriptors(ns_sock *sock, int64_t event_id, const fd_id *here, int count) {
    if (event_id >= 0) {
        sock->alias_count = 0;
        for (int i = 0; i < count && sock->alias_count < NS_MAX_ALIASES; i++)
            if (here[i].id == event_id) sock->aliases[sock->alias_count++] = here[i].fd;
    } else {
        int kept = 0;
        for (int i = 0; i < sock->alias_count; i++)
            if (LIBC(fcntl)(sock->aliases[i], F_GETFD) >= 0) sock->aliases[kept++] = sock->aliases[i];
        sock->alias_count = kept;
    }
    if (sock->alias_count > 0) sock->fd = sock->aliases[0];
}

/// Maps `sock`'s region again and enters it; false if the stack said no.
static bool adopt(const ns_sock *sock) {
    ns_request req = {.op = NS_OP_REGION, .socket = sock->id};
    ns_reply reply;
    int fds[3], nfds;
    if (ns_call(&req, &reply, fds, &nfds) != 0) return false;
    bool adopted = reply.result >= 0 && nfds == 2 && ns_adopt_carried(sock, fds[0], fds[1]) >= 0;
    for (int i = 0; i < nfds; i++)
        if (!(adopted && i == 1)) LIBC(close)(fds[i]);  // the doorbell stays, as the socket's
    return adopted;
}

void ns_carry_restore(void) {
    const char *value = getenv(NS_CARRY_ENV);
    if (!value) return;
    int memfd = atoi(value);
    unsetenv(NS_CARRY_ENV);
    state_header h;
    if (pread(memfd, &h, sizeof h, 0) != sizeof h || h.magic != NS_CARRY_MAGIC || h.record_size != sizeof(state_record)) {
        LIBC(close)(memfd);
        return;
    }
    ns_reply reply;
    if (h.channel >= 0) {
        ns_channel_adopt(h.channel);
    } else if (ns_simple_call(NULL, NS_OP_FORK_CLAIM, h.token, 0, 0, NULL, &reply) < 0) {
        LIBC(close)(memfd);  // the holds are gone (or the stack): these descriptors are plain eventfds
        return;
    }
    fd_id *here = malloc(NS_CARRY_MAX_EVENTFDS * sizeof *here);
    int count = here ? scan_eventfds(here, NS_CARRY_MAX_EVENTFDS, false) : 0;
    for (int i = 0; i < h.count; i++) {
        state_record r;
        if (pread(memfd, &r, sizeof r, (off_t)(sizeof h + (size_t)i * sizeof r)) != sizeof r) break;
        find_descriptors(&r.sock, r.event_id, here, count);
        if (r.sock.alias_count > 0 && adopt(&r.sock)) continue;
        ns_post_close(r.sock.id);
    }
    free(here);
    LIBC(close)(memfd);
}
