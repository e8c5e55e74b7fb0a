/* sigv4.c: AWS Signature Version 4 in C: canonical request, string to
 * sign, signing-key cache, header signing, presigning and the aws-chunked
 * streaming signatures of S3.
 *
 * Lua API (module aio_aws.core; lua/aio_aws/sigv4.lua documents it):
 *   sigv4_sign(request, credentials, options) -> result, debug
 *   sigv4_chunker(credentials, options, seed_signature) -> "aio_aws.sigv4_chunker"
 *     c:sign_chunk(data) -> signature, string_to_sign
 *     c:frame(data)      -> "hex(size);chunk-signature=SIG\r\nDATA\r\n", signature
 *     c:signature()      -> the latest signature (the seed before any chunk)
 *     c:close()          (also __gc and __close)
 *
 * The steps follow the AWS pages cited at each function:
 *   [CSR]  https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 *   [S3H]  https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 *   [S3Q]  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
 *   [S3S]  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 * and aws-c-auth's canonicalisation choices (stable header sort, per
 * service path normalisation and double encoding).
 *
 * Memory: every scratch byte of one signing comes from a small arena that
 * starts in the C stack frame and grows into Lua userdata anchored in a
 * table on the stack, so a Lua error (bad input, out of memory) at any
 * point leaks nothing. Output strings are built in luaL_Buffer. The only
 * malloc'd object is the per-state HMAC context, owned by a userdata with
 * __gc.
 *
 * Secrets: the secret key is read from the caller's string and copied only
 * into the "AWS4" || secret HMAC key on the C stack, which is wiped right
 * after the first HMAC. Signing keys live in the per-state cache, indexed
 * by a SHA-256 of (secret, date, region, service), and are wiped on
 * eviction and when the state is collected. No error message quotes a
 * credential. */
#include "aio.h"
#include "crypto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define SIGV4_STATE_MT "aio_aws.sigv4_state"
#define SIGV4_CHUNKER_MT "aio_aws.sigv4_chunker"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_CHUNK_ALGORITHM "AWS4-HMAC-SHA256-PAYLOAD"
#define SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_TERMINATOR "aws4_request"

#define SIGV4_CACHE_SIZE 16
#define SIGV4_MAX_SECRET 1024   /* AWS secrets are 40 bytes; this bounds a stack buffer */
#define SIGV4_MAX_PART 64       /* region, service */
#define SIGV4_MAX_ACCESS_KEY 128
#define SIGV4_MAX_SCOPE (8 + 1 + SIGV4_MAX_PART + 1 + SIGV4_MAX_PART + 1 + 12)
#define SIGV4_MAX_EXPIRES 604800 /* seven days: [S3Q] "X-Amz-Expires" maximum */
#define SIGV4_ARENA_STACK 6144

/* ------------------------------------------------------------------ */
/* Per-Lua-state context: the HMAC context and the signing-key cache. */

typedef struct {
    unsigned char id[AIO_SHA256_LEN];  /* SHA-256(secret, date, region, service) */
    unsigned char key[AIO_SHA256_LEN]; /* kSigning */
    unsigned long stamp;               /* last use, for LRU eviction */
    int used;
} sigv4_cache_entry;

typedef struct {
    EVP_MAC_CTX *mac;    /* HMAC-SHA256; re-keyed for every use */
    EVP_MD *sha256;      /* fetched once per state */
    EVP_MD_CTX *mdctx;   /* reused for every SHA-256 */
    unsigned long clock;
    sigv4_cache_entry cache[SIGV4_CACHE_SIZE];
} sigv4_state;

static int sigv4_state_gc(lua_State *L)
{
    sigv4_state *st = (sigv4_state *)luaL_checkudata(L, 1, SIGV4_STATE_MT);
    OPENSSL_cleanse(st->cache, sizeof st->cache);
    if (st->mac != NULL) {
        EVP_MAC_CTX_free(st->mac); /* wipes the keyed HMAC state */
        st->mac = NULL;
    }
    EVP_MD_CTX_free(st->mdctx); /* wipes the digest state (secret-bearing for cache ids) */
    st->mdctx = NULL;
    EVP_MD_free(st->sha256);
    st->sha256 = NULL;
    return 0;
}

static sigv4_state *sigv4_state_get(lua_State *L)
{
    sigv4_state *st = (sigv4_state *)lua_touserdata(L, lua_upvalueindex(1));
    if (st == NULL || st->mac == NULL)
        luaL_error(L, "aio_aws.sigv4: signer state is closed");
    return st;
}

/* SHA-256 on the state's reusable context (EVP_Digest would allocate a
 * context per call). */
static int sigv4_sha256(sigv4_state *st, const void *p, size_t n, unsigned char out[AIO_SHA256_LEN])
{
    return EVP_DigestInit_ex2(st->mdctx, st->sha256, NULL) == 1
        && EVP_DigestUpdate(st->mdctx, p, n) == 1
        && EVP_DigestFinal_ex(st->mdctx, out, NULL) == 1;
}

/* HMAC-SHA256 (RFC 2104) on the state's reusable context. */
static int sigv4_hmac(sigv4_state *st, const void *key, size_t klen,
                      const void *msg, size_t mlen, unsigned char out[AIO_SHA256_LEN])
{
    size_t outl = 0;
    return EVP_MAC_init(st->mac, (const unsigned char *)key, klen, NULL) == 1
        && EVP_MAC_update(st->mac, (const unsigned char *)msg, mlen) == 1
        && EVP_MAC_final(st->mac, out, &outl, AIO_SHA256_LEN) == 1
        && outl == AIO_SHA256_LEN;
}

/* [CSR] "Calculate the signature", step 1, derive the signing key:
 *   kDate = HMAC("AWS4" + secret, Date); kRegion = HMAC(kDate, Region);
 *   kService = HMAC(kRegion, Service); kSigning = HMAC(kService, "aws4_request")
 * The key only changes with the date, so it is cached. The cache is
 * indexed by a hash of its inputs, never by the secret itself. Returns 0
 * (with everything wiped) if OpenSSL fails. */
static int sigv4_signing_key(sigv4_state *st, const char *secret, size_t slen,
                             const char *date8, const char *region, size_t rlen,
                             const char *service, size_t svlen,
                             unsigned char out[AIO_SHA256_LEN])
{
    unsigned char buf[4 + SIGV4_MAX_SECRET + 8 + 2 + 2 * SIGV4_MAX_PART];
    unsigned char id[AIO_SHA256_LEN];
    size_t n = 0;
    int ok;

    /* Cache id: lengths make the encoding unambiguous. */
    buf[n++] = (unsigned char)(slen >> 8);
    buf[n++] = (unsigned char)slen;
    memcpy(buf + n, secret, slen), n += slen;
    memcpy(buf + n, date8, 8), n += 8;
    buf[n++] = (unsigned char)rlen;
    memcpy(buf + n, region, rlen), n += rlen;
    memcpy(buf + n, service, svlen), n += svlen;
    ok = sigv4_sha256(st, buf, n, id);
    OPENSSL_cleanse(buf, n);
    if (!ok)
        return 0;

    st->clock++;
    sigv4_cache_entry *victim = &st->cache[0];
    for (int i = 0; i < SIGV4_CACHE_SIZE; i++) {
        sigv4_cache_entry *e = &st->cache[i];
        if (e->used && memcmp(e->id, id, sizeof id) == 0) {
            e->stamp = st->clock;
            memcpy(out, e->key, AIO_SHA256_LEN);
            return 1;
        }
        if (!e->used || (victim->used && e->stamp < victim->stamp))
            victim = e;
    }

    memcpy(buf, "AWS4", 4);
    memcpy(buf + 4, secret, slen);
    /* Each HMAC consumes its key at EVP_MAC_init, so out may be both the
     * key and the result of the next step. */
    ok = sigv4_hmac(st, buf, 4 + slen, date8, 8, out);
    OPENSSL_cleanse(buf, 4 + slen);
    ok = ok && sigv4_hmac(st, out, AIO_SHA256_LEN, region, rlen, out)
            && sigv4_hmac(st, out, AIO_SHA256_LEN, service, svlen, out)
            && sigv4_hmac(st, out, AIO_SHA256_LEN, SIGV4_TERMINATOR, 12, out);
    if (!ok) {
        OPENSSL_cleanse(out, AIO_SHA256_LEN);
        return 0;
    }
    OPENSSL_cleanse(victim->key, sizeof victim->key); /* evicted key */
    memcpy(victim->id, id, sizeof id);
    memcpy(victim->key, out, AIO_SHA256_LEN);
    victim->stamp = st->clock;
    victim->used = 1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Scratch arena: a bump allocator that starts in the caller's stack frame
 * and continues in userdata chunks anchored in a table at a fixed stack
 * slot (so allocating never disturbs a lua_next in progress). */

typedef struct {
    lua_State *L;
    int anchor; /* stack slot: nil until the first chunk, then a table */
    int nchunks;
    char *p;
    size_t left;
} sigv4_arena;

static void *sigv4_alloc(sigv4_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n > a->left) {
        lua_State *L = a->L;
        size_t size = n > 16384 ? n : 16384;
        if (lua_isnil(L, a->anchor)) {
            lua_newtable(L);
            lua_replace(L, a->anchor);
        }
        a->p = (char *)lua_newuserdatauv(L, size, 0);
        lua_rawseti(L, a->anchor, ++a->nchunks);
        a->left = size;
    }
    void *r = a->p;
    a->p += n;
    a->left -= n;
    return r;
}

