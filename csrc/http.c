/* HTTP client: one libcurl easy handle per request, driven by curl_ev on the
 * runtime's libev loop; the requesting task waits for the result.
 *
 *   core.http_pool{max_total=, max_per_host=} -> pool
 *   core.http_request(task, opts) -> req | nil, err      (then the task yields)
 *       resumed with: response {status, headers, header_list, body, ...} | nil, err
 *   req:take(max) -> string | false (wait) | nil (end) | nil, err    (stream mode)
 *   req:wait(task [, what])  registers the running task (then yield) for
 *                      "data" (default), "space" (feed mode) or "response"
 *   req:close()        stops the transfer; idempotent, also __gc / __close
 *
 * Feed mode (opts.body_source, a function the Lua layer calls, never C):
 * the request body comes from req:feed(s) calls made by the requesting
 * task before it waits for the response, with back-pressure: feed refuses
 * (false) while `feed_buffer` bytes wait unsent, and the task waits for
 * "space". The read callback only copies from that buffer, pausing the
 * upload (CURL_READFUNC_PAUSE) when it is empty; feed() unpauses it.
 *   req:feed(s) -> true | false (full: wait for "space") | nil (transfer over)
 *   req:feed_end([errmsg])  no more data; with errmsg, abort (BodyReadError)
 *   req:result()       the response (or nil, err) once the transfer is done
 *
 * libcurl callbacks here only copy bytes and flip flags; results are turned
 * into Lua values later, by the runtime's dispatcher, inside lua_pcall. */
#include "runtime.h"
#include "buf.h"
#include "curl_ev.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define POOL_MT "aio_aws.http_pool"
#define REQ_MT  "aio_aws.http_request"
#define DEFAULT_POOL_KEY "aio_aws.default_pool"
#define POOL_FREE_EASY 64

/* ------------------------------------------------------------------ */

typedef struct http_pool http_pool;
typedef struct xfer xfer;

enum { X_NEW, X_RUNNING, X_DONE, X_CLOSED };
enum { W_NONE, W_RESPONSE, W_HEAD, W_DATA, W_SPACE };

struct xfer {
    aio_op op;
    http_pool *pool;
    aio_rt *rt;
    CURL *easy;
    struct curl_slist *hdrs;
    struct curl_slist *resolve; /* CURLOPT_RESOLVE entries, "host:port:addr" */
    FILE *src;
    curl_off_t src_start, src_len, src_left;
    int feed;             /* body fed from Lua through req:feed (feed mode) */
    int feed_eof;         /* req:feed_end called */
    int src_paused;       /* the read callback paused the upload (buffer empty) */
    aio_buf fbuf;            /* fed bytes not sent yet */
    size_t feed_high;     /* feed() refuses more while this much waits */
    curl_off_t fed;       /* bytes fed so far */
    curl_off_t feed_len;  /* declared body length, or -1 (chunked) */
    FILE *sink;
    int sink_used;        /* the body went to the sink (2xx response) */
    aio_buf body, head;
    long status;
    long connects;        /* new connections this transfer needed */
    curl_off_t sink_bytes;
    CURLcode result;
    const char *fail_code; /* set when failed by us, not by curl */
    int state;
    int stream, paused, head_done, head_delivered;
    int wait;             /* what the waiter waits for */
    int pending;          /* a delivery is scheduled */
    aio_task *waiter;
    int ref;              /* anchor: see x_release */
    size_t high_water;
    ev_timer idle;        /* read_timeout: no byte moved for that long */
    double idle_secs;
    char errbuf[CURL_ERROR_SIZE];
    xfer *prev, *next;    /* pool's running list */
};

struct http_pool {
    cev_multi m;
    aio_source src;
    aio_rt *rt;
    xfer *running;
    CURL *free_easy[POOL_FREE_EASY];
    int nfree;
    int closed;
};

/* ------------------------------------------------------------------ */
/* anchoring: a transfer's userdata is pinned while libcurl may call into
 * it and nobody else holds it (running, until a stream's head has been
 * handed to Lua), and while a delivery is scheduled (STYLE.md s5.6). */

static void x_release(xfer *x)
{
    /* Once a stream's head is delivered, the Lua stream object owns it. */
    int want = x->pending || (x->state == X_RUNNING && !x->head_delivered);
    if (!want && x->ref != LUA_NOREF) {
        aio_rt_unref(x->rt, x->ref);
        x->ref = LUA_NOREF;
    }
}

