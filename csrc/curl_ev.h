/* curl_ev: libcurl's multi_socket interface driven by a libev loop.
 *
 * This is the only place where libcurl meets libev, and it knows nothing of
 * Lua (STYLE.md section 4; the shape follows curl's evhiperfifo.c with the
 * corrections of ephiperfifo.c / multi-uv.c and hiredis' libev adapter).
 * The owner (http.c) is told about finished transfers through `done`, which
 * is called after each drain of curl_multi_info_read and must not call back
 * into libcurl's socket API nor into Lua. */
#ifndef AIO_CURL_EV_H
#define AIO_CURL_EV_H

#include <curl/curl.h>
#include <ev.h>

typedef struct cev_multi cev_multi;
typedef struct cev_sock cev_sock;

/* Called once per finished transfer, after the handle has been removed
 * from the multi handle. */
typedef void (*cev_done_fn)(cev_multi *m, CURL *easy, CURLcode result);
/* Called once when the multi handle fails (any CURLMcode but
 * CURLM_BAD_SOCKET): every transfer is in an unknown state (curl docs for
 * curl_multi_socket_action) and the owner must fail them all. */
typedef void (*cev_broken_fn)(cev_multi *m, const char *why);

struct cev_sock {
    curl_socket_t fd;
    ev_io io;
    int events;              /* EV_READ | EV_WRITE currently wanted */
    cev_multi *m;
    cev_sock *prev, *next;   /* all sockets of this multi, for the mirror */
};

struct cev_multi {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;          /* exactly one timer, driven by curl */
    int running;             /* transfers curl still counts as running */
    int broken;              /* a CURLMcode made the handle unusable */
    int closing;             /* inside curl_multi_cleanup */
    int *mirror_fd;          /* epoll fd mirroring our sockets, or -1 */
    cev_sock *socks;
    cev_done_fn done;
    cev_broken_fn on_broken;
    void *owner;
};

/* Returns 0, or -1 if curl_multi_init failed. */
int cev_init(cev_multi *m, struct ev_loop *loop, int *mirror_fd,
             cev_done_fn done, cev_broken_fn on_broken, void *owner);
/* Starts a transfer; returns a CURLMcode. */
CURLMcode cev_add(cev_multi *m, CURL *easy);
/* Stops a transfer that has not finished. Not from inside a curl callback. */
void cev_remove(cev_multi *m, CURL *easy);
/* Adds every live socket of `m` to the mirror epoll fd (just created). */
void cev_mirror_all(cev_multi *m);
/* Seconds until curl's timer fires, or -1 when it is not armed. */
double cev_timeout(cev_multi *m);
/* The single close path: curl_multi_cleanup (which may still call the
 * socket callback, so the loop and records stay valid until after it),
 * then the timer and remaining socket records. Idempotent. Transfers must
 * have been removed by the owner first. */
void cev_cleanup(cev_multi *m);

#endif