static char *sigv4_strdup(sigv4_arena *a, const char *s, size_t n)
{
    char *r = (char *)sigv4_alloc(a, n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/* ------------------------------------------------------------------ */
/* Input helpers. Error messages name the field, never its value. */

/* Push t[k]; return it as a string (numbers converted) and leave it on the
 * stack as the anchor of the returned pointer, or pop it and return NULL
 * when it is nil. Any other type raises. */
static const char *sigv4_field(lua_State *L, int t, const char *k, size_t *len, const char *what)
{
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        *len = 0;
        return NULL;
    }
    if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
        luaL_error(L, "aio_aws.sigv4: %s.%s must be a string (got %s)", what, k,
                   luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

static int sigv4_flag(lua_State *L, int t, const char *k, int dflt)
{
    int ty = lua_getfield(L, t, k);
    int v = dflt;
    if (ty == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "aio_aws.sigv4: options.%s must be a boolean (got %s)", k,
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* A scope part (region, service) or access key: it is written into the
 * Credential value and the scope, which are '/'-separated. */
static void sigv4_check_part(lua_State *L, const char *s, size_t n, size_t max, const char *what)
{
    if (n == 0 || n > max)
        luaL_error(L, "aio_aws.sigv4: %s must be 1 to %d bytes", what, (int)max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '/' || c == 127)
            luaL_error(L, "aio_aws.sigv4: %s contains '/', whitespace or a control character", what);
    }
}

static int sigv4_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The request time as the X-Amz-Date form YYYYMMDDTHHMMSSZ ([CSR] "The
 * date and time must be in UTC"). Accepts nil (now), epoch seconds, or the
 * ISO 8601 forms "20150830T123600Z" and "2015-08-30T12:36:00[.fff]Z". */
static void sigv4_amzdate(lua_State *L, int idx, char out[17], const char *what)
{
    int ty = lua_type(L, idx);
    if (ty == LUA_TNIL || ty == LUA_TNUMBER) {
        time_t t;
        struct tm tm;
        if (ty == LUA_TNIL) {
            t = time(NULL);
        } else {
            lua_Number x = lua_tonumber(L, idx);
            if (!(x >= 0 && x < 253402300800.0)) /* also rejects NaN */
                luaL_error(L, "aio_aws.sigv4: %s is out of range", what);
            t = (time_t)x;
        }
        if (gmtime_r(&t, &tm) == NULL || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
            luaL_error(L, "aio_aws.sigv4: %s cannot be formatted", what);
        return;
    }
    if (ty == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        int Y, M, D, h, m, sec;
        if (n == 16 && s[8] == 'T' && s[15] == 'Z') {
            Y = sigv4_digits(s, 4), M = sigv4_digits(s + 4, 2), D = sigv4_digits(s + 6, 2);
            h = sigv4_digits(s + 9, 2), m = sigv4_digits(s + 11, 2), sec = sigv4_digits(s + 13, 2);
        } else if (n >= 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':'
                   && s[16] == ':' && s[n - 1] == 'Z'
                   && (n == 20 || (s[19] == '.' && n > 21 && sigv4_digits(s + 20, (int)(n - 21)) >= 0
                                   && n - 21 <= 9))) {
            Y = sigv4_digits(s, 4), M = sigv4_digits(s + 5, 2), D = sigv4_digits(s + 8, 2);
            h = sigv4_digits(s + 11, 2), m = sigv4_digits(s + 14, 2), sec = sigv4_digits(s + 17, 2);
        } else {
            Y = -1, M = D = h = m = sec = 0;
        }
        if (Y < 0 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0
            || m > 59 || sec < 0 || sec > 60)
            luaL_error(L, "aio_aws.sigv4: %s must be epoch seconds or ISO 8601 UTC "
                          "(20150830T123600Z or 2015-08-30T12:36:00Z)", what);
        snprintf(out, 17, "%04d%02d%02dT%02d%02d%02dZ", Y, M, D, h, m, sec);
        return;
    }
    luaL_error(L, "aio_aws.sigv4: %s must be a number or a string (got %s)", what,
               luaL_typename(L, idx));
}

/* ------------------------------------------------------------------ */
/* Headers */

typedef struct {
    const char *name; /* lower case */
    size_t nlen;
    const char *val;  /* trimmed, whitespace runs folded */
    size_t vlen;
    unsigned seq;     /* input order, so the sort is stable */
    int sign;
} sigv4_header;

typedef struct {
    sigv4_header *v;
    size_t n, cap;
} sigv4_headers;

typedef struct {
    const char *k; /* both already percent-encoded */
    size_t klen;
    const char *v;
    size_t vlen;
} sigv4_param;

typedef struct {
    sigv4_param *v;
    size_t n, cap;
} sigv4_params;

/* Everything one signing needs; filled from the three argument tables. */
typedef struct {
    lua_State *L;
    sigv4_state *st;
    sigv4_arena arena;
    /* options */
    const char *region, *service;
    size_t rlen, svlen;
    int s3, normalize, double_encode, presign, omit_token, unsigned_payload, sign_body;
    int add_content_sha; /* header mode: send and sign x-amz-content-sha256 */
    lua_Integer expires;
    int signed_list;     /* stack index of options.signed_headers, or 0 */
    char amzdate[17];
    /* credentials */
    const char *ak, *sk, *token;
    size_t aklen, sklen, toklen;
    /* request */
    const char *method, *scheme, *authority, *path, *body;
    size_t mlen, schlen, authlen, plen, bodylen;
    const char *payload;     /* payload hash as it goes in the canonical request */
    size_t paylen;
    const char *user_sha;    /* x-amz-content-sha256 given by the caller */
    size_t user_shalen;
    const char *host;        /* Host header value */
    size_t hostlen;
    int has_host;            /* the caller gave a Host header */
    char payload_hex[64];
    sigv4_headers hs;
    sigv4_params ps;
    unsigned seq;
} sigv4_ctx;

/* Headers that are not signed by default, whatever their value:
 * Authorization is the output; user-agent, expect and x-amzn-trace-id are
 * botocore's SIGNED_HEADERS_BLACKLIST (proxies and SDK layers change
 * them); the rest are the hop-by-hop headers of RFC 7230 section 6.1,
 * which a proxy may rewrite or drop (aws-c-auth and smithy-rs skip
 * connection, upgrade and transfer-encoding for that reason). */
static int sigv4_skipped(const char *n, size_t len)
{
    static const char *const names[] = {
        "connection", "expect", "keep-alive", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id", NULL,
    };
    for (int i = 0; names[i] != NULL; i++)
        if (strlen(names[i]) == len && memcmp(names[i], n, len) == 0)
            return 1;
    return 0;
}

static int sigv4_is(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, l) == 0;
}

/* Room for one more element in an arena array of n elements (capacity
 * *cap): a full array moves to a new block twice the size. */
static void *sigv4_grow(sigv4_arena *a, void *v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return v;
    size_t ncap = *cap ? 2 * *cap : 16;
    void *nv = sigv4_alloc(a, ncap * size);
    if (n)
        memcpy(nv, v, n * size);
    *cap = ncap;
    return nv;
}

static sigv4_header *sigv4_header_push(sigv4_ctx *c)
{
    sigv4_headers *h = &c->hs;
    h->v = (sigv4_header *)sigv4_grow(&c->arena, h->v, h->n, &h->cap, sizeof *h->v);
    return &h->v[h->n++];
}

/* Call fn(c, name_index, value_index) for each name/value of t, which is a
 * list of {name, value} pairs or a map (name -> value, or a list of values
 * for a repeated name, kept in order). what names t in errors. */
typedef void (*sigv4_pair_fn)(sigv4_ctx *c, int nidx, int vidx);

static void sigv4_each_pair(sigv4_ctx *c, int t, const char *what, sigv4_pair_fn fn)
{
    lua_State *L = c->L;
    if (lua_rawgeti(L, t, 1) != LUA_TNIL) { /* [.., pair1]: a list of pairs */
        lua_pop(L, 1);
        for (lua_Integer i = 1;; i++) {
            int ty = lua_rawgeti(L, t, i); /* [.., pair] */
            if (ty == LUA_TNIL) {
                lua_pop(L, 1);
                return;
            }
            if (ty != LUA_TTABLE)
                luaL_error(L, "aio_aws.sigv4: %s[%I] must be a {name, value} pair", what, (lua_Integer)i);
            lua_rawgeti(L, -1, 1); /* [.., pair, name] */
            lua_rawgeti(L, -2, 2); /* [.., pair, name, value] */
            fn(c, lua_absindex(L, -2), lua_absindex(L, -1));
            lua_pop(L, 3);
        }
    }
    lua_pop(L, 1);
    lua_pushnil(L); /* [.., nil]: the first key */
    while (lua_next(L, t) != 0) { /* [.., name, value] */
        /* (a non-string key would also upset lua_next if converted) */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "aio_aws.sigv4: %s names must be strings", what);
        if (lua_type(L, -1) == LUA_TTABLE) {
            int list = lua_absindex(L, -1);
            for (lua_Integer i = 1; lua_rawgeti(L, list, i) != LUA_TNIL; i++) { /* [.., name, list, v] */
                fn(c, list - 1, lua_absindex(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1); /* the nil that ended the list */
        } else {
            fn(c, lua_absindex(L, -2), lua_absindex(L, -1));
        }
        lua_pop(L, 1); /* [.., name] */
    }
}

/* [CSR] canonical headers: "Lowercase(HeaderName) + ':' + Trimall(HeaderValue)".
 * Trimall removes leading and trailing whitespace and turns every run of
 * whitespace inside the value into one space; CR and LF count as
 * whitespace so an obs-fold continuation (RFC 7230 section 3.2.4) folds
 * the same way (get-header-value-multiline). Quoted strings are not
 * special (get-header-value-trim). */
static size_t sigv4_trimall(char *out, const char *s, size_t n)
{
    size_t o = 0;
    int gap = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            gap = (o > 0);
        } else {
            if (gap)
                out[o++] = ' ';
            gap = 0;
            out[o++] = ch;
        }
    }
    return o;
}

/* Add one header with an already canonical value (the signer's own). */
static void sigv4_header_add_raw(sigv4_ctx *c, const char *name, const char *val, size_t vlen, int sign)
{
    sigv4_header *h = sigv4_header_push(c);
    h->name = name;
    h->nlen = strlen(name);
    h->val = val;
    h->vlen = vlen;
    h->seq = c->seq++;
    h->sign = sign;
}

/* Add a caller header: name and value at the given stack indices. The
 * signer owns host (when the caller gives none), x-amz-date,
 * x-amz-security-token (when it has a token), x-amz-content-sha256 (when
 * it adds one) and Authorization, so a caller's copy of those is dropped
 * here; a retried request can be signed again as it is. */
static void sigv4_header_add(sigv4_ctx *c, int nidx, int vidx)
{
    lua_State *L = c->L;
    size_t nlen, vlen;
    const char *n, *v;
    if (lua_type(L, nidx) != LUA_TSTRING)
        luaL_error(L, "aio_aws.sigv4: header names must be strings (got %s)", luaL_typename(L, nidx));
    if (lua_type(L, vidx) != LUA_TSTRING && lua_type(L, vidx) != LUA_TNUMBER)
        luaL_error(L, "aio_aws.sigv4: header values must be strings (got %s)", luaL_typename(L, vidx));
    n = lua_tolstring(L, nidx, &nlen);
    v = lua_tolstring(L, vidx, &vlen);
    if (nlen == 0)
        luaL_error(L, "aio_aws.sigv4: empty header name");

    /* Lower case ([CSR]); a name is an RFC 7230 token, so nothing in it
     * can break a canonical line or the request's header block. (Values
     * cannot either: Trimall turns CR and LF into spaces.) */
    char *lname = sigv4_strdup(&c->arena, n, nlen);
    for (size_t i = 0; i < nlen; i++) {
        unsigned char ch = (unsigned char)lname[i];
        if (ch <= ' ' || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            luaL_error(L, "aio_aws.sigv4: header name with a character outside the HTTP token set");
        if (ch >= 'A' && ch <= 'Z')
            lname[i] = (char)(ch + ('a' - 'A'));
    }
    char *cval = (char *)sigv4_alloc(&c->arena, vlen + 1);
    size_t clen = sigv4_trimall(cval, v, vlen);

    if (sigv4_is(lname, nlen, "authorization") || sigv4_is(lname, nlen, "x-amz-date"))
        return;
    if (sigv4_is(lname, nlen, "x-amz-security-token") && c->token != NULL)
        return;
    if (sigv4_is(lname, nlen, "x-amz-content-sha256")) {
        c->user_sha = cval;
        c->user_shalen = clen;
        if (c->add_content_sha)
            return;
    }
    if (sigv4_is(lname, nlen, "host") && !c->has_host) {
        c->host = cval;
        c->hostlen = clen;
        c->has_host = 1;
    }
    sigv4_header *h = sigv4_header_push(c);
    h->name = lname;
    h->nlen = nlen;
    h->val = cval;
    h->vlen = clen;
    h->seq = c->seq++;
    h->sign = !sigv4_skipped(lname, nlen);
}

static int sigv4_header_cmp(const void *a, const void *b)
{
    const sigv4_header *x = (const sigv4_header *)a, *y = (const sigv4_header *)b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int r = memcmp(x->name, y->name, n);
    if (r != 0)
        return r;
    if (x->nlen != y->nlen)
        return x->nlen < y->nlen ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* ------------------------------------------------------------------ */
/* Query parameters. [CSR] canonical query string: URI-encode each name
 * and value (RFC 3986 unreserved set, upper-case hex, '/' encoded), sort
 * by name and then by value, join name=value with '&'. A parameter with no
 * value signs as "name=" ([S3H]: ?lifecycle). */

static sigv4_param *sigv4_param_push(sigv4_ctx *c)
{
    sigv4_params *p = &c->ps;
    p->v = (sigv4_param *)sigv4_grow(&c->arena, p->v, p->n, &p->cap, sizeof *p->v);
    return &p->v[p->n++];
}

/* A wire-form component: percent-decode it (a '%' not followed by two hex
 * digits stays a literal '%'; '+' is a literal '+', not a space, as SigV4
 * and RFC 3986 read it) and encode it again, so every encoding of the
 * same bytes signs the same. Output needs 3n bytes. */
static size_t sigv4_reencode(char *out, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%' && i + 2 < n) {
            int hi = aio_crypto_unhex((unsigned char)s[i + 1]);
            int lo = aio_crypto_unhex((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                ch = (char)(hi << 4 | lo);
                i += 2;
            }
        }
        o += aio_crypto_uri_encode(out + o, &ch, 1, 1);
    }
    return o;
}

static void sigv4_query_wire(sigv4_ctx *c, const char *q, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i, eq = (size_t)-1;
        while (j < n && q[j] != '&') {
            if (q[j] == '=' && eq == (size_t)-1)
                eq = j;
            j++;
        }
        if (j > i) { /* empty pieces ("a=1&&b=2") carry nothing */
            size_t kend = eq == (size_t)-1 ? j : eq;
            size_t vbeg = eq == (size_t)-1 ? j : eq + 1;
            char *k = (char *)sigv4_alloc(&c->arena, 3 * (kend - i) + 3 * (j - vbeg) + 1);
            sigv4_param *p = sigv4_param_push(c);
            p->k = k;
            p->klen = sigv4_reencode(k, q + i, kend - i);
            p->v = k + p->klen;
            p->vlen = sigv4_reencode(k + p->klen, q + vbeg, j - vbeg);
        }
        i = j + 1;
    }
}

/* A decoded name and value (strings, or numbers; a value may be absent). */
static void sigv4_query_pair(sigv4_ctx *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    char *buf = (char *)sigv4_alloc(&c->arena, 3 * (klen + vlen) + 1);
    sigv4_param *p = sigv4_param_push(c);
    p->k = buf;
    p->klen = aio_crypto_uri_encode(buf, k, klen, 1);
    p->v = buf + p->klen;
    p->vlen = aio_crypto_uri_encode(buf + p->klen, v, vlen, 1);
}

/* One decoded name and value of request.query as a table; true or nil
 * stands for a name without a value. */
static void sigv4_query_add(sigv4_ctx *c, int nidx, int vidx)
{
    lua_State *L = c->L;
    size_t klen, vlen = 0;
    const char *k, *v = "";
    int ty = lua_type(L, vidx);
    if (lua_type(L, nidx) != LUA_TSTRING && lua_type(L, nidx) != LUA_TNUMBER)
        luaL_error(L, "aio_aws.sigv4: query names must be strings");
    k = lua_tolstring(L, nidx, &klen);
    if (ty == LUA_TSTRING || ty == LUA_TNUMBER)
        v = lua_tolstring(L, vidx, &vlen);
    else if (!(ty == LUA_TNIL || (ty == LUA_TBOOLEAN && lua_toboolean(L, vidx))))
        luaL_error(L, "aio_aws.sigv4: query values must be strings (got %s)", luaL_typename(L, vidx));
    sigv4_query_pair(c, k, klen, v, vlen);
}

static int sigv4_param_cmp(const void *a, const void *b)
{
    const sigv4_param *x = (const sigv4_param *)a, *y = (const sigv4_param *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = memcmp(x->k, y->k, n);
    if (r != 0)
        return r;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    n = x->vlen < y->vlen ? x->vlen : y->vlen;
    r = memcmp(x->v, y->v, n);
    if (r != 0)
        return r;
    return x->vlen < y->vlen ? -1 : (x->vlen > y->vlen);
}

/* Presigning owns the X-Amz-* authentication parameters ([S3Q] table of
 * query parameters): a caller's copy is replaced, and X-Amz-Signature is
 * never part of the canonical query. Re-signing a presigned URL (or
 * checking one) therefore works on the URL as it is. */
static int sigv4_presign_owned(const sigv4_ctx *c, const sigv4_param *p)
{
    static const char *const names[] = {
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", NULL,
    };
    for (int i = 0; names[i] != NULL; i++)
        if (sigv4_is(p->k, p->klen, names[i]))
            return 1;
    return c->token != NULL && sigv4_is(p->k, p->klen, "X-Amz-Security-Token");
}

/* ------------------------------------------------------------------ */
/* Canonical URI ([CSR] "CanonicalURI"; [S3H] for S3). */

/* Path normalisation for services other than S3: remove "." and ".."
 * segments (RFC 3986 section 5.2.4) and empty segments, keeping a
 * trailing slash when the input had one and something is left (the rule
 * of botocore's remove_dot_segments and of the CRT suite's *-normalized
 * cases). out needs n + 2 bytes. */
static size_t sigv4_normalize(char *out, const char *p, size_t n)
{
    size_t o = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && p[i] == '.')) {
            /* nothing */
        } else if (len == 2 && p[i] == '.' && p[i + 1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, p + i, len);
            o += len;
        }
        i = j + 1;
    }
    if (o == 0)
        out[o++] = '/';
    else if (n > 0 && p[n - 1] == '/')
        out[o++] = '/';
    return o;
}

/* ------------------------------------------------------------------ */
/* Parsing the request */

/* Split an absolute URL (RFC 3986 section 3): scheme "://" authority
 * path ["?" query] ["#" fragment]. Userinfo is dropped from the
 * authority. */
static void sigv4_parse_url(sigv4_ctx *c, const char *u, size_t n, const char **q, size_t *qlen)
{
    const char *end = u + n, *s = u;
    while (s < end && *s != ':' && *s != '/' && *s != '?' && *s != '#')
        s++;
    if (s == u || end - s < 3 || memcmp(s, "://", 3) != 0)
        luaL_error(c->L, "aio_aws.sigv4: request.url must be absolute (scheme://host/path)");
    c->scheme = u;
    c->schlen = (size_t)(s - u);
    const char *a = s + 3, *ae = a;
    while (ae < end && *ae != '/' && *ae != '?' && *ae != '#')
        ae++;
    for (const char *at = a; at < ae; at++)
        if (*at == '@')
            a = at + 1;
    c->authority = a;
    c->authlen = (size_t)(ae - a);
    const char *p = ae, *pe = ae;
    while (pe < end && *pe != '?' && *pe != '#')
        pe++;
    c->path = p;
    c->plen = (size_t)(pe - p);
    *q = NULL;
    *qlen = 0;
    if (pe < end && *pe == '?') {
        const char *qe = pe + 1;
        while (qe < end && *qe != '#')
            qe++;
        *q = pe + 1;
        *qlen = (size_t)(qe - pe - 1);
    }
}

/* The Host header the signer adds when the caller gives none: the
 * authority in lower case, without the scheme's default port (what HTTP
 * clients send, RFC 7230 section 5.4, and what botocore signs). */
static void sigv4_default_host(sigv4_ctx *c)
{
    size_t n = c->authlen;
    const char *a = c->authority;
    if ((c->schlen == 5 && strncasecmp(c->scheme, "https", 5) == 0 && n > 4
         && memcmp(a + n - 4, ":443", 4) == 0))
        n -= 4;
    else if (c->schlen == 4 && strncasecmp(c->scheme, "http", 4) == 0 && n > 3
             && memcmp(a + n - 3, ":80", 3) == 0)
        n -= 3;
    char *h = sigv4_strdup(&c->arena, a, n);
    for (size_t i = 0; i < n; i++)
        if (h[i] >= 'A' && h[i] <= 'Z')
            h[i] = (char)(h[i] + ('a' - 'A'));
    c->host = h;
    c->hostlen = n;
}

static void sigv4_read_options(sigv4_ctx *c, int opt)
{
    lua_State *L = c->L;
    if (lua_type(L, opt) != LUA_TTABLE)
        luaL_typeerror(L, opt, "table of options (region, service, ...)");
    c->region = sigv4_field(L, opt, "region", &c->rlen, "options");
    c->service = sigv4_field(L, opt, "service", &c->svlen, "options");
    if (c->region == NULL)
        luaL_error(L, "aio_aws.sigv4: options.region is required");
    if (c->service == NULL)
        luaL_error(L, "aio_aws.sigv4: options.service is required");
    sigv4_check_part(L, c->region, c->rlen, SIGV4_MAX_PART, "options.region");
    sigv4_check_part(L, c->service, c->svlen, SIGV4_MAX_PART, "options.service");
    /* S3 differs from every other service ([S3H] "Task 1"): no path
     * normalisation, no second encoding of the path, and the payload hash
     * travels in x-amz-content-sha256. */
    c->s3 = sigv4_flag(L, opt, "s3", sigv4_is(c->service, c->svlen, "s3"));
    c->normalize = sigv4_flag(L, opt, "normalize_path", !c->s3);
    c->double_encode = sigv4_flag(L, opt, "double_encode", !c->s3);
    c->omit_token = sigv4_flag(L, opt, "omit_session_token", 0);
    c->unsigned_payload = sigv4_flag(L, opt, "unsigned_payload", 0);
    c->sign_body = sigv4_flag(L, opt, "sign_body", 0);

    int ty = lua_getfield(L, opt, "presign_expires");
    if (ty != LUA_TNIL) {
        int isint;
        c->expires = lua_tointegerx(L, -1, &isint);
        if (!isint || c->expires < 1 || c->expires > SIGV4_MAX_EXPIRES)
            luaL_error(L, "aio_aws.sigv4: options.presign_expires must be an integer "
                          "from 1 to %d seconds", SIGV4_MAX_EXPIRES);
        c->presign = 1;
    }
    lua_pop(L, 1);
    c->add_content_sha = !c->presign && (c->s3 || c->sign_body || c->unsigned_payload);

    lua_getfield(L, opt, "time");
    sigv4_amzdate(L, lua_gettop(L), c->amzdate, "options.time");
    lua_pop(L, 1);

    ty = lua_getfield(L, opt, "signed_headers"); /* stays on the stack when set */
    if (ty == LUA_TTABLE)
        c->signed_list = lua_gettop(L);
    else if (ty == LUA_TNIL)
        lua_pop(L, 1);
    else
        luaL_error(L, "aio_aws.sigv4: options.signed_headers must be a list of header names");
}

static void sigv4_read_credentials(sigv4_ctx *c, int cred)
{
    lua_State *L = c->L;
    if (lua_type(L, cred) != LUA_TTABLE)
        luaL_typeerror(L, cred, "table of credentials (access_key, secret_key, session_token)");
    c->ak = sigv4_field(L, cred, "access_key", &c->aklen, "credentials");
    c->sk = sigv4_field(L, cred, "secret_key", &c->sklen, "credentials");
    c->token = sigv4_field(L, cred, "session_token", &c->toklen, "credentials");
    if (c->ak == NULL || c->sk == NULL)
        luaL_error(L, "aio_aws.sigv4: credentials.access_key and credentials.secret_key are required");
    sigv4_check_part(L, c->ak, c->aklen, SIGV4_MAX_ACCESS_KEY, "credentials.access_key");
    if (c->sklen == 0 || c->sklen > SIGV4_MAX_SECRET)
        luaL_error(L, "aio_aws.sigv4: credentials.secret_key must be 1 to %d bytes", SIGV4_MAX_SECRET);
    if (c->token != NULL && c->toklen == 0)
        c->token = NULL;
}

/* The payload hash, last line of the canonical request ([CSR]
 * "HashedPayload"; [S3H] x-amz-content-sha256; [S3Q] presigned S3 URLs use
 * UNSIGNED-PAYLOAD). In order: the caller's payload_hash; UNSIGNED-PAYLOAD
 * when asked for, or for an S3 presigned URL; the caller's
 * x-amz-content-sha256 header (so a streaming seed, or a request being
 * verified, signs what it declares); SHA-256 of the body; of "". */
static void sigv4_payload_hash(sigv4_ctx *c, const char *explicit_hash, size_t explicit_len)
{
    if (explicit_hash != NULL) {
        c->payload = explicit_hash;
        c->paylen = explicit_len;
    } else if (c->unsigned_payload || (c->presign && c->s3)) {
        c->payload = SIGV4_UNSIGNED;
        c->paylen = sizeof SIGV4_UNSIGNED - 1;
    } else if (c->user_sha != NULL) {
        c->payload = c->user_sha;
        c->paylen = c->user_shalen;
    } else if (c->body != NULL && c->bodylen > 0) {
        unsigned char d[AIO_SHA256_LEN];
        if (!sigv4_sha256(c->st, c->body, c->bodylen, d))
            luaL_error(c->L, "aio_aws.sigv4: OpenSSL SHA-256 failed");
        aio_crypto_hex(d, sizeof d, c->payload_hex);
        c->payload = c->payload_hex;
        c->paylen = 64;
    } else {
        c->payload = SIGV4_EMPTY_SHA256;
        c->paylen = 64;
    }
}

static void sigv4_read_request(sigv4_ctx *c, int req)
{
    lua_State *L = c->L;
    size_t n, qlen = 0, ph_len = 0;
    const char *s, *q = NULL, *ph;
    if (lua_type(L, req) != LUA_TTABLE)
        luaL_typeerror(L, req, "request table (method, url or host/path/query, headers, body)");

    s = sigv4_field(L, req, "method", &n, "request");
    if (s == NULL)
        s = "GET", n = 3;
    /* [CSR] "HTTPMethod": upper case. */
    char *m = sigv4_strdup(&c->arena, s, n);
    for (size_t i = 0; i < n; i++)
        if (m[i] >= 'a' && m[i] <= 'z')
            m[i] = (char)(m[i] - ('a' - 'A'));
    c->method = m;
    c->mlen = n;

    s = sigv4_field(L, req, "url", &n, "request");
    if (s != NULL) {
        sigv4_parse_url(c, s, n, &q, &qlen);
    } else {
        c->scheme = sigv4_field(L, req, "scheme", &c->schlen, "request");
        if (c->scheme == NULL)
            c->scheme = "https", c->schlen = 5;
        c->authority = sigv4_field(L, req, "host", &c->authlen, "request");
        c->path = sigv4_field(L, req, "path", &c->plen, "request");
    }
    if (c->path == NULL || c->plen == 0)
        c->path = "/", c->plen = 1;
    else if (c->path[0] != '/') { /* an absolute path is what goes on the wire */
        char *p = (char *)sigv4_alloc(&c->arena, c->plen + 1);
        p[0] = '/';
        memcpy(p + 1, c->path, c->plen);
        c->path = p;
        c->plen++;
    }

    if (q != NULL)
        sigv4_query_wire(c, q, qlen);
    int ty = lua_getfield(L, req, "query");
    if (ty == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &n);
        sigv4_query_wire(c, (n > 0 && s[0] == '?') ? s + 1 : s, (n > 0 && s[0] == '?') ? n - 1 : n);
    } else if (ty == LUA_TTABLE) {
        sigv4_each_pair(c, lua_gettop(L), "request.query", sigv4_query_add);
    } else if (ty != LUA_TNIL) {
        luaL_error(L, "aio_aws.sigv4: request.query must be a string or a table (got %s)",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);

    ty = lua_getfield(L, req, "headers");
    if (ty == LUA_TTABLE)
        sigv4_each_pair(c, lua_gettop(L), "request.headers", sigv4_header_add);
    else if (ty != LUA_TNIL)
        luaL_error(L, "aio_aws.sigv4: request.headers must be a table (got %s)", luaL_typename(L, -1));
    lua_pop(L, 1);

    if (c->authority == NULL) {
        if (c->host == NULL)
            luaL_error(L, "aio_aws.sigv4: the request needs url, host or a Host header");
        c->authority = c->host;
        c->authlen = c->hostlen;
    }
    if (c->host == NULL)
        sigv4_default_host(c);

    c->body = sigv4_field(L, req, "body", &c->bodylen, "request");
    ph = sigv4_field(L, req, "payload_hash", &ph_len, "request");
    sigv4_payload_hash(c, ph, ph_len);
}

/* ------------------------------------------------------------------ */
/* Signing */

static void sigv4_addq(luaL_Buffer *b, const sigv4_params *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (i > 0)
            luaL_addchar(b, '&');
        luaL_addlstring(b, ps->v[i].k, ps->v[i].klen);
        luaL_addchar(b, '=');
        luaL_addlstring(b, ps->v[i].v, ps->v[i].vlen);
    }
}

/* Is name (lower case) in options.signed_headers? */
static int sigv4_listed(lua_State *L, int list, const char *name, size_t nlen)
{
    for (lua_Integer i = 1;; i++) {
        size_t l;
        int ty = lua_rawgeti(L, list, i);
        if (ty == LUA_TNIL) {
            lua_pop(L, 1);
            return 0;
        }
        if (ty != LUA_TSTRING)
            luaL_error(L, "aio_aws.sigv4: options.signed_headers must hold strings");
        const char *s = lua_tolstring(L, -1, &l);
        int eq = (l == nlen);
        for (size_t k = 0; eq && k < l; k++) {
            char ch = s[k];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch + ('a' - 'A'));
            eq = (ch == name[k]);
        }
        lua_pop(L, 1);
        if (eq)
            return 1;
    }
}

