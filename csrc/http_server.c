/* HTTP/1.1 server on the runtime's libev loop; requests are parsed by
 * Debian's libhttp-parser (nodejs/http-parser 2.9), never by hand.
 *
 *   core.http_server_listen(opts) -> srv | nil, err
 *   srv:next()          -> req, exchange | nil   (a complete request, or none queued)
 *   srv:wait(task)      -> boolean: true if the task must yield until a request
 *                          is queued or the server closes
 *   srv:unwait()        the waiting task was cancelled
 *   srv:closing()       -> boolean: closed and nothing left queued
 *   srv:close()         stop listening, close idle connections, finish the rest
 *   srv:stats()         -> {connections, queued, handling, writing, closed, accept_pauses}
 *   ex:respond(task, res) -> true (the task yields until the response is sent,
 *                          then gets true | nil, err) | false, ok, err (done already)
 *                          | nil, err (res.body_file cannot be used; nothing sent)
 *
 * The C side never calls Lua from a libev callback: a finished request is
 * linked into the server's queue and the acceptor task (server.lua) is woken
 * through the runtime (aio_task_complete); it then takes the request with
 * srv:next() on its own stack and spawns a handler task. A handler task that
 * responds waits the same way until its response has left (or failed).
 *
 * One request at a time per connection: after a complete request the socket
 * is not read until its response is sent; bytes already read (pipelined
 * requests) stay in the connection's buffer and are parsed next. */
#define _GNU_SOURCE /* accept4, mkostemp */
#include "runtime.h"
#include "buf.h"

#include <http_parser.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SRV_MT "aio_aws.http_server"
#define EX_MT  "aio_aws.http_exchange"

/* ------------------------------------------------------------------ */

typedef struct srv srv;
typedef struct conn conn;
typedef struct exch exch;

/* Where a header's name and value sit in conn.hb. */
typedef struct hdr {
    size_t noff, nlen, voff, vlen;
} hdr;

enum {
    C_READ,     /* reading a request (or idle between requests) */
    C_QUEUED,   /* request complete, waiting for the acceptor */
    C_HANDLING, /* a handler task has it */
    C_WRITE,    /* response being sent */
    C_LINGER    /* last bytes being sent, then input drained until EOF */
};

struct conn {
    srv *s;
    int fd;
    int state;
    ev_io rio, wio;
    ev_timer tm;
    http_parser parser;
    aio_buf in;              /* read but not parsed yet (pipelined requests) */
    aio_buf out;             /* response bytes not yet sent */
    int file_fd;          /* response body file, or -1 */
    off_t file_off;
    uint64_t file_left;
    double last_io, req_start, linger_start;
    int in_request;       /* a request has begun (request_timeout applies) */
    int rd_eof;           /* the peer closed its side */
    int shut;             /* we sent our FIN */
    /* the request being read */
    aio_buf url, hb;
    hdr *hdrs;
    size_t nhdrs, cap_hdrs;
    int last_cb;          /* 1 after a header name piece, 2 after a value piece */
    size_t head_bytes;
    aio_buf body;
    int spool_fd;
    char *spool_path;
    uint64_t body_len;
    int err_status;       /* set by a parser callback that rejects the request */
    int keep_alive, close_after, is_head;
    unsigned method;
    unsigned short major, minor;
    char addr[INET6_ADDRSTRLEN];
    int port;
    exch *ex;             /* the exchange handed to Lua, while it lives */
    const char *why;      /* why it closed, for a handler waiting on the send */
    conn *prev, *next;    /* server's list */
    conn *qnext;          /* server's ready queue */
    int queued;
};

struct srv {
    aio_op op;            /* wakes the acceptor task */
    aio_rt *rt;
    int fd;
    ev_io lio;
    ev_timer retry;       /* accepting paused after EMFILE */
    size_t max_header;
    uint64_t spool_threshold, max_body;
    char spool_dir[4096];
    double idle, reqto, linger;
    conn *conns;
    int nconns;
    conn *qhead, *qtail;
    aio_task *waiter;     /* acceptor; its userdata is uservalue 1 */
    int pending;          /* a wake-up is scheduled */
    int closing;          /* srv:close() was called */
    int dead;             /* everything freed (__gc) */
    int port;
    char host[INET6_ADDRSTRLEN];
    lua_Integer accept_pauses; /* times accepting paused for lack of descriptors */
};

/* A request handed to Lua: the handler's link to its connection. */
struct exch {
    aio_op op;
    aio_rt *rt;
    conn *c;              /* NULL once the connection is gone */
    aio_task *waiter;     /* the handler task, while it waits for the send */
    int ref;              /* anchors this userdata while a wake-up may come */
    int responded, done, ok, pending;
    const char *err;
};

static http_parser_settings parser_settings;

static void conn_close(conn *c);
static int conn_flush(conn *c);
static int conn_fail(conn *c, int status);
static void conn_arm_timer(conn *c);
static int conn_resume_parse(conn *c);

static int loop_usable(aio_rt *rt)
{
    /* After the runtime's __gc the default loop is destroyed: only a host's
     * loop may still be touched (the timer __gc does the same). */
    return !rt->closed || rt->host_loop;
}

/* ------------------------------------------------------------------ */
/* acceptor wake-up                                                      */

static void srv_notify(srv *s)
{
    if (s->pending || !s->waiter) return;
    if (!s->qhead && !s->closing) return;
    if (aio_task_complete(s->waiter, &s->op)) {
        s->pending = 1;
    } else {
        s->waiter = NULL; /* interrupted: it will ask again */
    }
}

static int srv_deliver(lua_State *L, aio_op *op)
{
    srv *s = (srv *)op;
    s->pending = 0;
    s->waiter = NULL;
    lua_pushboolean(L, 1);
    return 1;
}

static void srv_drop(aio_rt *rt, aio_op *op)
{
    (void)rt;
    srv *s = (srv *)op;
    s->pending = 0;
    s->waiter = NULL;
}

