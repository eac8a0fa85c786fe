/* The hand-written baseline of W9: a single-threaded, edge-triggered epoll
 * echo loop in plain C, the fastest simple shape on Linux. Prints
 * "listening on ADDRESS" first. Partial writes are kept in a small per-
 * connection buffer and flushed when the socket becomes writable again. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { max_events = 256, buffer_size = 65536 };

struct conn {
    int fd;
    size_t pending_start, pending_end; /* bytes not yet written back */
    char pending[buffer_size];
};

static void drop(struct conn* c) {
    close(c->fd);
    free(c);
}

/* Writes what is pending; returns 0 when all is written, 1 if the socket is
 * full, -1 on error. */
static int flush(struct conn* c) {
    while (c->pending_start < c->pending_end) {
        ssize_t n = send(c->fd, c->pending + c->pending_start, c->pending_end - c->pending_start, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : (errno == EINTR ? 0 : -1);
        c->pending_start += (size_t)n;
    }
    c->pending_start = c->pending_end = 0;
    return 0;
}

/* Echoes everything readable; returns -1 when the connection is done. */
static int echo(struct conn* c) {
    for (;;) {
        if (c->pending_end != 0) {
            int r = flush(c);
            if (r != 0) return r < 0 ? -1 : 0; /* full: wait for EPOLLOUT */
        }
        ssize_t n = recv(c->fd, c->pending, sizeof c->pending, 0);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        c->pending_start = 0;
        c->pending_end = (size_t)n;
    }
}

int main(int argc, char** argv) {
    const char* ip = "127.0.0.1";
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (bind(lfd, (struct sockaddr*)&a, sizeof a) != 0 || listen(lfd, 1024) != 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr*)&a, &len);
    printf("listening on %s:%d\n", ip, ntohs(a.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[max_events];
    for (;;) {
        int n = epoll_wait(ep, events, max_events, -1);
        for (int i = 0; i < n; ++i) {
            struct conn* c = events[i].data.ptr;
            if (!c) { /* the listener */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn* nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (echo(c) < 0) drop(c);
        }
    }
}
