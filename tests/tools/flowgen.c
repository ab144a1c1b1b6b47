// flowgen: sends FLOWS distinct UDP flows of PACKETS (1 to 256) datagrams each to DST,
// paced at RATE datagrams a second, with sendmmsg(2). Bounded in count, and
// in time by DEADLINE seconds: whatever is not sent by then is reported, not
// retried.
//
//   flowgen DST FLOWS PACKETS PAYLOAD RATE DEADLINE
//
// Flow i leaves socket i % S (S source sockets, each bound to its own
// ephemeral port) for destination port FIRST_PORT + i / S, so every flow is a
// distinct 5-tuple; a flow's packets go out back to back. Prints one line:
//
//   sent=<datagrams> flows=<flows fully sent> first_dst_port=<p> src_ports=<p1>,<p2>,...
//
// Exits 1 on a setup error, 2 when the deadline cut the run short.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FIRST_PORT 1024
#define PORTS_PER_SOCKET 64000
#define MAX_SOCKETS 256
#define BATCH 256

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long arg(const char *s, const char *what, unsigned long max) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v == 0 || v > max) {
        fprintf(stderr, "flowgen: bad %s: %s (1 to %lu)\n", what, s, max);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: flowgen DST FLOWS PACKETS PAYLOAD RATE DEADLINE\n");
        return 1;
    }
    struct sockaddr_storage dst = {0};
    socklen_t dst_len;
    int family;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&dst;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&dst;
    if (inet_pton(AF_INET, argv[1], &v4->sin_addr) == 1) {
        family = v4->sin_family = AF_INET;
        dst_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, argv[1], &v6->sin6_addr) == 1) {
        family = v6->sin6_family = AF_INET6;
        dst_len = sizeof(*v6);
    } else {
        fprintf(stderr, "flowgen: bad address %s\n", argv[1]);
        return 1;
    }
    unsigned long flows = arg(argv[2], "FLOWS", (unsigned long)MAX_SOCKETS * PORTS_PER_SOCKET);
    // A flow's packets go out in one batch.
    unsigned long packets = arg(argv[3], "PACKETS", BATCH);
    unsigned long payload = arg(argv[4], "PAYLOAD", 1400);
    double rate = arg(argv[5], "RATE", 100000000);
    double deadline = arg(argv[6], "DEADLINE", 3600);

    unsigned long sockets = (flows + PORTS_PER_SOCKET - 1) / PORTS_PER_SOCKET;
    int fds[MAX_SOCKETS];
    unsigned ports[MAX_SOCKETS];
    for (unsigned long s = 0; s < sockets; s++) {
        fds[s] = socket(family, SOCK_DGRAM, 0);
        struct sockaddr_storage any = {0};
        any.ss_family = family;
        socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (fds[s] < 0 || bind(fds[s], (struct sockaddr *)&any, len) < 0 ||
            getsockname(fds[s], (struct sockaddr *)&any, &len) < 0) {
            perror("flowgen: socket");
            return 1;
        }
        ports[s] = ntohs(family == AF_INET ? ((struct sockaddr_in *)&any)->sin_port
                                           : ((struct sockaddr_in6 *)&any)->sin6_port);
    }

    static char buf[1400];
    memset(buf, 0x5a, sizeof(buf));
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_storage addrs[BATCH];

    double start = now_s();
    unsigned long sent = 0, done_flows = 0;
    int cut = 0;
    // One socket at a time: a batch holds whole flows of one socket.
    unsigned long per_batch = BATCH / packets;
    for (unsigned long s = 0; s < sockets && !cut; s++) {
        for (unsigned long i = s; i < flows && !cut;) {
            unsigned n = 0;
            unsigned long batch_flows = 0;
            for (; i < flows && batch_flows < per_batch && n + packets <= BATCH; i += sockets, batch_flows++) {
                unsigned port = FIRST_PORT + i / sockets;
                for (unsigned long p = 0; p < packets; p++, n++) {
                    addrs[n] = dst;
                    if (family == AF_INET)
                        ((struct sockaddr_in *)&addrs[n])->sin_port = htons(port);
                    else
                        ((struct sockaddr_in6 *)&addrs[n])->sin6_port = htons(port);
                    iov[n].iov_base = buf;
                    iov[n].iov_len = payload;
                    msgs[n].msg_hdr = (struct msghdr){
                        .msg_name = &addrs[n], .msg_namelen = dst_len, .msg_iov = &iov[n], .msg_iovlen = 1};
                }
            }
            for (unsigned off = 0; off < n;) {
                // Pace: this datagram is due at start + sent / rate.
                double due = start + sent / rate, t = now_s();
                if (t - start > deadline) {
                    cut = 1;
                    break;
                }
                if (due > t) {
                    struct timespec ts = {(time_t)(due - t), (long)((due - t - (time_t)(due - t)) * 1e9)};
                    nanosleep(&ts, NULL);
                }
                int r = sendmmsg(fds[s], msgs + off, n - off, 0);
                if (r < 0) {
                    if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
                        continue;
                    perror("flowgen: sendmmsg");
                    return 1;
                }
                off += r;
                sent += r;
            }
            if (!cut)
                done_flows += batch_flows;
        }
    }
    printf("sent=%lu flows=%lu first_dst_port=%d src_ports=", sent, done_flows, FIRST_PORT);
    for (unsigned long s = 0; s < sockets; s++)
        printf(s ? ",%u" : "%u", ports[s]);
    printf("\n");
    return cut ? 2 : 0;
}