/* ------------------------------------------------------------------ */
/* exchanges                                                            */

static void ex_unref(exch *e)
{
    if (e->ref != LUA_NOREF) {
        aio_rt_unref(e->rt, e->ref);
        e->ref = LUA_NOREF;
    }
}

/* The response has been sent (ok) or cannot be (the connection failed). */
static void ex_finish(exch *e, int ok, const char *err)
{
    if (e->done) return;
    e->done = 1;
    e->ok = ok;
    e->err = err;
    if (e->c) { e->c->ex = NULL; e->c = NULL; }
    if (e->waiter && !e->pending) {
        if (aio_task_complete(e->waiter, &e->op)) {
            e->pending = 1;
            return;
        }
        e->waiter = NULL;
    }
    if (!e->pending) ex_unref(e);
}

static int ex_deliver(lua_State *L, aio_op *op)
{
    exch *e = (exch *)op;
    /* Keep the userdata on this stack while reading it (unref may free it). */
    if (e->ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
    e->pending = 0;
    e->waiter = NULL;
    ex_unref(e);
    if (e->ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, e->err ? e->err : "connection closed");
    return 2;
}

static void ex_drop(aio_rt *rt, aio_op *op)
{
    (void)rt;
    exch *e = (exch *)op;
    e->pending = 0;
    e->waiter = NULL;
    ex_unref(e);
}

/* ------------------------------------------------------------------ */
/* request state                                                        */

static void req_reset(conn *c)
{
    aio_buf_free(&c->url);
    aio_buf_free(&c->hb);
    free(c->hdrs);
    c->hdrs = NULL;
    c->nhdrs = c->cap_hdrs = 0;
    c->last_cb = 0;
    c->head_bytes = 0;
    aio_buf_free(&c->body);
    if (c->spool_fd >= 0) { close(c->spool_fd); c->spool_fd = -1; }
    if (c->spool_path) {
        /* The handler may have renamed the file away to keep it. */
        unlink(c->spool_path);
        free(c->spool_path);
        c->spool_path = NULL;
    }
    c->body_len = 0;
    c->err_status = 0;
    c->is_head = 0;
}

static int spool_write(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(c->spool_fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Bodies above spool_threshold go to a temporary file as they arrive. */
static int spool_start(conn *c)
{
    srv *s = c->s;
    size_t n = strlen(s->spool_dir) + 32;
    c->spool_path = malloc(n);
    if (!c->spool_path) return -1;
    snprintf(c->spool_path, n, "%s/aio-aws-body-XXXXXX", s->spool_dir);
    c->spool_fd = mkostemp(c->spool_path, O_CLOEXEC);
    if (c->spool_fd < 0) {
        free(c->spool_path);
        c->spool_path = NULL;
        return -1;
    }
    if (spool_write(c, c->body.p + c->body.off, aio_buf_avail(&c->body)) != 0) return -1;
    aio_buf_free(&c->body);
    return 0;
}

/* ------------------------------------------------------------------ */
/* parser callbacks: copy bytes and check limits; never close or free   */

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    req_reset(c);
    c->in_request = 1;
    c->req_start = ev_now(c->s->rt->loop);
    return 0;
}

static int head_limit(conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > c->s->max_header) {
        c->err_status = 431; /* RFC 6585 s5 */
        return 1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (head_limit(c, n)) {
        c->err_status = 414; /* RFC 9110 s15.5.15 */
        return 1;
    }
    if (aio_buf_add(&c->url, at, n) != 0) { c->err_status = 503; return 1; }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (head_limit(c, n)) return 1;
    if (c->last_cb != 1) { /* a new header */
        if (c->nhdrs == c->cap_hdrs) {
            size_t cap = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
            hdr *nh = realloc(c->hdrs, cap * sizeof *nh);
            if (!nh) { c->err_status = 503; return 1; }
            c->hdrs = nh;
            c->cap_hdrs = cap;
        }
        hdr *h = &c->hdrs[c->nhdrs++];
        h->noff = c->hb.len;
        h->nlen = 0;
        h->voff = h->vlen = 0;
        c->last_cb = 1;
    }
    if (aio_buf_add(&c->hb, at, n) != 0) { c->err_status = 503; return 1; }
    c->hdrs[c->nhdrs - 1].nlen += n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (head_limit(c, n)) return 1;
    hdr *h = &c->hdrs[c->nhdrs - 1];
    if (c->last_cb != 2) {
        h->voff = c->hb.len;
        h->vlen = 0;
        c->last_cb = 2;
    }
    if (aio_buf_add(&c->hb, at, n) != 0) { c->err_status = 503; return 1; }
    h->vlen += n;
    return 0;
}

static int hdr_is(conn *c, hdr *h, const char *name)
{
    size_t n = strlen(name);
    return h->nlen == n && strncasecmp(c->hb.p + h->noff, name, n) == 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    srv *s = c->s;
    c->method = p->method;
    c->major = p->http_major;
    c->minor = p->http_minor;
    c->is_head = p->method == HTTP_HEAD;
    if (p->http_major != 1) {
        /* HTTP/0.9 ("GET /" alone) is not served; 2.x is not spoken here */
        c->err_status = p->http_major == 0 ? 400 : 505;
        return -1;
    }
    if (c->minor >= 1) {
        /* RFC 9112 s3.2: an HTTP/1.1 request without exactly one Host
         * field gets 400. */
        int hosts = 0;
        for (size_t i = 0; i < c->nhdrs; i++)
            if (hdr_is(c, &c->hdrs[i], "host")) hosts++;
        if (hosts != 1) {
            c->err_status = 400;
            return -1;
        }
    }
    int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->max_body) {
        c->err_status = 413; /* RFC 9110 s15.5.14 */
        return -1;
    }
    if (has_body && !(p->flags & F_CHUNKED) && p->content_length > s->spool_threshold) {
        if (spool_start(c) != 0) { c->err_status = 500; return -1; }
    }
    /* RFC 9110 s10.1.1: a server that will read the body of an HTTP/1.1
     * request carrying "Expect: 100-continue" sends 100 first (or the final
     * status at once, as for 413 above, which then closes the connection). */
    if (has_body && (c->major > 1 || (c->major == 1 && c->minor >= 1))) {
        for (size_t i = 0; i < c->nhdrs; i++) {
            hdr *h = &c->hdrs[i];
            const char *v = c->hb.p + h->voff;
            size_t vl = h->vlen;
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            if (hdr_is(c, h, "expect") && vl == 12 && strncasecmp(v, "100-continue", 12) == 0) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (aio_buf_add(&c->out, cont, sizeof cont - 1) != 0) {
                    c->err_status = 503;
                    return -1;
                }
                break;
            }
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    srv *s = c->s;
    if (c->body_len + n > s->max_body) {
        c->err_status = 413;
        return 1;
    }
    c->body_len += n;
    if (c->spool_fd < 0 && aio_buf_avail(&c->body) + n > s->spool_threshold) {
        if (spool_start(c) != 0) { c->err_status = 500; return 1; }
    }
    if (c->spool_fd >= 0) {
        if (spool_write(c, at, n) != 0) { c->err_status = 500; return 1; }
    } else if (aio_buf_add(&c->body, at, n) != 0) {
        c->err_status = 503;
        return 1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->keep_alive = http_should_keep_alive(p);
    if (c->spool_fd >= 0) {
        if (close(c->spool_fd) != 0) {
            c->spool_fd = -1;
            c->err_status = 500;
            return 1;
        }
        c->spool_fd = -1;
    }
    /* Stop here: execute() returns what it consumed; the rest waits. */
    http_parser_pause(p, 1);
    return 0;
}

/* ------------------------------------------------------------------ */
/* connections                                                          */

static double conn_deadline(conn *c)
{
    srv *s = c->s;
    switch (c->state) {
    case C_READ: {
        double d = c->last_io + s->idle;
        if (c->in_request && c->req_start + s->reqto < d) d = c->req_start + s->reqto;
        return d;
    }
    case C_WRITE:
        return c->last_io + s->idle;
    case C_LINGER:
        return (c->shut ? c->linger_start : c->last_io) + (c->shut ? s->linger : s->idle);
    default:
        return -1; /* a handler is working: no limit here */
    }
}

static void conn_arm_timer(conn *c)
{
    struct ev_loop *loop = c->s->rt->loop;
    double d = conn_deadline(c);
    ev_timer_stop(loop, &c->tm);
    if (d < 0) return;
    double left = d - ev_now(loop);
    ev_timer_set(&c->tm, left > 0 ? left : 0, 0.);
    ev_timer_start(loop, &c->tm);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    conn *c = w->data;
    double d = conn_deadline(c);
    if (d < 0) return;
    if (ev_now(loop) + 1e-3 < d) { /* activity moved the deadline */
        conn_arm_timer(c);
        return;
    }
    if (c->state == C_READ && c->in_request && !c->rd_eof) {
        conn_fail(c, 408); /* RFC 9110 s15.5.9 */
    } else {
        if (c->state == C_WRITE)
            c->why = "connection closed: the client read nothing for idle_timeout";
        conn_close(c);
    }
}

static void conn_unqueue(conn *c)
{
    srv *s = c->s;
    if (!c->queued) return;
    conn **pp = &s->qhead, *prev = NULL;
    while (*pp && *pp != c) { prev = *pp; pp = &(*pp)->qnext; }
    if (*pp) {
        *pp = c->qnext;
        if (s->qtail == c) s->qtail = prev;
    }
    c->qnext = NULL;
    c->queued = 0;
}

static void conn_close(conn *c)
{
    srv *s = c->s;
    if (loop_usable(s->rt)) {
        ev_io_stop(s->rt->loop, &c->rio);
        ev_io_stop(s->rt->loop, &c->wio);
        ev_timer_stop(s->rt->loop, &c->tm);
    }
    conn_unqueue(c);
    if (c->ex) ex_finish(c->ex, 0, c->why ? c->why : "connection closed before the response was sent");
    if (c->fd >= 0) close(c->fd);
    if (c->file_fd >= 0) close(c->file_fd);
    req_reset(c);
    aio_buf_free(&c->in);
    aio_buf_free(&c->out);
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    free(c);
}

/* Stop reading new requests; send what is queued, then half-close and
 * drain the input until EOF (a close with unread input would make the
 * kernel send RST, which can destroy the response before the client reads
 * it: RFC 9112 s9.6, "tear-down"). */
static int conn_linger(conn *c)
{
    c->state = C_LINGER;
    c->in_request = 0;
    c->last_io = ev_now(c->s->rt->loop);
    if (!c->rd_eof) ev_io_start(c->s->rt->loop, &c->rio);
    return conn_flush(c);
}

/* Answer a request the server rejects by itself, then close. Returns 0
 * if the connection is still open (sending or lingering). */
static int conn_fail(conn *c, int status)
{
    char msg[256];
    const char *reason = http_status_str((enum http_status)status);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason, strlen(reason) + 1, reason);
    req_reset(c);
    aio_buf_add(&c->out, msg, (size_t)n);
    return conn_linger(c);
}

static void conn_request_ready(conn *c)
{
    srv *s = c->s;
    c->state = C_QUEUED;
    c->in_request = 0;
    ev_io_stop(s->rt->loop, &c->rio);
    ev_timer_stop(s->rt->loop, &c->tm);
    if (c->parser.upgrade) c->keep_alive = 0; /* no protocol switch here */
    c->qnext = NULL;
    if (s->qtail) s->qtail->qnext = c; else s->qhead = c;
    s->qtail = c;
    c->queued = 1;
    srv_notify(s);
}

/* Parse n bytes. Returns 0 if the connection is still open. */
static int conn_feed(conn *c, const char *data, size_t n)
{
    size_t done = http_parser_execute(&c->parser, &parser_settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED && !c->err_status) {
        http_parser_pause(&c->parser, 0);
        if (done < n && aio_buf_add(&c->in, data + done, n - done) != 0) {
            conn_close(c);
            return -1;
        }
        conn_request_ready(c);
        return conn_flush(c);
    }
    if (e != HPE_OK || c->err_status || done != n) {
        int status = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
        return conn_fail(c, status);
    }
    if (conn_flush(c) != 0) return -1; /* a 100 Continue */
    conn_arm_timer(c);
    return 0;
}

/* Parse the bytes kept from an earlier read. */
static int conn_resume_parse(conn *c)
{
    aio_buf pending = c->in;
    memset(&c->in, 0, sizeof c->in);
    int r = conn_feed(c, pending.p + pending.off, pending.len - pending.off);
    free(pending.p);
    return r;
}

/* The response has been sent: next request, or close. */
static int conn_response_done(conn *c)
{
    srv *s = c->s;
    if (c->file_fd >= 0) { close(c->file_fd); c->file_fd = -1; }
    req_reset(c);
    if (c->ex) ex_finish(c->ex, 1, NULL);
    if (!c->keep_alive || c->close_after || s->closing)
        return conn_linger(c);
    c->state = C_READ;
    c->in_request = 0;
    c->last_io = ev_now(s->rt->loop);
    if (aio_buf_avail(&c->in) > 0) {
        if (conn_resume_parse(c) != 0) return -1;
        if (c->state != C_READ) return 0;
    }
    if (c->rd_eof) { conn_close(c); return -1; }
    ev_io_start(s->rt->loop, &c->rio);
    conn_arm_timer(c);
    return 0;
}

/* sendfile() has no MSG_NOSIGNAL: block SIGPIPE around it and take back a
 * SIGPIPE it raised, so a client that went away cannot kill the process
 * (the way libcurl's sigpipe_ignore does it, without a global SIG_IGN). */
static ssize_t send_file(int out, int in, off_t *off, size_t n)
{
    sigset_t pipe, old;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    ssize_t r = sendfile(out, in, off, n);
    int err = errno;
    if (r < 0 && err == EPIPE) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return r;
}

/* Send what can be sent now. Returns 0 if the connection is still open. */
static int conn_flush(conn *c)
{
    struct ev_loop *loop = c->s->rt->loop;
    int blocked = 0;
    while (aio_buf_avail(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, aio_buf_avail(&c->out), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { blocked = 1; break; }
            c->why = "connection closed by the client"; /* EPIPE, ECONNRESET */
            conn_close(c);
            return -1;
        }
        c->out.off += (size_t)n;
        c->last_io = ev_now(loop);
    }
    if (aio_buf_avail(&c->out) == 0) c->out.off = c->out.len = 0;
    while (!blocked && c->file_left > 0 && aio_buf_avail(&c->out) == 0) {
        size_t want = c->file_left > (1u << 30) ? (1u << 30) : (size_t)c->file_left;
        ssize_t n = send_file(c->fd, c->file_fd, &c->file_off, want);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) { blocked = 1; break; }
            c->why = errno == EPIPE || errno == ECONNRESET ? "connection closed by the client"
                                                           : "sending the response body file failed";
            conn_close(c);
            return -1;
        }
        if (n == 0) { /* the file shrank: the response cannot be completed */
            c->why = "the response body file ended early";
            conn_close(c);
            return -1;
        }
        c->file_left -= (uint64_t)n;
        c->last_io = ev_now(loop);
    }
    if (blocked) {
        ev_io_start(loop, &c->wio);
        conn_arm_timer(c);
        return 0;
    }
    ev_io_stop(loop, &c->wio);
    if (c->state == C_WRITE) return conn_response_done(c);
    if (c->state == C_LINGER && !c->shut) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
        c->linger_start = ev_now(loop);
        if (c->rd_eof) { conn_close(c); return -1; }
        conn_arm_timer(c);
    }
    return 0;
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_flush(w->data);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    conn *c = w->data;
    char tmp[65536];
    ssize_t n;
    do {
        n = recv(c->fd, tmp, sizeof tmp, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        conn_close(c); /* ECONNRESET and the like */
        return;
    }
    if (c->state == C_LINGER) { /* discard; EOF ends the linger */
        if (n == 0) {
            c->rd_eof = 1;
            ev_io_stop(loop, &c->rio);
            if (c->shut) conn_close(c);
        }
        return;
    }
    if (c->state != C_READ) { /* not reading: should not happen */
        ev_io_stop(loop, &c->rio);
        return;
    }
    if (n == 0) {
        c->rd_eof = 1;
        ev_io_stop(loop, &c->rio);
        if (c->in_request)
            conn_fail(c, 400); /* a truncated request: answer, then close */
        else
            conn_close(c);
        return;
    }
    c->last_io = ev_now(loop);
    conn_feed(c, tmp, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* listening                                                            */

static void srv_accept_cb(struct ev_loop *loop, ev_io *w, int revents);

static void srv_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    srv *s = w->data;
    if (s->fd >= 0) ev_io_start(loop, &s->lio);
}

static void srv_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    srv *s = w->data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: pause accepting for a moment instead
                 * of spinning on a listening socket that stays readable. */
                ev_io_stop(loop, &s->lio);
                s->accept_pauses++;
                ev_timer_set(&s->retry, 0.1, 0.);
                ev_timer_start(loop, &s->retry);
            }
            return;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->s = s;
        c->fd = fd;
        c->file_fd = -1;
        c->spool_fd = -1;
        c->state = C_READ;
        c->last_io = ev_now(loop);
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, c->addr, sizeof c->addr);
            c->port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, c->addr, sizeof c->addr);
            c->port = ntohs(a->sin_port);
        }
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
        c->rio.data = c;
        ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
        c->wio.data = c;
        ev_timer_init(&c->tm, conn_timer_cb, 0., 0.);
        c->tm.data = c;
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        ev_io_start(loop, &c->rio);
        conn_arm_timer(c);
    }
}