static void x_unlink(xfer *x)
{
    http_pool *p = x->pool;
    if (x->prev) x->prev->next = x->next; else if (p->running == x) p->running = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void pool_put_easy(http_pool *p, CURL *easy)
{
    if (!p->closed && p->nfree < POOL_FREE_EASY) {
        curl_easy_reset(easy);
        p->free_easy[p->nfree++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

/* Something moved: restart the read_timeout clock (ev_timer_again keeps
 * one timer per transfer instead of re-creating it). */
static void x_active(xfer *x)
{
    if (x->idle_secs > 0 && x->state == X_RUNNING)
        ev_timer_again(x->rt->loop, &x->idle);
}

/* Wake the waiter if what it waits for has happened. No Lua here. */
static void x_notify(xfer *x)
{
    if (x->pending || !x->waiter || x->wait == W_NONE)
        return;
    int ready = x->state != X_RUNNING ||
                (x->wait == W_HEAD && x->head_done) ||
                (x->wait == W_DATA && aio_buf_avail(&x->body) > 0) ||
                (x->wait == W_SPACE && aio_buf_avail(&x->fbuf) <= x->feed_high / 2);
    if (!ready)
        return;
    if (aio_task_complete(x->waiter, &x->op)) {
        x->pending = 1;
    } else {
        /* interrupted (cancelled): nobody will take this result */
        x->wait = W_NONE;
        x->waiter = NULL;
    }
}

/* The transfer is over (curl finished it, or we stopped it). */
static void x_finish(xfer *x, int state)
{
    if (x->idle_secs > 0) ev_timer_stop(x->rt->loop, &x->idle);
    if (x->state == X_RUNNING) {
        x_unlink(x);
        x->rt->in_flight--;
    }
    x->state = state;
    if (x->easy) {
        pool_put_easy(x->pool, x->easy);
        x->easy = NULL;
    }
    if (x->src) { fclose(x->src); x->src = NULL; }
    aio_buf_free(&x->fbuf); /* unsent fed bytes are useless now */
    if (x->sink) {
        if (fclose(x->sink) != 0 && x->result == CURLE_OK) {
            x->result = CURLE_WRITE_ERROR;
            snprintf(x->errbuf, sizeof x->errbuf, "closing the sink file: %s", strerror(errno));
        }
        x->sink = NULL;
    }
    if (x->hdrs) { curl_slist_free_all(x->hdrs); x->hdrs = NULL; }
    if (x->resolve) { curl_slist_free_all(x->resolve); x->resolve = NULL; }
}

/* read_timeout expired. A libev callback, not inside libcurl, so the
 * transfer can be removed here. */
static void x_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    xfer *x = w->data;
    if (x->state != X_RUNNING) return;
    cev_remove(&x->pool->m, x->easy);
    x->result = CURLE_OPERATION_TIMEDOUT;
    snprintf(x->errbuf, sizeof x->errbuf, "no data sent or received for %g seconds (read_timeout)",
             x->idle_secs);
    curl_easy_cleanup(x->easy); /* its connection is in an unknown state */
    x->easy = NULL;
    x_finish(x, X_DONE);
    x_notify(x);
    x_release(x);
}

static void pool_done(cev_multi *m, CURL *easy, CURLcode result)
{
    http_pool *p = m->owner;
    xfer *x = NULL;
    (void)p;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x || x->state != X_RUNNING) return;
    x->result = result;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &x->connects);
    x_finish(x, X_DONE);
    x_notify(x);
    x_release(x);
}

/* Fail every running transfer: the multi handle is unusable, or the pool
 * is closing. */
static void pool_fail_all(http_pool *p, const char *code, const char *why)
{
    while (p->running) {
        xfer *x = p->running;
        cev_remove(&p->m, x->easy);
        x->fail_code = code;
        snprintf(x->errbuf, sizeof x->errbuf, "%s", why);
        x->result = CURLE_ABORTED_BY_CALLBACK;
        x_finish(x, X_DONE);
        x_notify(x);
        x_release(x);
    }
}

static void pool_broken(cev_multi *m, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "curl multi: %s", why);
    pool_fail_all(m->owner, "ConnectionError", msg);
}

/* ------------------------------------------------------------------ */
/* libcurl callbacks: copy bytes, flip flags, nothing else               */

static size_t x_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    if (x->sink && !x->sink_used && x->sink_bytes == 0 && aio_buf_avail(&x->body) == 0) {
        /* Error bodies (>= 300) stay in memory so the caller can parse them. */
        long st = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
        x->sink_used = st >= 200 && st < 300;
    }
    if (x->sink_used) {
        if (fwrite(ptr, 1, n, x->sink) != n) {
            snprintf(x->errbuf, sizeof x->errbuf, "writing the sink file: %s", strerror(errno));
            return 0; /* CURLE_WRITE_ERROR */
        }
        x->sink_bytes += (curl_off_t)n;
        x_active(x);
        return n;
    }
    if (x->stream && aio_buf_avail(&x->body) >= x->high_water) {
        /* Back-pressure: curl keeps this chunk and hands it over again
         * after curl_easy_pause(CURLPAUSE_CONT) (CURLOPT_WRITEFUNCTION). */
        x->paused = 1;
        /* waiting for our own reader is not the server being slow */
        if (x->idle_secs > 0) ev_timer_stop(x->rt->loop, &x->idle);
        return CURL_WRITEFUNC_PAUSE;
    }
    if (aio_buf_add(&x->body, ptr, n) != 0) {
        snprintf(x->errbuf, sizeof x->errbuf, "out of memory buffering the response body");
        return 0;
    }
    x_active(x);
    if (x->stream) x_notify(x);
    return n;
}

static size_t x_header_cb(char *ptr, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t n = size * nitems;
    x_active(x);
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        x->head.len = x->head.off = 0; /* a new response (after 1xx) */
    } else if (n <= 2 && (ptr[0] == '\r' || ptr[0] == '\n')) {
        long st = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 200) {
            x->status = st;
            x->head_done = 1;
            x_notify(x);
        }
        return n;
    }
    if (aio_buf_add(&x->head, ptr, n) != 0)
        return 0;
    return n;
}

static size_t x_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t want = size * nitems;
    if ((curl_off_t)want > x->src_left) want = (size_t)x->src_left;
    if (want == 0) return 0;
    size_t got = fread(buf, 1, want, x->src);
    if (got == 0) {
        snprintf(x->errbuf, sizeof x->errbuf, "body file ended early or failed to read");
        return CURL_READFUNC_ABORT;
    }
    x->src_left -= (curl_off_t)got;
    x_active(x);
    return got;
}

/* Feed mode: copy what req:feed buffered. With nothing buffered, pause
 * the upload (curl calls again after curl_easy_pause(CURLPAUSE_CONT),
 * CURLOPT_READFUNCTION) and wake a feeder waiting for space. */