/* Finish the headers: add the signer's own, sort, merge repeats, apply
 * options.signed_headers. Returns the merged array (*nm entries) and
 * writes the SignedHeaders list to *slist / *sllen. */
static sigv4_header *sigv4_canonical_headers(sigv4_ctx *c, size_t *nm_out, char **slist_out, size_t *sllen_out)
{
    lua_State *L = c->L;
    /* The headers the signer adds ([CSR] "Add the signature to the
     * request": host and x-amz-date are always signed; [S3H]
     * x-amz-content-sha256; the session token signs unless the service
     * wants it added afterwards (post-sts-header-after)). */
    if (!c->has_host)
        sigv4_header_add_raw(c, "host", c->host, c->hostlen, 1);
    if (!c->presign) {
        sigv4_header_add_raw(c, "x-amz-date", c->amzdate, 16, 1);
        if (c->token != NULL)
            sigv4_header_add_raw(c, "x-amz-security-token", c->token, c->toklen, !c->omit_token);
        if (c->add_content_sha)
            sigv4_header_add_raw(c, "x-amz-content-sha256", c->payload, c->paylen, 1);
    }

    /* [CSR] canonical headers: sorted by lower-case name, the sort stable
     * so that repeated names merge into one line with their values joined
     * by ',' in request order (get-header-value-order). */
    qsort(c->hs.v, c->hs.n, sizeof *c->hs.v, sigv4_header_cmp);
    sigv4_header *mh = (sigv4_header *)sigv4_alloc(&c->arena, c->hs.n * sizeof *mh);
    size_t nm = 0;
    for (size_t i = 0, j; i < c->hs.n; i = j) {
        size_t total = 0;
        for (j = i; j < c->hs.n && c->hs.v[j].nlen == c->hs.v[i].nlen
                    && memcmp(c->hs.v[j].name, c->hs.v[i].name, c->hs.v[i].nlen) == 0; j++)
            total += c->hs.v[j].vlen + 1;
        mh[nm] = c->hs.v[i];
        if (j - i > 1) {
            char *val = (char *)sigv4_alloc(&c->arena, total);
            size_t o = 0;
            for (size_t k = i; k < j; k++) {
                if (k > i)
                    val[o++] = ',';
                memcpy(val + o, c->hs.v[k].val, c->hs.v[k].vlen);
                o += c->hs.v[k].vlen;
            }
            mh[nm].val = val;
            mh[nm].vlen = o;
        }
        nm++;
    }

    /* options.signed_headers: sign exactly the names a client listed (to
     * verify its request), each of which must be present. */
    if (c->signed_list) {
        for (size_t i = 0; i < nm; i++)
            mh[i].sign = sigv4_listed(L, c->signed_list, mh[i].name, mh[i].nlen);
        for (lua_Integer i = 1; lua_rawgeti(L, c->signed_list, i) != LUA_TNIL; i++) {
            size_t l, k;
            const char *s = lua_tolstring(L, -1, &l);
            for (k = 0; k < nm; k++)
                if (mh[k].sign && mh[k].nlen == l && strncasecmp(mh[k].name, s, l) == 0)
                    break;
            if (k == nm)
                luaL_error(L, "aio_aws.sigv4: signed header '%s' is not in the request", s);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }

    /* [CSR] SignedHeaders: the lower-case names, sorted, ';'-separated. */
    size_t sllen = 0;
    for (size_t i = 0; i < nm; i++)
        sllen += mh[i].sign ? mh[i].nlen + 1 : 0;
    char *slist = (char *)sigv4_alloc(&c->arena, sllen + 1);
    sllen = 0;
    for (size_t i = 0; i < nm; i++) {
        if (!mh[i].sign)
            continue;
        if (sllen > 0)
            slist[sllen++] = ';';
        memcpy(slist + sllen, mh[i].name, mh[i].nlen);
        sllen += mh[i].nlen;
    }
    slist[sllen] = '\0';

    *nm_out = nm;
    *slist_out = slist;
    *sllen_out = sllen;
    return mh;
}

/* [S3Q] presigning: the authentication parameters join the canonical
 * query (X-Amz-Signature excepted), X-Amz-Credential holding
 * access-key/scope and X-Amz-SignedHeaders the signed header list. */
static void sigv4_presign_params(sigv4_ctx *c, const char *scope, size_t scopelen,
                                 const char *slist, size_t sllen)
{
    size_t k = 0;
    char num[32];
    for (size_t i = 0; i < c->ps.n; i++)
        if (!sigv4_presign_owned(c, &c->ps.v[i]))
            c->ps.v[k++] = c->ps.v[i];
    c->ps.n = k;
    char *cred = (char *)sigv4_alloc(&c->arena, c->aklen + 1 + scopelen);
    memcpy(cred, c->ak, c->aklen);
    cred[c->aklen] = '/';
    memcpy(cred + c->aklen + 1, scope, scopelen);
    sigv4_query_pair(c, "X-Amz-Algorithm", 15, SIGV4_ALGORITHM, sizeof SIGV4_ALGORITHM - 1);
    sigv4_query_pair(c, "X-Amz-Credential", 16, cred, c->aklen + 1 + scopelen);
    sigv4_query_pair(c, "X-Amz-Date", 10, c->amzdate, 16);
    sigv4_query_pair(c, "X-Amz-Expires", 13, num,
                     (size_t)snprintf(num, sizeof num, "%lld", (long long)c->expires));
    if (c->token != NULL && !c->omit_token)
        sigv4_query_pair(c, "X-Amz-Security-Token", 20, c->token, c->toklen);
    sigv4_query_pair(c, "X-Amz-SignedHeaders", 19, slist, sllen);
}

/* sigv4_sign(request, credentials, options) -> result, debug. See
 * lua/aio_aws/sigv4.lua for the documented shapes. */
static int sigv4_sign(lua_State *L)
{
    sigv4_state *st = sigv4_state_get(L);
    char stackbuf[SIGV4_ARENA_STACK] __attribute__((aligned(16)));
    sigv4_ctx c;
    luaL_Buffer b;
    char scope[SIGV4_MAX_SCOPE + 1];
    size_t scopelen;

    lua_settop(L, 3);
    luaL_checkstack(L, 40, "aio_aws.sigv4");
    memset(&c, 0, sizeof c);
    c.L = L;
    c.st = st;
    lua_pushnil(L); /* [request, credentials, options, anchor] */
    c.arena.L = L;
    c.arena.anchor = lua_gettop(L);
    c.arena.p = stackbuf;
    c.arena.left = sizeof stackbuf;

    sigv4_read_options(&c, 3);
    sigv4_read_credentials(&c, 2);
    sigv4_read_request(&c, 1);

    /* [CSR] credential scope: date/region/service/aws4_request. */
    scopelen = (size_t)snprintf(scope, sizeof scope, "%.8s/%.*s/%.*s/" SIGV4_TERMINATOR, c.amzdate,
                                (int)c.rlen, c.region, (int)c.svlen, c.service);

    size_t nm, sllen;
    char *slist;
    sigv4_header *mh = sigv4_canonical_headers(&c, &nm, &slist, &sllen);
    if (c.presign)
        sigv4_presign_params(&c, scope, scopelen, slist, sllen);
    if (c.ps.n > 1)
        qsort(c.ps.v, c.ps.n, sizeof *c.ps.v, sigv4_param_cmp);

    /* [CSR] CanonicalURI. Other services: normalised, then URI-encoded
     * once more (so an encoded "%3A" on the wire signs as "%253A",
     * smithy-rs double-url-encode). S3 ([S3H]): the wire path as it is. */
    const char *cpath = c.path;
    size_t cplen = c.plen;
    if (c.normalize) {
        char *np = (char *)sigv4_alloc(&c.arena, c.plen + 2);
        cplen = sigv4_normalize(np, c.path, c.plen);
        cpath = np;
    }

    /* [CSR] CanonicalRequest = Method \n URI \n Query \n Headers \n
     * SignedHeaders \n HashedPayload (Headers ends with its own \n). */
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, c.method, c.mlen);
    luaL_addchar(&b, '\n');
    if (c.double_encode) {
        char *o = luaL_prepbuffsize(&b, 3 * cplen);
        luaL_addsize(&b, aio_crypto_uri_encode(o, cpath, cplen, 0));
    } else {
        luaL_addlstring(&b, cpath, cplen);
    }
    luaL_addchar(&b, '\n');
    sigv4_addq(&b, &c.ps);
    luaL_addchar(&b, '\n');
    for (size_t i = 0; i < nm; i++) {
        if (!mh[i].sign)
            continue;
        luaL_addlstring(&b, mh[i].name, mh[i].nlen);
        luaL_addchar(&b, ':');
        luaL_addlstring(&b, mh[i].val, mh[i].vlen);
        luaL_addchar(&b, '\n');
    }
    luaL_addchar(&b, '\n');
    luaL_addlstring(&b, slist, sllen);
    luaL_addchar(&b, '\n');
    luaL_addlstring(&b, c.payload, c.paylen);
    luaL_pushresult(&b); /* [.., creq] */
    int creq_idx = lua_gettop(L);

    /* [CSR] StringToSign = Algorithm \n RequestDateTime \n
     * CredentialScope \n hex(SHA256(CanonicalRequest)). */
    size_t creqlen;
    const char *creq = lua_tolstring(L, creq_idx, &creqlen);
    unsigned char d[AIO_SHA256_LEN], key[AIO_SHA256_LEN];
    char dhex[64];
    char sts[sizeof SIGV4_ALGORITHM + 17 + SIGV4_MAX_SCOPE + 1 + 64 + 1];
    if (!sigv4_sha256(st, creq, creqlen, d))
        return luaL_error(L, "aio_aws.sigv4: OpenSSL SHA-256 failed");
    aio_crypto_hex(d, sizeof d, dhex);
    size_t stslen = (size_t)snprintf(sts, sizeof sts, SIGV4_ALGORITHM "\n%s\n%s\n%.64s",
                                     c.amzdate, scope, dhex);

    /* [CSR] Signature = hex(HMAC(kSigning, StringToSign)). */
    char sig[64];
    int ok = sigv4_signing_key(st, c.sk, c.sklen, c.amzdate, c.region, c.rlen, c.service,
                               c.svlen, key)
             && sigv4_hmac(st, key, sizeof key, sts, stslen, d);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok)
        return luaL_error(L, "aio_aws.sigv4: OpenSSL HMAC failed");
    aio_crypto_hex(d, sizeof d, sig);

    /* result = {headers = {...}, url = ...} */
    lua_createtable(L, 0, 2);                  /* [.., creq, result] */
    lua_createtable(L, 0, (int)nm + 1);        /* [.., creq, result, headers] */
    for (size_t i = 0; i < nm; i++) {
        lua_pushlstring(L, mh[i].name, mh[i].nlen);
        lua_pushlstring(L, mh[i].val, mh[i].vlen);
        lua_rawset(L, -3);
    }
    if (!c.presign) {
        /* [CSR] Authorization: Algorithm Credential=AK/scope,
         * SignedHeaders=..., Signature=... */
        luaL_buffinit(L, &b);
        luaL_addstring(&b, SIGV4_ALGORITHM " Credential=");
        luaL_addlstring(&b, c.ak, c.aklen);
        luaL_addchar(&b, '/');
        luaL_addlstring(&b, scope, scopelen);
        luaL_addstring(&b, ", SignedHeaders=");
        luaL_addlstring(&b, slist, sllen);
        luaL_addstring(&b, ", Signature=");
        luaL_addlstring(&b, sig, 64);
        luaL_pushresult(&b);                   /* [.., result, headers, authz] */
        lua_setfield(L, -2, "authorization");  /* [.., result, headers] */
    }
    lua_setfield(L, -2, "headers");            /* [.., creq, result] */

    luaL_buffinit(L, &b);
    luaL_addlstring(&b, c.scheme, c.schlen);
    luaL_addstring(&b, "://");
    luaL_addlstring(&b, c.authority, c.authlen);
    luaL_addlstring(&b, c.path, c.plen);
    if (c.ps.n > 0 || c.presign) {
        luaL_addchar(&b, '?');
        sigv4_addq(&b, &c.ps);
    }
    if (c.presign) {
        luaL_addstring(&b, "&X-Amz-Signature=");
        luaL_addlstring(&b, sig, 64);
        if (c.token != NULL && c.omit_token) {
            luaL_addstring(&b, "&X-Amz-Security-Token=");
            char *o = luaL_prepbuffsize(&b, 3 * c.toklen);
            luaL_addsize(&b, aio_crypto_uri_encode(o, c.token, c.toklen, 1));
        }
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, "url");                /* [.., creq, result] */

    /* debug = {canonical_request, string_to_sign, signature, signed_headers, scope, date} */
    lua_createtable(L, 0, 6);                  /* [.., creq, result, debug] */
    lua_pushvalue(L, creq_idx);
    lua_setfield(L, -2, "canonical_request");
    lua_pushlstring(L, sts, stslen);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushlstring(L, sig, 64);
    lua_setfield(L, -2, "signature");
    lua_pushlstring(L, slist, sllen);
    lua_setfield(L, -2, "signed_headers");
    lua_pushlstring(L, scope, scopelen);
    lua_setfield(L, -2, "scope");
    lua_pushlstring(L, c.amzdate, 16);
    lua_setfield(L, -2, "date");
    return 2;
}