static void srv_stop_listening(srv *s)
{
    if (s->fd < 0) return;
    if (loop_usable(s->rt)) {
        ev_io_stop(s->rt->loop, &s->lio);
        ev_timer_stop(s->rt->loop, &s->retry);
    }
    close(s->fd);
    s->fd = -1;
}

static srv *srv_check(lua_State *L, int idx)
{
    srv *s = luaL_checkudata(L, idx, SRV_MT);
    if (s->dead) luaL_error(L, "http server is closed");
    return s;
}

static double opt_num(lua_State *L, int t, const char *k, double dflt, double min)
{
    double v = dflt;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "option '%s' must be a number", k);
        v = lua_tonumber(L, -1);
        if (!(v >= min) || v != v) luaL_error(L, "option '%s' must be a number >= %g", k, min);
    }
    lua_pop(L, 1);
    return v;
}

/** http_server_listen{host, port, max_header_bytes, spool_threshold,
 * spool_dir, idle_timeout, request_timeout, max_body_bytes, backlog,
 * linger_timeout} -> srv | nil, err. host must be a literal address
 * ("localhost" is taken as 127.0.0.1): no DNS lookup blocks the loop. */
static int srv_listen(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *host = "127.0.0.1";
    if (lua_getfield(L, 1, "host") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option 'host' must be a string");
        host = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays in the table */
    if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
    double port = opt_num(L, 1, "port", 0, 0);
    if (port > 65535 || port != (int)port) luaL_error(L, "option 'port' must be an integer 0..65535");
    double max_header = opt_num(L, 1, "max_header_bytes", 65536, 256);
    double spool = opt_num(L, 1, "spool_threshold", 1048576, 0);
    double max_body = opt_num(L, 1, "max_body_bytes", 5.0 * 1024 * 1024 * 1024, 0);
    double idle = opt_num(L, 1, "idle_timeout", 60, 0.001);
    double reqto = opt_num(L, 1, "request_timeout", 300, 0.001);
    double linger = opt_num(L, 1, "linger_timeout", 2, 0);
    double backlog = opt_num(L, 1, "backlog", 511, 1);
    const char *dir = NULL;
    if (lua_getfield(L, 1, "spool_dir") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option 'spool_dir' must be a string");
        dir = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    if (!dir) dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    struct stat dst;
    if (stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        lua_pushnil(L);
        lua_pushfstring(L, "spool_dir %s is not a directory", dir);
        return 2;
    }

    if (strlen(dir) >= sizeof ((srv *)0)->spool_dir - 32) {
        lua_pushnil(L);
        lua_pushliteral(L, "spool_dir path is too long");
        return 2;
    }
    /* The userdata first: nothing below may raise with a socket open.
     * uservalue 1: the waiting acceptor task. */
    srv *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->dead = 1; /* until listening, so __gc does nothing */
    s->rt = rt;
    luaL_setmetatable(L, SRV_MT);
    strcpy(s->spool_dir, dir);

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", (int)port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot listen on %s: %s (host must be an IP address)", host, gai_strerror(rc));
        return 2;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = errno;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, (int)backlog) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot listen on %s port %d: %s", host, (int)port, strerror(err));
        return 2;
    }
    s->fd = fd;
    s->dead = 0;
    s->op.deliver = srv_deliver;
    s->op.drop = srv_drop;
    s->max_header = (size_t)max_header;
    s->spool_threshold = (uint64_t)spool;
    s->max_body = (uint64_t)max_body;
    s->idle = idle;
    s->reqto = reqto;
    s->linger = linger;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, s->host, sizeof s->host);
        s->port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, s->host, sizeof s->host);
        s->port = ntohs(a->sin_port);
    }
    ev_io_init(&s->lio, srv_accept_cb, fd, EV_READ);
    s->lio.data = s;
    ev_timer_init(&s->retry, srv_retry_cb, 0.1, 0.);
    s->retry.data = s;
    ev_io_start(rt->loop, &s->lio);
    return 1;
}