static size_t x_feed_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t want = size * nitems, avail = aio_buf_avail(&x->fbuf);
    if (avail == 0) {
        if (x->feed_eof) return 0;
        x->src_paused = 1;
        /* waiting for our own feeder is not the server being slow */
        if (x->idle_secs > 0) ev_timer_stop(x->rt->loop, &x->idle);
        x_notify(x);
        return CURL_READFUNC_PAUSE;
    }
    size_t n = want < avail ? want : avail;
    memcpy(buf, x->fbuf.p + x->fbuf.off, n);
    x->fbuf.off += n;
    x_active(x);
    x_notify(x);
    return n;
}

/* Connected (or a connection reused), request about to go out: from here
 * on read_timeout alone applies (CURLOPT_PREREQFUNCTION, libcurl 7.80). */
static int x_prereq_cb(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip; (void)local_ip; (void)primary_port; (void)local_port;
    x_active(ud);
    return CURL_PREREQFUNC_OK;
}

/* Rewind for a resend (curl retries a request on a reused connection that
 * the server closed, and rewinds for redirects/auth). */
static int x_seek_cb(void *ud, curl_off_t offset, int origin)
{
    xfer *x = ud;
    if (origin != SEEK_SET || offset < 0 || offset > x->src_len)
        return CURL_SEEKFUNC_CANTSEEK;
    if (fseeko(x->src, (off_t)(x->src_start + offset), SEEK_SET) != 0)
        return CURL_SEEKFUNC_FAIL;
    x->src_left = x->src_len - offset;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------------ */
/* results                                                              */

/* Stable error codes (README "Errors"); retryable marks transient ones. */
static const char *x_error_code(CURLcode rc, int *retryable)
{
    *retryable = 0;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        *retryable = 1;
        return "Timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        *retryable = 1;
        return "DNSError";
    case CURLE_URL_MALFORMAT:
        return "InvalidURL";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return "TLSError";
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SEND_FAIL_REWIND: /* a fed body cannot be resent on a new connection */
        *retryable = 1;
        return "ConnectionError";
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL: /* "Received HTTP/0.9": URLs are checked up front */
        *retryable = 1;
        return "ProtocolError";
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return "BodyReadError";
    case CURLE_WRITE_ERROR:
        return "BodyWriteError";
    case CURLE_OUT_OF_MEMORY:
        return "OutOfMemory";
    default:
        return "HTTPError";
    }
}

/* nil, {code, message, curl_code, retryable} */
static int x_push_error(lua_State *L, xfer *x)
{
    int retryable;
    const char *code = x_error_code(x->result, &retryable);
    /* A read abort from our own read callback is a body file problem. */
    if (x->fail_code) { code = x->fail_code; retryable = strcmp(code, "ConnectionError") == 0; }
    lua_pushnil(L);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    if (x->errbuf[0])
        lua_pushstring(L, x->errbuf);
    else
        lua_pushstring(L, curl_easy_strerror(x->result));
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, (lua_Integer)x->result);
    lua_setfield(L, -2, "curl_code");
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    return 2;
}

static void push_lower(lua_State *L, const char *s, size_t n)
{
    char tmp[256];
    if (n <= sizeof tmp) {
        for (size_t i = 0; i < n; i++) tmp[i] = (char)tolower((unsigned char)s[i]);
        lua_pushlstring(L, tmp, n);
    } else {
        luaL_Buffer b;
        char *d = luaL_buffinitsize(L, &b, n);
        for (size_t i = 0; i < n; i++) d[i] = (char)tolower((unsigned char)s[i]);
        luaL_pushresultsize(&b, n);
    }
}

/* {status, headers = {name = value (repeats joined by ", ", RFC 9110
 * 5.3)}, header_list = {name1, value1, name2, ...} in wire order} */
static void x_push_head(lua_State *L, xfer *x)
{
    const char *p = x->head.p + x->head.off, *end = x->head.p + x->head.len;
    int lines = 0;
    for (const char *q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) lines++;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, x->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, lines);          /* [res, headers], presized */
    lua_createtable(L, 2 * lines, 0);      /* [res, headers, list] */
    int n = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *le = eol ? eol : end;
        if (le > p && le[-1] == '\r') le--;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon && colon > p && p[0] != ' ' && p[0] != '\t') {
            const char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            push_lower(L, p, (size_t)(colon - p));          /* [.., name] */
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, ++n);
            lua_pushlstring(L, v, (size_t)(ve - v));         /* [.., name, value] */
            lua_pushvalue(L, -1);
            lua_rawseti(L, -4, ++n);
            lua_pushvalue(L, -2);
            if (lua_rawget(L, -5) == LUA_TSTRING) {          /* repeated header */
                lua_insert(L, -2);                           /* [.., name, old, value] */
                lua_pushliteral(L, ", ");
                lua_insert(L, -2);
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
            }
            lua_rawset(L, -4);                               /* headers[name] = value */
        }
        p = next;
    }
    lua_setfield(L, -3, "header_list");
    lua_setfield(L, -2, "headers");
    lua_pushinteger(L, x->connects);
    lua_setfield(L, -2, "new_connections");
}

static int x_push_result(lua_State *L, xfer *x, int kind);

static int x_deliver(lua_State *L, aio_op *op)
{
    xfer *x = (xfer *)op;
    int kind = x->wait;
    /* Keep the userdata alive on this stack while we read its buffers:
     * releasing the anchor may make it collectable. */
    if (x->ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, x->ref);
    else lua_pushnil(L);
    x->pending = 0;
    x->wait = W_NONE;
    x->waiter = NULL;
    if (kind == W_HEAD) x->head_delivered = 1;
    x_release(x);
    if (kind == W_DATA || kind == W_SPACE) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return x_push_result(L, x, kind);
}

