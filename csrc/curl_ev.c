/* curl_ev: libcurl multi_socket on libev. See curl_ev.h and STYLE.md s4.
 * No Lua here: callbacks only move watchers and report finished handles. */
#include "curl_ev.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

static void cev_fail(cev_multi *m, CURLMcode rc)
{
    /* CURLM_BAD_SOCKET: an event for a socket curl already dropped; harmless
     * (evhiperfifo.c mcode_or_die ignores it too). */
    if (rc == CURLM_OK || rc == CURLM_BAD_SOCKET || m->broken)
        return;
    m->broken = 1;
    if (m->on_broken)
        m->on_broken(m, curl_multi_strerror(rc));
}

/* Drain curl's message queue. The message is invalid once the handle is
 * removed, so copy what we need first (curl_multi_info_read docs). */
static void cev_check_info(cev_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        curl_multi_remove_handle(m->multi, easy);
        m->done(m, easy, result);
    }
}

static void cev_mirror(cev_multi *m, cev_sock *s, int op)
{
    if (!m->mirror_fd || *m->mirror_fd < 0)
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = ((s->events & EV_READ) ? EPOLLIN : 0) | ((s->events & EV_WRITE) ? EPOLLOUT : 0);
    ev.data.fd = s->fd;
    if (epoll_ctl(*m->mirror_fd, op, s->fd, &ev) != 0 && op == EPOLL_CTL_MOD)
        epoll_ctl(*m->mirror_fd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void cev_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    cev_sock *s = w->data;
    cev_multi *m = s->m;
    int mask = ((revents & EV_READ) ? CURL_CSELECT_IN : 0) |
               ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    if (m->broken)
        return;
    /* `s` may be freed inside socket_action (CURL_POLL_REMOVE); use only m. */
    CURLMcode rc = curl_multi_socket_action(m->multi, w->fd, mask, &m->running);
    cev_fail(m, rc);
    cev_check_info(m);
    if (m->running <= 0)
        ev_timer_stop(m->loop, &m->timer);
}

static void cev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    cev_multi *m = w->data;
    if (m->broken)
        return;
    CURLMcode rc = curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &m->running);
    cev_fail(m, rc);
    cev_check_info(m);
}

/* CURLMOPT_SOCKETFUNCTION. Never calls Lua or curl_multi_socket_action.
 * An active watcher is stopped before ev_io_set (libev: "must not" change
 * an active watcher); re-setting on every call also covers fd reuse. */
static int cev_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    (void)easy;
    cev_multi *m = userp;
    cev_sock *s = sockp;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(m->loop, &s->io);
            cev_mirror(m, s, EPOLL_CTL_DEL);
            if (s->prev) s->prev->next = s->next; else m->socks = s->next;
            if (s->next) s->next->prev = s->prev;
            free(s);
            if (!m->closing) /* belt and braces, as multi-uv.c */
                curl_multi_assign(m->multi, fd, NULL);
        }
        return 0;
    }
    int events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    int fresh = 0;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1; /* aborts every transfer: only on allocation failure */
        s->fd = fd;
        s->m = m;
        ev_io_init(&s->io, cev_io_cb, fd, events);
        s->io.data = s;
        s->next = m->socks;
        if (m->socks) m->socks->prev = s;
        m->socks = s;
        curl_multi_assign(m->multi, fd, s);
        fresh = 1;
    } else {
        ev_io_stop(m->loop, &s->io);
        ev_io_set(&s->io, fd, events);
    }
    s->fd = fd;
    s->events = events;
    if (events)
        ev_io_start(m->loop, &s->io);
    cev_mirror(m, s, fresh ? EPOLL_CTL_ADD : EPOLL_CTL_MOD);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION. -1 means delete the timer; 0 means "as soon as
 * possible", which is a 0 s timer: calling socket_action from here would
 * recurse (CURLMOPT_TIMERFUNCTION docs). Float division: evhiperfifo.c's
 * integer division turns 999 ms into 0. */
static int cev_timer_set_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    cev_multi *m = userp;
    ev_timer_stop(m->loop, &m->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&m->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(m->loop, &m->timer);
    }
    return 0;
}

int cev_init(cev_multi *m, struct ev_loop *loop, int *mirror_fd,
             cev_done_fn done, cev_broken_fn on_broken, void *owner)
{
    memset(m, 0, sizeof *m);
    m->loop = loop;
    m->mirror_fd = mirror_fd;
    m->done = done;
    m->on_broken = on_broken;
    m->owner = owner;
    m->multi = curl_multi_init();
    if (!m->multi)
        return -1;
    ev_timer_init(&m->timer, cev_timer_cb, 0., 0.);
    m->timer.data = m;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, cev_sock_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, cev_timer_set_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    return 0;
}

CURLMcode cev_add(cev_multi *m, CURL *easy)
{
    if (m->broken)
        return CURLM_INTERNAL_ERROR;
    /* curl then calls the timer callback with a short timeout and the first
     * expiry drives the transfer (evhiperfifo.c new_conn). */
    return curl_multi_add_handle(m->multi, easy);
}

void cev_remove(cev_multi *m, CURL *easy)
{
    if (m->multi)
        curl_multi_remove_handle(m->multi, easy);
}

void cev_mirror_all(cev_multi *m)
{
    for (cev_sock *s = m->socks; s; s = s->next)
        cev_mirror(m, s, EPOLL_CTL_ADD);
}

double cev_timeout(cev_multi *m)
{
    if (!m->multi || !ev_is_active(&m->timer))
        return -1;
    return ev_timer_remaining(m->loop, &m->timer);
}

void cev_cleanup(cev_multi *m)
{
    if (!m->multi)
        return;
    m->closing = 1;
    curl_multi_cleanup(m->multi); /* may call cev_sock_cb: records still valid */
    m->multi = NULL;
    ev_timer_stop(m->loop, &m->timer);
    while (m->socks) {
        cev_sock *s = m->socks;
        m->socks = s->next;
        ev_io_stop(m->loop, &s->io);
        cev_mirror(m, s, EPOLL_CTL_DEL);
        free(s);
    }
}