static int srv_info(lua_State *L)
{
    srv *s = srv_check(L, 1);
    lua_pushstring(L, s->host);
    lua_pushinteger(L, s->port);
    return 2;
}

/* [..] -> [.., lower-cased copy of s] */
static void push_lower(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, n);
    for (size_t i = 0; i < n; i++) p[i] = (char)tolower((unsigned char)s[i]);
    luaL_pushresultsize(&b, n);
}

/* Build the request table of conn c on L: [..] -> [.., req] */
static void push_request(lua_State *L, conn *c)
{
    lua_createtable(L, 0, 14);
    lua_pushstring(L, http_method_str((enum http_method)c->method));
    lua_setfield(L, -2, "method");
    const char *u = c->url.p ? c->url.p : "";
    size_t ul = c->url.len;
    lua_pushlstring(L, u, ul);
    lua_setfield(L, -2, "target");
    const char *q = memchr(u, '?', ul);
    size_t pl = q ? (size_t)(q - u) : ul;
    lua_pushlstring(L, u, pl);
    lua_setfield(L, -2, "path");
    if (q) lua_pushlstring(L, q + 1, ul - pl - 1); else lua_pushliteral(L, "");
    lua_setfield(L, -2, "query");
    lua_pushfstring(L, "%d.%d", (int)c->major, (int)c->minor);
    lua_setfield(L, -2, "http_version");
    lua_pushstring(L, c->addr);
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, c->port);
    lua_setfield(L, -2, "remote_port");
    lua_pushinteger(L, (lua_Integer)c->body_len);
    lua_setfield(L, -2, "body_length");
    if (c->spool_path) {
        lua_pushstring(L, c->spool_path);
        lua_setfield(L, -2, "body_file");
    } else {
        lua_pushlstring(L, c->body.p ? c->body.p + c->body.off : "", aio_buf_avail(&c->body));
        lua_setfield(L, -2, "body");
        aio_buf_free(&c->body);
    }
    lua_createtable(L, 0, (int)c->nhdrs);              /* [req, headers] */
    lua_createtable(L, (int)c->nhdrs, 0);              /* [req, headers, list] */
    for (size_t i = 0; i < c->nhdrs; i++) {
        hdr *h = &c->hdrs[i];
        const char *v = c->hb.p + h->voff;
        size_t vl = h->vlen;
        /* field values lose surrounding whitespace (RFC 9110 s5.5) */
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
        while (vl > 0 && (v[0] == ' ' || v[0] == '\t')) { v++; vl--; }
        lua_createtable(L, 2, 0);                      /* [.., list, pair] */
        lua_pushlstring(L, c->hb.p + h->noff, h->nlen);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, v, vl);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);        /* [req, headers, list] */
        push_lower(L, c->hb.p + h->noff, h->nlen);     /* [.., name] */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -4) == LUA_TSTRING) {        /* [.., name, old] */
            /* repeated: joined with "," (RFC 9110 s5.3) */
            lua_pushliteral(L, ",");
            lua_pushlstring(L, v, vl);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, v, vl);
        }
        lua_rawset(L, -4);                             /* headers[name] = value */
    }
    lua_setfield(L, -3, "header_list");
    lua_setfield(L, -2, "headers");
}