/* The response (head only for W_HEAD) or nil, err. */
static int x_push_result(lua_State *L, xfer *x, int kind)
{
    int failed = x->state == X_DONE && x->result != CURLE_OK;
    if (failed && !(kind == W_HEAD && x->head_done && x->status >= 200)) {
        return x_push_error(L, x);
    }
    if (x->state == X_CLOSED) {
        lua_pushnil(L);
        lua_pushliteral(L, "Cancelled");
        return 2;
    }
    x_push_head(L, x);
    if (kind == W_RESPONSE) {
        if (x->sink_used) {
            lua_pushinteger(L, (lua_Integer)x->sink_bytes);
            lua_setfield(L, -2, "body_size");
        } else {
            lua_pushlstring(L, x->body.p ? x->body.p + x->body.off : "", aio_buf_avail(&x->body));
            lua_setfield(L, -2, "body");
            aio_buf_free(&x->body);
        }
    }
    return 1;
}

static void x_drop(aio_rt *rt, aio_op *op)
{
    (void)rt;
    xfer *x = (xfer *)op;
    x->pending = 0;
    x->wait = W_NONE;
    x->waiter = NULL;
    x_release(x);
}

/* ------------------------------------------------------------------ */
/* pools                                                                */

static double pool_timeout(aio_source *src)
{
    http_pool *p = (http_pool *)((char *)src - offsetof(http_pool, src));
    return cev_timeout(&p->m);
}

static void pool_mirror(aio_source *src)
{
    http_pool *p = (http_pool *)((char *)src - offsetof(http_pool, src));
    cev_mirror_all(&p->m);
}

static void pool_close(http_pool *p)
{
    if (p->closed) return;
    pool_fail_all(p, "Cancelled", "connection pool closed");
    p->closed = 1;
    cev_cleanup(&p->m);
    aio_rt_remove_source(p->rt, &p->src);
    while (p->nfree > 0) curl_easy_cleanup(p->free_easy[--p->nfree]);
}

static http_pool *pool_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, POOL_MT);
}

static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer dflt)
{
    lua_Integer v = dflt;
    int ty = lua_getfield(L, t, k);
    if (ty != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (ty != LUA_TNUMBER || !ok || v < 0) luaL_error(L, "option '%s' must be a non-negative integer", k);
    }
    lua_pop(L, 1);
    return v;
}

/** http_pool{max_total = 0, max_per_host = 0, max_cached} -> pool
 * (0 means no limit; requests beyond a limit wait in curl's queue). */
static int pool_new(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    if (lua_isnoneornil(L, 1)) { lua_settop(L, 0); lua_newtable(L); }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer total = opt_int(L, 1, "max_total", 0);
    lua_Integer host = opt_int(L, 1, "max_per_host", 0);
    lua_Integer cached = opt_int(L, 1, "max_cached", total);
    http_pool *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    p->closed = 1; /* until initialised, so __gc does nothing */
    luaL_setmetatable(L, POOL_MT);
    if (cev_init(&p->m, rt->loop, &rt->mirror_fd, pool_done, pool_broken, p) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "curl_multi_init failed");
        return 2;
    }
    p->closed = 0;
    p->rt = rt;
    if (total > 0) curl_multi_setopt(p->m.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)total);
    if (host > 0) curl_multi_setopt(p->m.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)host);
    if (cached > 0) curl_multi_setopt(p->m.multi, CURLMOPT_MAXCONNECTS, (long)cached);
    p->src.timeout = pool_timeout;
    p->src.mirror = pool_mirror;
    aio_rt_add_source(rt, &p->src);
    return 1;
}

static int pool_close_l(lua_State *L)
{
    http_pool *p = pool_check(L, 1);
    pool_close(p);
    return 0;
}

static int pool_stats(lua_State *L)
{
    http_pool *p = pool_check(L, 1);
    int n = 0;
    for (xfer *x = p->running; x; x = x->next) n++;
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "in_flight");
    lua_pushboolean(L, p->closed);
    lua_setfield(L, -2, "closed");
    return 1;
}

static http_pool *default_pool(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_POOL_KEY) == LUA_TUSERDATA) {
        http_pool *p = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!p->closed) return p;
    } else {
        lua_pop(L, 1);
    }
    int top = lua_gettop(L);
    lua_pushcfunction(L, pool_new);
    lua_createtable(L, 0, 1);
    /* Enough for thousands of concurrent requests to a few hosts without
     * running out of descriptors; more requests queue inside curl. */
    lua_pushinteger(L, 512);
    lua_setfield(L, -2, "max_total");
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2)) luaL_error(L, "aio_aws: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    http_pool *p = lua_touserdata(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_POOL_KEY);
    lua_settop(L, top);
    return p;
}

/* ------------------------------------------------------------------ */
/* requests                                                             */

static xfer *req_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, REQ_MT);
}

static void x_close(xfer *x)
{
    if (x->state == X_RUNNING) {
        cev_remove(&x->pool->m, x->easy);
        /* a half-done transfer's easy handle is not reused */
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    if (x->state != X_CLOSED) {
        if (x->state == X_NEW && x->easy) { curl_easy_cleanup(x->easy); x->easy = NULL; }
        x_finish(x, X_CLOSED);
    }
    aio_buf_free(&x->body);
    aio_buf_free(&x->head);
    aio_buf_free(&x->fbuf);
}

/* The request's uservalue 3 keeps its pool alive, and a closed pool has
 * already finished its transfers, so x_close is right in every state. */
static int req_gc(lua_State *L)
{
    x_close(req_check(L, 1));
    return 0;
}

/** req:close(): stop the transfer (the connection is not reused); a task
 * waiting on it gets (nil, "Cancelled"). */
static int req_close(lua_State *L)
{
    xfer *x = req_check(L, 1);
    if (x->waiter) aio_task_detach(L, x->waiter, &x->op);
    x->pending = 0;
    x->wait = W_NONE;
    x->waiter = NULL;
    if (x->state == X_NEW || x->state == X_RUNNING || x->state == X_DONE)
        x_close(x);
    x_release(x);
    return 0;
}

static int x_fail_now(lua_State *L, const char *code, const char *msg)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "retryable");
    return 2;
}

