/* buf.h: the growable byte buffer the core's parts share (response bodies
 * and headers in http.c, connection input and output in http_server.c,
 * process output in process.c). Header-only; no Lua. */
#ifndef AIO_BUF_H
#define AIO_BUF_H

#include <stdlib.h>
#include <string.h>

/* bytes [off, len) are unread; a consumer advances off */
typedef struct aio_buf {
    char *p;
    size_t len, off, cap;
} aio_buf;

/* Appends n bytes (compacting consumed bytes before growing). 0, or -1
 * when out of memory (the buffer is unchanged). */
static inline int aio_buf_add(aio_buf *b, const char *s, size_t n)
{
    if (n == 0) return 0;
    if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->off > 0) {
            memmove(b->p, b->p + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 16384;
            while (cap < b->len + n) cap *= 2;
            char *np = realloc(b->p, cap);
            if (!np) return -1;
            b->p = np;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static inline size_t aio_buf_avail(const aio_buf *b) { return b->len - b->off; }

static inline void aio_buf_free(aio_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

#endif