/** srv:next() -> req, exchange | nil */
static int srv_next(lua_State *L)
{
    srv *s = srv_check(L, 1);
    conn *c = s->qhead;
    if (!c) return 0;
    /* Allocate everything first: a memory error must leave c queued. */
    luaL_checkstack(L, 12, NULL);
    exch *e = lua_newuserdatauv(L, sizeof *e, 2);      /* [srv, ex] */
    memset(e, 0, sizeof *e);
    e->ref = LUA_NOREF;
    e->rt = s->rt;
    e->done = 1; /* until linked, so __gc does nothing */
    luaL_setmetatable(L, EX_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 2);                       /* keeps srv (and c) alive */
    push_request(L, c);                                /* [srv, ex, req] */
    s->qhead = c->qnext;
    if (!s->qhead) s->qtail = NULL;
    c->qnext = NULL;
    c->queued = 0;
    c->state = C_HANDLING;
    e->op.deliver = ex_deliver;
    e->op.drop = ex_drop;
    e->c = c;
    e->done = 0;
    c->ex = e;
    lua_insert(L, -2);                                 /* [srv, req, ex] */
    return 2;
}

/** srv:wait(task) -> boolean */
static int srv_wait(lua_State *L)
{
    srv *s = srv_check(L, 1);
    aio_task *t = aio_task_running(L, 2);
    if (s->qhead || s->closing) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (s->waiter && s->waiter != t) luaL_error(L, "another task is already accepting on this server");
    s->waiter = t;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int srv_unwait(lua_State *L)
{
    srv *s = srv_check(L, 1);
    if (s->waiter && s->pending) {
        aio_task_detach(L, s->waiter, &s->op);
        s->pending = 0;
    }
    s->waiter = NULL;
    return 0;
}

static int srv_closing(lua_State *L)
{
    srv *s = luaL_checkudata(L, 1, SRV_MT);
    lua_pushboolean(L, (s->closing || s->dead) && !s->qhead);
    return 1;
}

/* Graceful: stop listening; close connections that are between requests
 * or still reading one; the others close after their response. */
static void srv_shutdown(srv *s)
{
    if (s->closing) return;
    s->closing = 1;
    srv_stop_listening(s);
    conn *c = s->conns;
    while (c) {
        conn *next = c->next;
        if (c->state == C_READ) conn_close(c);
        else c->close_after = 1;
        c = next;
    }
    srv_notify(s);
}

static int srv_close_l(lua_State *L)
{
    srv *s = luaL_checkudata(L, 1, SRV_MT);
    if (!s->dead) srv_shutdown(s);
    return 0;
}

/* Everything freed; watchers stopped when the loop still exists. */
static int srv_gc(lua_State *L)
{
    srv *s = luaL_checkudata(L, 1, SRV_MT);
    if (s->dead) return 0;
    s->closing = 1;
    srv_stop_listening(s);
    while (s->conns) conn_close(s->conns);
    s->dead = 1;
    return 0;
}

static int srv_stats(lua_State *L)
{
    srv *s = luaL_checkudata(L, 1, SRV_MT);
    int queued = 0, handling = 0, writing = 0;
    for (conn *c = s->conns; c; c = c->next) {
        if (c->state == C_QUEUED) queued++;
        else if (c->state == C_HANDLING) handling++;
        else if (c->state == C_WRITE || c->state == C_LINGER) writing++;
    }
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, s->nconns);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, queued);
    lua_setfield(L, -2, "queued");
    lua_pushinteger(L, handling);
    lua_setfield(L, -2, "handling");
    lua_pushinteger(L, writing);
    lua_setfield(L, -2, "writing");
    lua_pushboolean(L, s->closing || s->dead);
    lua_setfield(L, -2, "closed");
    lua_pushinteger(L, s->accept_pauses);
    lua_setfield(L, -2, "accept_pauses");
    return 1;
}