static const char *opt_str(lua_State *L, int t, const char *k, size_t *len)
{
    const char *s = NULL;
    int ty = lua_getfield(L, t, k);
    if (ty != LUA_TNIL) {
        if (ty != LUA_TSTRING) luaL_error(L, "option '%s' must be a string", k);
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1); /* safe: the string is still referenced by the options table */
    return s;
}

static double opt_secs(lua_State *L, int t, const char *k)
{
    double v = -1;
    int ty = lua_getfield(L, t, k);
    if (ty != LUA_TNIL) {
        v = lua_tonumber(L, -1);
        if (ty != LUA_TNUMBER || v < 0 || v != v) luaL_error(L, "option '%s' must be a number of seconds >= 0", k);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int t, const char *k, int dflt)
{
    int v = dflt;
    int ty = lua_getfield(L, t, k);
    if (ty != LUA_TNIL) {
        if (ty != LUA_TBOOLEAN) luaL_error(L, "option '%s' must be a boolean", k);
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* Header names: RFC 9110 5.1 tokens; values: no CR/LF (header injection). */
/* RFC 9110 5.6.2 token characters, as a table: checked for every header
 * name of every request. */
static unsigned char tchar[256];

static void init_tchar(void)
{
    if (tchar['a']) return;
    for (int c = 33; c < 127; c++)
        tchar[c] = !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static int header_ok(const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (nlen == 0) return 0;
    for (size_t i = 0; i < nlen; i++)
        if (!tchar[(unsigned char)name[i]]) return 0;
    /* no CR, LF or NUL in values (header injection) */
    for (size_t i = 0; i < vlen; i++) {
        char c = val[i];
        if (c == '\r' || c == '\n' || c == '\0') return 0;
    }
    return 1;
}

static void add_header(lua_State *L, xfer *x, const char *name, size_t nlen,
                       const char *val, size_t vlen, int *seen)
{
    if (!header_ok(name, nlen, val, vlen))
        luaL_error(L, "invalid header name or value for '%s'", name);
    /* "Name: value" in a stack buffer (a heap one when long): no Lua
     * string per header. "Name;" sends an empty value; "Name:" would
     * remove the header. */
    char stack[1024], *line = stack;
    size_t len = nlen + (vlen ? 2 + vlen : 1);
    if (len + 1 > sizeof stack) {
        line = malloc(len + 1);
        if (!line) luaL_error(L, "out of memory");
    }
    memcpy(line, name, nlen);
    if (vlen == 0) {
        line[nlen] = ';';
    } else {
        line[nlen] = ':';
        line[nlen + 1] = ' ';
        memcpy(line + nlen + 2, val, vlen);
    }
    line[len] = '\0';
    struct curl_slist *n = curl_slist_append(x->hdrs, line);
    if (line != stack) free(line);
    if (!n) luaL_error(L, "out of memory");
    x->hdrs = n;
    if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0) seen[0] = 1;
    if (nlen == 6 && strncasecmp(name, "accept", 6) == 0) seen[1] = 1;
    if (nlen == 6 && strncasecmp(name, "expect", 6) == 0) seen[2] = 1;
}

/* headers: map name -> string (or list of strings), or list of {name, value} */
static void x_headers(lua_State *L, xfer *x, int t)
{
    int seen[3] = {0, 0, 0};
    if (lua_getfield(L, t, "headers") != LUA_TNIL) {
        int h = lua_gettop(L);
        luaL_checktype(L, h, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, h)) {
            size_t nl, vl;
            if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TTABLE) {
                lua_rawgeti(L, -1, 1);
                lua_rawgeti(L, -2, 2);
                if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                    luaL_error(L, "headers list entries must be {name, value}");
                const char *n = lua_tolstring(L, -2, &nl), *v = lua_tolstring(L, -1, &vl);
                add_header(L, x, n, nl, v, vl, seen);
                lua_pop(L, 2);
            } else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
                const char *n = lua_tolstring(L, -2, &nl);
                for (int i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
                    if (!lua_isstring(L, -1)) luaL_error(L, "header '%s' values must be strings", n);
                    const char *v = lua_tolstring(L, -1, &vl);
                    add_header(L, x, n, nl, v, vl, seen);
                    lua_pop(L, 1);
                }
                lua_pop(L, 1);
            } else if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
                const char *n = lua_tolstring(L, -2, &nl);
                lua_pushvalue(L, -1); /* tolstring on a number would confuse lua_next */
                const char *v = lua_tolstring(L, -1, &vl);
                add_header(L, x, n, nl, v, vl, seen);
                lua_pop(L, 1);
            } else {
                luaL_error(L, "headers must map names to strings");
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    /* Drop what libcurl would add on its own: a form content type for
     * POSTFIELDS, "Accept: * / *", and "Expect: 100-continue" (an extra
     * round trip; botocore does not send it either). */
    if (!seen[0]) x->hdrs = curl_slist_append(x->hdrs, "Content-Type:");
    if (!seen[1]) x->hdrs = curl_slist_append(x->hdrs, "Accept:");
    if (!seen[2]) x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    if (!x->hdrs) luaL_error(L, "out of memory");
}

/* resolve: pin host names to addresses for this transfer (CURLOPT_RESOLVE),
 * e.g. to send an AWS host name to a loopback test server. The entries
 * also land in the pool's DNS cache, as with curl --resolve. */
static void x_resolve(lua_State *L, xfer *x, int t)
{
    if (lua_getfield(L, t, "resolve") != LUA_TNIL) {
        luaL_argexpected(L, lua_istable(L, -1), t, "'resolve' as a list of \"host:port:address\"");
        for (int i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
            size_t n;
            const char *e = lua_tolstring(L, -1, &n);
            if (lua_type(L, -1) != LUA_TSTRING || n == 0 || strlen(e) != n || !strchr(e, ':'))
                luaL_error(L, "option 'resolve' entries must be \"host:port:address\" strings");
            struct curl_slist *r = curl_slist_append(x->resolve, e);
            if (!r) luaL_error(L, "out of memory");
            x->resolve = r;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static CURL *pool_get_easy(http_pool *p)
{
    if (p->nfree > 0) return p->free_easy[--p->nfree];
    return curl_easy_init();
}

/** http_request(task, opts) -> req | nil, err. opts: method, url, headers,
 * body | body_file [body_offset, body_length], sink_file, stream,
 * stream_buffer, timeout, connect_timeout, low_speed_limit,
 * low_speed_time, verify, cafile, capath, proxy, pool, http_version,
 * resolve (list of "host:port:address", curl's --resolve). */
static int http_request(lua_State *L)
{
    aio_task *t = aio_task_running(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    aio_rt *rt = t->rt;
    size_t urllen = 0, bodylen = 0;
    const char *url = opt_str(L, 2, "url", &urllen);
    if (!url) luaL_error(L, "option 'url' is required");
    const char *method = opt_str(L, 2, "method", NULL);
    if (!method) method = "GET";
    const char *body = opt_str(L, 2, "body", &bodylen);
    const char *body_file = opt_str(L, 2, "body_file", NULL);
    const char *sink_file = opt_str(L, 2, "sink_file", NULL);
    const char *cafile = opt_str(L, 2, "cafile", NULL);
    const char *capath = opt_str(L, 2, "capath", NULL);
    const char *proxy = opt_str(L, 2, "proxy", NULL);
    const char *httpv = opt_str(L, 2, "http_version", NULL);
    if (body && body_file) luaL_error(L, "options 'body' and 'body_file' are exclusive");
    int feed = lua_getfield(L, 2, "body_source") != LUA_TNIL;
    if (feed && lua_type(L, -1) != LUA_TFUNCTION) luaL_error(L, "option 'body_source' must be a function");
    lua_pop(L, 1);
    if (feed && (body || body_file))
        luaL_error(L, "option 'body_source' excludes 'body' and 'body_file'");
    {
        /* Check the URL now (RFC 3986 syntax as libcurl parses it, http or
         * https only) so a bad one fails at once, before any I/O. */
        CURLU *u = curl_url();
        char *scheme = NULL;
        CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
        if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        int bad_scheme = uc == CURLUE_OK && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0;
        char msg[300];
        if (uc != CURLUE_OK)
            snprintf(msg, sizeof msg, "invalid URL: %s", curl_url_strerror(uc));
        else
            snprintf(msg, sizeof msg, "unsupported URL scheme '%.40s' (http and https only)", scheme);
        curl_free(scheme);
        curl_url_cleanup(u);
        if (uc != CURLUE_OK || bad_scheme) return x_fail_now(L, "InvalidURL", msg);
    }
    for (const char *c = method; *c; c++)
        if (!isupper((unsigned char)*c) && *c != '-' && *c != '_')
            luaL_error(L, "option 'method' must be an upper-case token");
    if (httpv && strcmp(httpv, "1.1") && strcmp(httpv, "1.0") && strcmp(httpv, "2"))
        luaL_error(L, "option 'http_version' must be \"1.0\", \"1.1\" or \"2\"");
    int stream = opt_bool(L, 2, "stream", 0);
    int verify = opt_bool(L, 2, "verify", 1);
    if (stream && sink_file) luaL_error(L, "options 'stream' and 'sink_file' are exclusive");
    double timeout = opt_secs(L, 2, "timeout");
    double ctimeout = opt_secs(L, 2, "connect_timeout");
    double ls_time = opt_secs(L, 2, "low_speed_time");
    double rtimeout = opt_secs(L, 2, "read_timeout");
    lua_Integer ls_limit = opt_int(L, 2, "low_speed_limit", 0);
    lua_Integer off = opt_int(L, 2, "body_offset", 0);
    lua_Integer blen = opt_int(L, 2, "body_length", -1);
    int has_blen = blen >= 0;
    lua_Integer hw = opt_int(L, 2, "stream_buffer", 1 << 20);
    if (hw < 1) hw = 1;
    lua_Integer fhw = opt_int(L, 2, "feed_buffer", 1 << 20);
    if (fhw < 1) fhw = 1;
    http_pool *pool;
    lua_settop(L, 2);
    if (lua_getfield(L, 2, "pool") != LUA_TNIL) {
        pool = pool_check(L, 3);
    } else {
        lua_pop(L, 1);
        pool = default_pool(L);
        lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_POOL_KEY);
    }                                                  /* [task, opts, pool] */
    if (pool->closed) return x_fail_now(L, "Cancelled", "connection pool closed");

    /* The userdata owns every C resource from here on, so a raise below
     * frees them through __gc (lua-cjson's rule on heap memory). */
    /* uservalues: 1 body string, 2 waiting task, 3 pool (outlives us) */
    xfer *x = lua_newuserdatauv(L, sizeof *x, 3);      /* [task, opts, pool, x] */
    memset(x, 0, sizeof *x);
    x->ref = LUA_NOREF;
    x->state = X_NEW;
    x->pool = pool;
    x->rt = rt;
    luaL_setmetatable(L, REQ_MT);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, 3);
    x->op.deliver = x_deliver;
    x->op.drop = x_drop;
    x->stream = stream;
    x->high_water = (size_t)hw;
    x->easy = pool_get_easy(pool);
    if (!x->easy) luaL_error(L, "curl_easy_init failed");
    x_headers(L, x, 2);
    x_resolve(L, x, 2);

    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, x_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, x_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    if (x->resolve) curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
    /* HTTP/1.1 unless asked: S3 does not speak HTTP/2 (botocore uses 1.1). */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     !httpv || !strcmp(httpv, "1.1") ? CURL_HTTP_VERSION_1_1
                     : !strcmp(httpv, "1.0") ? CURL_HTTP_VERSION_1_0 : CURL_HTTP_VERSION_2TLS);
    if (timeout >= 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000 + 0.5));
    if (ctimeout >= 0) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(ctimeout * 1000 + 0.5));
    if (ls_limit > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)ls_limit);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, ls_time > 0 ? (long)(ls_time + 0.5) : 30L);
    }
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (cafile) curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
    if (capath) curl_easy_setopt(e, CURLOPT_CAPATH, capath);
    /* Without `proxy`, libcurl reads http_proxy/https_proxy/no_proxy. */
    if (proxy) curl_easy_setopt(e, CURLOPT_PROXY, proxy);

    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 || body || body_file || feed) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body) {
        /* No copy: the string is pinned in the userdata's uservalue. */
        lua_getfield(L, 2, "body");
        lua_setiuservalue(L, -2, 1);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    } else if (body_file) {
        struct stat st;
        x->src = fopen(body_file, "rb");
        if (!x->src || fstat(fileno(x->src), &st) != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "cannot open body file %s: %s", body_file, strerror(errno));
            return x_fail_now(L, "BodyReadError", msg);
        }
        curl_off_t size = (curl_off_t)st.st_size;
        if (off > size) return x_fail_now(L, "BodyReadError", "body_offset is past the end of the file");
        x->src_start = off;
        x->src_len = has_blen ? (curl_off_t)blen : size - off;
        if (x->src_start + x->src_len > size)
            return x_fail_now(L, "BodyReadError", "body_offset + body_length is past the end of the file");
        if (off > 0 && fseeko(x->src, (off_t)off, SEEK_SET) != 0)
            return x_fail_now(L, "BodyReadError", "cannot seek in the body file");
        x->src_left = x->src_len;
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, x->src_len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, x_read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, x_seek_cb);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
    } else if (feed) {
        /* Without a length, HTTP/1.1 chunked transfer coding. No seek
         * function: what was sent is gone, so a resend fails with
         * CURLE_SEND_FAIL_REWIND and the caller retries from the start. */
        x->feed = 1;
        x->feed_high = (size_t)fhw;
        x->feed_len = has_blen ? (curl_off_t)blen : -1;
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, has_blen ? (curl_off_t)blen : (curl_off_t)-1);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, x_feed_read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
    }
    if (sink_file) {
        x->sink = fopen(sink_file, "wb");
        if (!x->sink) {
            char msg[512];
            snprintf(msg, sizeof msg, "cannot open sink file %s: %s", sink_file, strerror(errno));
            return x_fail_now(L, "BodyWriteError", msg);
        }
    }
    if (rtimeout > 0) { /* options are set before the handle is added */
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, x_prereq_cb);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    }
    CURLMcode rc = cev_add(&pool->m, e);
    if (rc != CURLM_OK)
        return x_fail_now(L, "ConnectionError", curl_multi_strerror(rc));
    x->state = X_RUNNING;
    if (rtimeout > 0) {
        /* Until connected the period also covers connecting (libcurl has
         * its own connect timeout); x_prereq_cb then restarts it. */
        x->idle_secs = rtimeout;
        ev_timer_init(&x->idle, x_idle_cb, rtimeout + (ctimeout > 0 ? ctimeout : 0), rtimeout);
        x->idle.data = x;
        ev_timer_start(rt->loop, &x->idle);
    }
    x->next = pool->running;
    if (pool->running) pool->running->prev = x;
    pool->running = x;
    rt->in_flight++;
    if (!feed) { /* in feed mode the task feeds first, then waits */
        x->waiter = t;
        x->wait = stream ? W_HEAD : W_RESPONSE;
        lua_pushvalue(L, 1);
        lua_setiuservalue(L, -2, 2); /* keep the waiting task's userdata alive */
    }
    lua_pushvalue(L, -1);
    x->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* Unpause an upload paused for want of fed data. Not inside a libcurl
 * callback (allowed there: curl_easy_pause); a download paused for
 * back-pressure stays paused. */
