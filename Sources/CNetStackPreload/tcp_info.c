// TCP_INFO as Linux's own struct (linux/tcp.h: glibc's netinet/tcp.h
// stops at tcpi_total_retrans), from the fields the stack publishes: what
// iperf3 reports (cwnd, RTT, the peer's window, the path MTU) and what
// programs that watch progress read (bytes acknowledged and received, in
// flight and not yet sent).
// Apart from the rest of the library, since the two headers cannot meet.
#include "preload_internal.h"
#include <errno.h>
#include <linux/tcp.h>
#include <string.h>

int ns_put_tcp_info(const ns_tcp_fields *f, bool listening, uint32_t unsent, void *value, socklen_t *len) {
    if (!value || !len) { errno = EFAULT; return -1; }
    struct tcp_info info;
    memset(&info, 0, sizeof info);
    info.tcpi_state = f->state ? (uint8_t)f->state : (listening ? 10 : 7);  // TCP_LISTEN, TCP_CLOSE
    info.tcpi_options = f->options;
    info.tcpi_snd_wscale = f->send_wscale & 15;
    info.tcpi_rcv_wscale = f->receive_wscale & 15;
    info.tcpi_rto = f->rto_us;
    info.tcpi_snd_mss = f->mss;
    info.tcpi_rcv_mss = f->mss;
    info.tcpi_advmss = f->advmss;
    info.tcpi_pmtu = f->pmtu;
    info.tcpi_rtt = f->rtt_us;
    info.tcpi_rttvar = f->rttvar_us;
    info.tcpi_min_rtt = f->min_rtt_us;
    if (f->mss) {
        info.tcpi_snd_cwnd = f->cwnd_bytes / f->mss;
        uint32_t ssthresh = f->ssthresh_bytes / f->mss;
        info.tcpi_snd_ssthresh = ssthresh >= 0xffff ? 0x7fffffff : ssthresh;  // TCP_INFINITE_SSTHRESH
        info.tcpi_unacked = (f->in_flight + f->mss - 1) / f->mss;  // Linux's packets_out, in MSS-sized segments
    }
    info.tcpi_notsent_bytes = unsent;
    info.tcpi_total_retrans = f->total_retrans;
    info.tcpi_bytes_sent = f->bytes_sent;
    info.tcpi_bytes_acked = f->bytes_acked;
    info.tcpi_bytes_received = f->bytes_received;
    info.tcpi_snd_wnd = f->send_window;
    // As Linux: at most the length asked for, and the caller learns the length given.
    size_t n = *len < sizeof info ? *len : sizeof info;
    memcpy(value, &info, n);
    *len = (socklen_t)n;
    return 0;
}