/* ------------------------------------------------------------------ */
/* responses                                                            */

static int token_char(unsigned char ch)
{
    /* RFC 9110 s5.6.2 tchar */
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int valid_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '\r' || ch == '\n' || ch == 0) return 0;
    }
    return 1;
}

enum { H_NORMAL, H_SKIP, H_LENGTH, H_DATE };

static int header_kind(const char *n, size_t nl)
{
    if (nl == 14 && strncasecmp(n, "content-length", nl) == 0) return H_LENGTH;
    if ((nl == 17 && strncasecmp(n, "transfer-encoding", nl) == 0) ||
        (nl == 10 && strncasecmp(n, "connection", nl) == 0) ||
        (nl == 10 && strncasecmp(n, "keep-alive", nl) == 0))
        return H_SKIP; /* framing is the server's business */
    if (nl == 4 && strncasecmp(n, "date", nl) == 0) return H_DATE;
    return H_NORMAL;
}

/* Format a header value without allocating (numbers as Lua prints them). */
static const char *value_str(lua_State *L, int idx, size_t *len, char *tmp, size_t tmpn)
{
    if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
    if (lua_isinteger(L, idx))
        *len = (size_t)snprintf(tmp, tmpn, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    else
        *len = (size_t)snprintf(tmp, tmpn, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, idx));
    return tmp;
}