static void x_resume_upload(xfer *x)
{
    if (x->src_paused && x->state == X_RUNNING) {
        x->src_paused = 0;
        x_active(x);
        curl_easy_pause(x->easy, x->paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
    }
}

/** req:take(max) -> string | false | nil | nil, err (stream mode). */
static int req_take(lua_State *L)
{
    xfer *x = req_check(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    size_t avail = aio_buf_avail(&x->body);
    if (avail > 0) {
        size_t n = (max > 0 && (size_t)max < avail) ? (size_t)max : avail;
        lua_pushlstring(L, x->body.p + x->body.off, n);
        x->body.off += n;
        /* Resume a paused transfer once half the buffer is free. Not inside
         * a libcurl callback here, so curl_easy_pause is allowed; it may
         * call the write callback at once, which only buffers. */
        if (x->paused && x->state == X_RUNNING && aio_buf_avail(&x->body) <= x->high_water / 2) {
            x->paused = 0;
            x_active(x);
            curl_easy_pause(x->easy, x->src_paused ? CURLPAUSE_SEND : CURLPAUSE_CONT);
        }
        return 1;
    }
    if (x->state == X_RUNNING) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (x->state == X_CLOSED) {
        lua_pushnil(L);
        lua_pushliteral(L, "Cancelled");
        return 2;
    }
    if (x->result != CURLE_OK) return x_push_error(L, x);
    lua_pushnil(L);
    return 1;
}

/** req:wait(task [, what]) -> boolean: true if the running task must now
 * yield until what it waits for happens; false if it already has:
 * "data" (default): take() can go on; "space": feed() can go on;
 * "response": result() has the response (the head in stream mode). */
static int req_wait(lua_State *L)
{
    static const char *const whats[] = {"data", "space", "response", NULL};
    xfer *x = req_check(L, 1);
    aio_task *t = aio_task_running(L, 2);
    int what = luaL_checkoption(L, 3, "data", whats);
    int kind = what == 0 ? W_DATA : what == 1 ? W_SPACE : x->stream ? W_HEAD : W_RESPONSE;
    int ready = x->state != X_RUNNING ||
                (kind == W_DATA && aio_buf_avail(&x->body) > 0) ||
                (kind == W_SPACE && aio_buf_avail(&x->fbuf) < x->feed_high) ||
                (kind == W_HEAD && x->head_done);
    if (ready) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (x->waiter) luaL_error(L, "another task is already waiting on this request");
    x->waiter = t;
    x->wait = kind;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 2);
    lua_pushboolean(L, 1);
    return 1;
}

/* End a running transfer from Lua (not inside a libcurl callback) with a
 * body source failure. */
static void x_abort_body(xfer *x, const char *why)
{
    cev_remove(&x->pool->m, x->easy);
    curl_easy_cleanup(x->easy); /* part of a request went out: not reusable */
    x->easy = NULL;
    x->fail_code = "BodyReadError";
    x->result = CURLE_ABORTED_BY_CALLBACK;
    snprintf(x->errbuf, sizeof x->errbuf, "request body source failed: %s", why);
    x_finish(x, X_DONE);
    x_notify(x);
    x_release(x);
}

/** req:feed(s) -> true (taken) | false (full: wait for "space") | nil
 * (the transfer is over: stop feeding). Feed mode only. */
static int req_feed(lua_State *L)
{
    xfer *x = req_check(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (!x->feed) luaL_error(L, "req:feed: the request is not in feed mode (body_source)");
    if (x->feed_eof) luaL_error(L, "req:feed: called after feed_end");
    if (x->state != X_RUNNING) {
        lua_pushnil(L);
        return 1;
    }
    if (aio_buf_avail(&x->fbuf) >= x->feed_high) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (x->feed_len >= 0 && x->fed + (curl_off_t)n > x->feed_len) {
        /* more than the Content-Length sent: the source changed under us */
        char msg[128];
        snprintf(msg, sizeof msg, "more than the declared %lld bytes", (long long)x->feed_len);
        x_abort_body(x, msg);
        lua_pushnil(L);
        return 1;
    }
    if (n > 0) {
        if (aio_buf_add(&x->fbuf, s, n) != 0) luaL_error(L, "out of memory buffering the request body");
        x->fed += (curl_off_t)n;
        x_resume_upload(x);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/** req:feed_end([errmsg]): the body is complete; with errmsg the source
 * failed and the transfer ends with BodyReadError. */
static int req_feed_end(lua_State *L)
{
    xfer *x = req_check(L, 1);
    const char *why = luaL_optstring(L, 2, NULL);
    if (!x->feed) luaL_error(L, "req:feed_end: the request is not in feed mode (body_source)");
    x->feed_eof = 1;
    if (x->state != X_RUNNING) return 0;
    if (why) {
        x_abort_body(x, why);
        return 0;
    }
    if (x->feed_len >= 0 && x->fed < x->feed_len) {
        /* Ending early would leave the server waiting for the rest. */
        char msg[160];
        snprintf(msg, sizeof msg, "ended after %lld of the declared %lld bytes",
                 (long long)x->fed, (long long)x->feed_len);
        x_abort_body(x, msg);
        return 0;
    }
    x_resume_upload(x);
    return 0;
}

/** req:result() -> response | nil, err: what a waiter for "response"
 * would receive, once req:wait(task, "response") returned false. */
static int req_result(lua_State *L)
{
    xfer *x = req_check(L, 1);
    int kind = x->stream ? W_HEAD : W_RESPONSE;
    if (x->state == X_RUNNING && !(kind == W_HEAD && x->head_done))
        luaL_error(L, "req:result: the response has not arrived (wait for it)");
    if (x->waiter) luaL_error(L, "req:result: a task is waiting on this request");
    if (kind == W_HEAD) x->head_delivered = 1;
    int n = x_push_result(L, x, kind);
    x_release(x);
    return n;
}

static int req_tostring(lua_State *L)
{
    xfer *x = req_check(L, 1);
    static const char *const st[] = {"new", "running", "done", "closed"};
    lua_pushfstring(L, "aio_aws.http_request (%s)", st[x->state]);
    return 1;
}

/** walltime() -> epoch seconds with sub-second precision (libev's
 * ev_time), for log timestamps and request durations. */
static int http_walltime(lua_State *L)
{
    lua_pushnumber(L, ev_time());
    return 1;
}

void aio_http_open(lua_State *L)
{
    init_tchar();
    static const luaL_Reg funcs[] = {
        {"http_pool", pool_new},
        {"http_request", http_request},
        {"walltime", http_walltime},
        {NULL, NULL}};
    static const luaL_Reg pool_methods[] = {
        {"close", pool_close_l},
        {"stats", pool_stats},
        {NULL, NULL}};
    static const luaL_Reg req_methods[] = {
        {"take", req_take},
        {"wait", req_wait},
        {"feed", req_feed},
        {"feed_end", req_feed_end},
        {"result", req_result},
        {"close", req_close},
        {"cancel", req_close}, /* the waitable interface of aio_aws.async */
        {NULL, NULL}};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (luaL_newmetatable(L, POOL_MT)) {
        luaL_newlib(L, pool_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, pool_close_l);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, pool_close_l);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, REQ_MT)) {
        luaL_newlib(L, req_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, req_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, req_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, req_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
}