/* ------------------------------------------------------------------ */
/* aws-chunked streaming signatures ([S3S]). After the seed request (its
 * x-amz-content-sha256 is STREAMING-AWS4-HMAC-SHA256-PAYLOAD) each chunk
 * carries a signature over
 *   "AWS4-HMAC-SHA256-PAYLOAD" \n date \n scope \n previous-signature \n
 *   hex(SHA256("")) \n hex(SHA256(chunk-data))
 * chained from the seed signature; the last chunk is empty. The chunker
 * keeps the signing key (wiped on close) rather than the secret. */

typedef struct {
    int closed;
    unsigned char key[AIO_SHA256_LEN];
    char prev[64];
    char date[16];
    char scope[SIGV4_MAX_SCOPE + 1];
    size_t scopelen;
} sigv4_chunker;

static void sigv4_chunker_release(sigv4_chunker *ch)
{
    OPENSSL_cleanse(ch->key, sizeof ch->key);
    ch->closed = 1;
}

static sigv4_chunker *sigv4_chunker_check(lua_State *L)
{
    sigv4_chunker *ch = (sigv4_chunker *)luaL_checkudata(L, 1, SIGV4_CHUNKER_MT);
    if (ch->closed)
        luaL_error(L, "attempt to use a closed aio_aws.sigv4 chunk signer");
    return ch;
}