typedef struct head_out {
    char *p;
    size_t len, cap;
    int failed;
} head_out;

static void ho_add(head_out *h, const char *s, size_t n)
{
    if (h->failed) return;
    if (h->len + n > h->cap) {
        size_t cap = h->cap ? h->cap : 1024;
        while (cap < h->len + n) cap *= 2;
        char *np = realloc(h->p, cap);
        if (!np) { h->failed = 1; return; }
        h->p = np;
        h->cap = cap;
    }
    memcpy(h->p + h->len, s, n);
    h->len += n;
}

static void ho_str(head_out *h, const char *s) { ho_add(h, s, strlen(s)); }

/* One pass over res.headers (table at idx). check: raise on misuse;
 * otherwise append "Name: value\r\n" lines to h (nothing here raises). */
static void walk_headers(lua_State *L, int idx, int check, head_out *h, int *has_date,
                         const char **clen, size_t *clen_n)
{
    char tmp[64];
    lua_pushnil(L);
    while (lua_next(L, idx)) {                         /* [.., k, v] */
        if (check && lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "response header names must be strings");
        size_t nl;
        const char *n = lua_tolstring(L, -2, &nl);
        if (check) {
            if (nl == 0) luaL_error(L, "response header name is empty");
            for (size_t i = 0; i < nl; i++)
                if (!token_char((unsigned char)n[i]))
                    luaL_error(L, "response header name '%s' is not a token (RFC 9110 s5.1)", n);
        }
        int kind = header_kind(n, nl);
        int many = lua_type(L, -1) == LUA_TTABLE;
        lua_Integer count = many ? (lua_Integer)lua_rawlen(L, -1) : 1;
        for (lua_Integer i = 1; i <= count; i++) {
            if (many) lua_rawgeti(L, -1, i); else lua_pushvalue(L, -1);
            int ty = lua_type(L, -1);
            if (check && ty != LUA_TSTRING && ty != LUA_TNUMBER)
                luaL_error(L, "response header '%s' must be a string, a number or a list of them", n);
            size_t vl;
            const char *v = value_str(L, -1, &vl, tmp, sizeof tmp);
            if (check && !valid_value(v, vl))
                luaL_error(L, "response header '%s' contains CR, LF or NUL", n);
            if (!check) {
                if (kind == H_LENGTH) {
                    if (lua_type(L, -1) == LUA_TSTRING) { *clen = v; *clen_n = vl; }
                } else if (kind != H_SKIP) {
                    if (kind == H_DATE) *has_date = 1;
                    ho_add(h, n, nl);
                    ho_add(h, ": ", 2);
                    ho_add(h, v, vl);
                    ho_add(h, "\r\n", 2);
                }
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

static void http_date(char *out, size_t n)
{
    /* IMF-fixdate (RFC 9110 s5.6.7); no strftime: %a/%b follow the locale */
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static exch *ex_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, EX_MT);
}

static lua_Integer opt_field_int(lua_State *L, int t, const char *k, lua_Integer dflt)
{
    lua_Integer v = dflt;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (lua_type(L, -1) != LUA_TNUMBER || !ok || v < 0)
            luaL_error(L, "response field '%s' must be a non-negative integer", k);
    }
    lua_pop(L, 1);
    return v;
}

/** ex:respond(task, res). See the file comment for the results. Misuse
 * (a malformed res) raises before anything is sent, so the caller can
 * still answer 500. */
static int ex_respond(lua_State *L)
{
    exch *e = ex_check(L, 1);
    aio_task *t = aio_task_running(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    luaL_checkstack(L, 12, NULL);
    if (e->responded) luaL_error(L, "this request has already been answered");

    /* 1. check everything (may raise) */
    if (lua_getfield(L, 3, "status") != LUA_TNUMBER || !lua_isinteger(L, -1))
        luaL_error(L, "response field 'status' must be an integer");
    lua_Integer status = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (status < 200 || status > 999) luaL_error(L, "response status %d is not in 200..999", (int)status);
    int hidx = 0;
    if (lua_getfield(L, 3, "headers") != LUA_TNIL) {  /* [.., headers] = 4 */
        luaL_argcheck(L, lua_type(L, 4) == LUA_TTABLE, 3, "response field 'headers' must be a table");
        hidx = 4;
        walk_headers(L, hidx, 1, NULL, NULL, NULL, NULL);
    }
    size_t blen = 0;
    const char *body = NULL, *body_file = NULL;
    if (lua_getfield(L, 3, "body") != LUA_TNIL) {      /* 5 */
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "response field 'body' must be a string");
        body = lua_tolstring(L, -1, &blen);
    }
    if (lua_getfield(L, 3, "body_file") != LUA_TNIL) { /* 6 */
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "response field 'body_file' must be a string");
        body_file = lua_tostring(L, -1);
    }
    if (body && body_file) luaL_error(L, "response fields 'body' and 'body_file' are exclusive");
    lua_Integer boff = opt_field_int(L, 3, "body_offset", 0);
    lua_Integer bl = opt_field_int(L, 3, "body_length", -1);
    int has_bl = bl >= 0;
    lua_getfield(L, 3, "close");
    int want_close = lua_toboolean(L, -1);
    lua_pop(L, 1);

    conn *c = e->c;
    if (!c) { /* the connection went away while the handler worked */
        e->responded = 1;
        lua_pushboolean(L, 0);
        lua_pushboolean(L, 0);
        lua_pushstring(L, e->err ? e->err : "connection closed");
        return 3;
    }

    /* 2. the body file (runtime failures: nil, err, nothing sent) */
    int ffd = -1;
    uint64_t flen = 0;
    if (body_file) {
        struct stat st;
        ffd = open(body_file, O_RDONLY | O_CLOEXEC);
        if (ffd < 0 || fstat(ffd, &st) != 0) {
            int err = errno;
            if (ffd >= 0) close(ffd);
            lua_pushnil(L);
            lua_pushfstring(L, "cannot open response body file: %s", strerror(err));
            return 2;
        }
        uint64_t size = (uint64_t)st.st_size;
        if ((uint64_t)boff > size || (has_bl && (uint64_t)boff + (uint64_t)bl > size)) {
            close(ffd);
            lua_pushnil(L);
            lua_pushliteral(L, "response body_offset/body_length is past the end of the file");
            return 2;
        }
        flen = has_bl ? (uint64_t)bl : size - (uint64_t)boff;
    } else if (body) {
        if ((uint64_t)boff > blen || (has_bl && (uint64_t)boff + (uint64_t)bl > blen))
            luaL_error(L, "response body_offset/body_length is past the end of the body");
        body += boff;
        blen = has_bl ? (size_t)bl : blen - (size_t)boff;
    }

    /* 3. the head (from here on nothing raises) */
    head_out h = {NULL, 0, 0, 0};
    char line[128];
    int has_date = 0;
    const char *clen = NULL;
    size_t clen_n = 0;
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", (int)status,
                     http_status_str((enum http_status)status));
    ho_add(&h, line, (size_t)n);
    /* the handler's lines go to a second buffer so Date can come first */
    head_out hh = {NULL, 0, 0, 0};
    if (hidx) walk_headers(L, hidx, 0, &hh, &has_date, &clen, &clen_n);
    if (!has_date) {
        char date[64];
        http_date(date, sizeof date);
        n = snprintf(line, sizeof line, "Date: %s\r\n", date);
        ho_add(&h, line, (size_t)n);
    }
    if (hh.len) ho_add(&h, hh.p, hh.len);
    h.failed |= hh.failed;
    free(hh.p);
    uint64_t length = body_file ? flen : (uint64_t)blen;
    int no_body = c->is_head || status == 204 || status == 304;
    /* RFC 9110 s8.6: never Content-Length in 204; HEAD and 304 may carry
     * the handler's (the length a GET would have). */
    if (status != 204) {
        if ((c->is_head || status == 304) && clen) {
            ho_add(&h, "Content-Length: ", 16);
            ho_add(&h, clen, clen_n);
            ho_add(&h, "\r\n", 2);
        } else if (status != 304 || body || body_file) {
            n = snprintf(line, sizeof line, "Content-Length: %llu\r\n", (unsigned long long)length);
            ho_add(&h, line, (size_t)n);
        }
    }
    int closing = want_close || !c->keep_alive || c->s->closing || c->close_after;
    if (closing)
        ho_str(&h, "Connection: close\r\n");
    else if (c->major == 1 && c->minor == 0)
        ho_str(&h, "Connection: keep-alive\r\n"); /* RFC 9112 s9.3 for 1.0 clients */
    ho_add(&h, "\r\n", 2);
    if (!no_body && body) ho_add(&h, body, blen);
    if (h.failed || aio_buf_add(&c->out, h.p, h.len) != 0) {
        free(h.p);
        if (ffd >= 0) close(ffd);
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory building the response");
        return 2;
    }
    free(h.p);
    e->responded = 1;
    if (!no_body && ffd >= 0 && flen > 0) {
        c->file_fd = ffd;
        c->file_off = (off_t)boff;
        c->file_left = flen;
    } else if (ffd >= 0) {
        close(ffd);
    }
    if (want_close) c->close_after = 1;
    c->state = C_WRITE;
    c->last_io = ev_now(c->s->rt->loop);
    conn_flush(c); /* may finish (or fail) at once */
    if (e->done) {
        lua_pushboolean(L, 0);
        lua_pushboolean(L, e->ok);
        if (e->ok) lua_pushnil(L); else lua_pushstring(L, e->err ? e->err : "connection closed");
        return 3;
    }
    /* Wait for the send: anchor ourselves and the waiting task. */
    e->waiter = t;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1);
    lua_pushvalue(L, 1);
    e->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 1);
    return 1;
}

