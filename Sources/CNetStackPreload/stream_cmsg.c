// A stream socket's one control message: with TCP_INQ set, recvmsg tells
// how many bytes are left to read (TCP_CM_INQ), as Linux's tcp_recvmsg
// does with tcp_inq_hint: what waits in `rx` after the call, plus one once
// the peer's FIN came (Linux counts rcv_nxt - copied_seq, and the FIN takes
// a sequence number), so a reader at the end still reads again and finds
// it. RPC libraries size their next read by it.
#include "preload_internal.h"
#include <netinet/in.h>
#include <netinet/tcp.h>

void ns_put_stream_cmsgs(ns_sock *s, struct msghdr *msg) {
    size_t used = 0;
    if (ns_inq_asked(s)) {
        int left = (int)ns_stream_unread(s) + ((ns_state(s->shm) & NS_STATE_RX_EOF) ? 1 : 0);
        ns_put_cmsg(msg, &used, IPPROTO_TCP, TCP_CM_INQ, &left, sizeof left);
    }
    msg->msg_controllen = used;
}