static int sigv4_hexsig(const char *s, size_t n)
{
    if (n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* sigv4_chunker(credentials, options, seed_signature): options need
 * region, service and the seed request's time. */
static int sigv4_chunker_new(lua_State *L)
{
    sigv4_state *st = sigv4_state_get(L);
    sigv4_ctx c;
    size_t seedlen;
    lua_settop(L, 3);
    luaL_checkstack(L, 20, "aio_aws.sigv4");
    memset(&c, 0, sizeof c);
    c.L = L;
    const char *seed = luaL_checklstring(L, 3, &seedlen);
    if (!sigv4_hexsig(seed, seedlen))
        luaL_argerror(L, 3, "the seed signature must be 64 lower-case hex digits");
    if (lua_type(L, 2) != LUA_TTABLE)
        luaL_typeerror(L, 2, "table of options (region, service, time)");
    if (lua_getfield(L, 2, "time") == LUA_TNIL)
        luaL_error(L, "aio_aws.sigv4: options.time is required (the seed request's time)");
    lua_pop(L, 1);
    sigv4_read_options(&c, 2);
    sigv4_read_credentials(&c, 1);

    sigv4_chunker *ch = (sigv4_chunker *)lua_newuserdatauv(L, sizeof *ch, 0);
    memset(ch, 0, sizeof *ch);
    ch->closed = 1; /* until the key is there */
    luaL_setmetatable(L, SIGV4_CHUNKER_MT);
    if (!sigv4_signing_key(st, c.sk, c.sklen, c.amzdate, c.region, c.rlen, c.service, c.svlen,
                           ch->key))
        return luaL_error(L, "aio_aws.sigv4: OpenSSL HMAC failed");
    ch->closed = 0;
    memcpy(ch->prev, seed, 64);
    memcpy(ch->date, c.amzdate, 16);
    ch->scopelen = (size_t)snprintf(ch->scope, sizeof ch->scope, "%.8s/%.*s/%.*s/" SIGV4_TERMINATOR,
                                    c.amzdate, (int)c.rlen, c.region, (int)c.svlen, c.service);
    return 1;
}

/* Sign the next chunk: updates the chain; the string to sign is written
 * to sts (returns its length). */
static size_t sigv4_chunk_sign(lua_State *L, sigv4_chunker *ch, const char *data, size_t n, char *sts)
{
    sigv4_state *st = sigv4_state_get(L);
    unsigned char d[AIO_SHA256_LEN];
    size_t len = 0;
    memcpy(sts, SIGV4_CHUNK_ALGORITHM "\n", sizeof SIGV4_CHUNK_ALGORITHM), len += sizeof SIGV4_CHUNK_ALGORITHM;
    memcpy(sts + len, ch->date, 16), len += 16;
    sts[len++] = '\n';
    memcpy(sts + len, ch->scope, ch->scopelen), len += ch->scopelen;
    sts[len++] = '\n';
    memcpy(sts + len, ch->prev, 64), len += 64;
    sts[len++] = '\n';
    memcpy(sts + len, SIGV4_EMPTY_SHA256 "\n", 65), len += 65;
    if (!sigv4_sha256(st, data, n, d))
        luaL_error(L, "aio_aws.sigv4: OpenSSL SHA-256 failed");
    aio_crypto_hex(d, sizeof d, sts + len), len += 64;
    if (!sigv4_hmac(st, ch->key, sizeof ch->key, sts, len, d))
        luaL_error(L, "aio_aws.sigv4: OpenSSL HMAC failed");
    aio_crypto_hex(d, sizeof d, ch->prev);
    return len;
}

#define SIGV4_CHUNK_STS_MAX (sizeof SIGV4_CHUNK_ALGORITHM + 17 + SIGV4_MAX_SCOPE + 1 + 3 * 65)

/* c:sign_chunk(data) -> signature, string_to_sign */
static int sigv4_chunker_sign(lua_State *L)
{
    sigv4_chunker *ch = sigv4_chunker_check(L);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    char sts[SIGV4_CHUNK_STS_MAX];
    size_t len = sigv4_chunk_sign(L, ch, data, n, sts);
    lua_pushlstring(L, ch->prev, 64);
    lua_pushlstring(L, sts, len);
    return 2;
}

/* c:frame(data) -> hex(size) ";chunk-signature=" sig "\r\n" data "\r\n", signature */
static int sigv4_chunker_frame(lua_State *L)
{
    sigv4_chunker *ch = sigv4_chunker_check(L);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    char sts[SIGV4_CHUNK_STS_MAX], head[32];
    luaL_Buffer b;
    sigv4_chunk_sign(L, ch, data, n, sts);
    int hl = snprintf(head, sizeof head, "%zx;chunk-signature=", n);
    char *o = luaL_buffinitsize(L, &b, (size_t)hl + 64 + 2 + n + 2);
    memcpy(o, head, (size_t)hl);
    memcpy(o + hl, ch->prev, 64);
    memcpy(o + hl + 64, "\r\n", 2);
    memcpy(o + hl + 66, data, n);
    memcpy(o + hl + 66 + n, "\r\n", 2);
    luaL_pushresultsize(&b, (size_t)hl + 64 + 2 + n + 2);
    lua_pushlstring(L, ch->prev, 64);
    return 2;
}

static int sigv4_chunker_signature(lua_State *L)
{
    sigv4_chunker *ch = sigv4_chunker_check(L);
    lua_pushlstring(L, ch->prev, 64);
    return 1;
}

static int sigv4_chunker_gc(lua_State *L)
{
    sigv4_chunker_release((sigv4_chunker *)luaL_checkudata(L, 1, SIGV4_CHUNKER_MT));
    return 0;
}

static int sigv4_chunker_tostring(lua_State *L)
{
    sigv4_chunker *ch = (sigv4_chunker *)luaL_checkudata(L, 1, SIGV4_CHUNKER_MT);
    lua_pushfstring(L, "%s (%s): %p", SIGV4_CHUNKER_MT, ch->closed ? "closed" : "open", (void *)ch);
    return 1;
}

static const luaL_Reg sigv4_chunker_methods[] = {
    { "sign_chunk", sigv4_chunker_sign },
    { "frame", sigv4_chunker_frame },
    { "signature", sigv4_chunker_signature },
    { "close", sigv4_chunker_gc },
    { NULL, NULL },
};

static const luaL_Reg sigv4_funcs[] = {
    { "sigv4_sign", sigv4_sign },
    { "sigv4_chunker", sigv4_chunker_new },
    { NULL, NULL },
};

void aio_sigv4_open(lua_State *L)
{
    /* [core] */
    sigv4_state *st = (sigv4_state *)lua_newuserdatauv(L, sizeof *st, 0); /* [core, st] */
    memset(st, 0, sizeof *st);
    if (luaL_newmetatable(L, SIGV4_STATE_MT)) { /* [core, st, mt] */
        lua_pushcfunction(L, sigv4_state_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "aio_aws.sigv4 signer state");
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2); /* [core, st] */

    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac != NULL) {
        st->mac = EVP_MAC_CTX_new(mac); /* holds its own reference to mac */
        EVP_MAC_free(mac);
    }
    if (st->mac != NULL) {
        char digest[] = "SHA256";
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
        params[1] = OSSL_PARAM_construct_end();
        if (EVP_MAC_CTX_set_params(st->mac, params) != 1) {
            EVP_MAC_CTX_free(st->mac);
            st->mac = NULL;
        }
    }
    st->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    st->mdctx = EVP_MD_CTX_new();
    if (st->mac == NULL || st->sha256 == NULL || st->mdctx == NULL)
        luaL_error(L, "aio_aws.core: OpenSSL has no HMAC-SHA256");

    /* The chunk signer's metatable; its methods share the state. */
    if (luaL_newmetatable(L, SIGV4_CHUNKER_MT)) {  /* [core, st, cmt] */
        lua_pushcfunction(L, sigv4_chunker_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sigv4_chunker_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, sigv4_chunker_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlibtable(L, sigv4_chunker_methods); /* [core, st, cmt, methods] */
        lua_pushvalue(L, -3);                       /* [core, st, cmt, methods, st] */
        luaL_setfuncs(L, sigv4_chunker_methods, 1); /* [core, st, cmt, methods] */
        lua_setfield(L, -2, "__index");             /* [core, st, cmt] */
    }
    lua_pop(L, 1);                    /* [core, st] */
    luaL_setfuncs(L, sigv4_funcs, 1); /* [core]: the state is their upvalue */
}