/** ex:cancel(): the waiting handler task was cancelled. */
static int ex_cancel(lua_State *L)
{
    exch *e = ex_check(L, 1);
    aio_task *t = e->waiter;
    if (!t) return 0;
    if (e->pending) {
        /* its result is scheduled: the task gets (nil, "Cancelled") instead */
        aio_task_detach(L, t, &e->op);
        e->pending = 0;
    }
    e->waiter = NULL;
    if (e->done) ex_unref(e); /* else ex_finish unrefs it */
    return 0;
}

/* A request dropped without an answer: the connection cannot go on. */
static int ex_gc(lua_State *L)
{
    exch *e = ex_check(L, 1);
    if (e->c) {
        conn *c = e->c;
        e->c = NULL;
        c->ex = NULL;
        e->done = 1;
        if (!e->responded && loop_usable(e->rt) && !c->s->dead) conn_fail(c, 500);
    }
    return 0;
}

void aio_http_server_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"http_server_listen", srv_listen},
        {NULL, NULL}};
    static const luaL_Reg srv_methods[] = {
        {"info", srv_info},
        {"next", srv_next},
        {"wait", srv_wait},
        {"unwait", srv_unwait},
        {"closing", srv_closing},
        {"close", srv_close_l},
        {"stats", srv_stats},
        {NULL, NULL}};
    static const luaL_Reg ex_methods[] = {
        {"respond", ex_respond},
        {"cancel", ex_cancel},
        {NULL, NULL}};
    http_parser_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
    if (luaL_newmetatable(L, SRV_MT)) {
        luaL_newlib(L, srv_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, srv_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, EX_MT)) {
        luaL_newlib(L, ex_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ex_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
}
