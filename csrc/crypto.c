/* crypto.c: the hashes, MACs, checksums and encodings that the AWS layer
 * needs, on OpenSSL 3's EVP API (no deprecated low-level calls).
 *
 * Lua API (module aio_aws.core):
 *   sha256(s) sha1(s) md5(s)           raw digest bytes
 *   sha256_hex(s) md5_hex(s)           lower-case hex digest
 *   md5_base64(s)                      base64 MD5, the Content-MD5 value (RFC 1864)
 *   hmac_sha256(key, msg)              raw 32-byte HMAC (RFC 2104)
 *   crc32(s [, prev]) crc32c(s [, prev])  integer checksum; prev continues one
 *   base64_encode(s) hex_encode(s)     string
 *   base64_decode(s) hex_decode(s)     string, or nil, errmsg on invalid input
 *   uri_encode(s [, encode_slash])     RFC 3986 percent-encoding
 *   uri_decode(s [, plus])             %XX -> byte (malformed kept); plus: '+' -> ' '
 *   secure_equals(a, b)                constant-time string comparison
 *   hasher(alg)                        streaming digest object ("aio_aws.hasher")
 *
 * Misuse (wrong argument types, a closed hasher) raises; invalid encoded
 * input returns nil, errmsg. Nothing here holds malloc'd memory across a
 * call that can raise: results are built in luaL_Buffer or fixed arrays,
 * and the only heap object (a hasher's EVP_MD_CTX) is owned by a userdata
 * that exists before the context is allocated, so __gc frees it whatever
 * happens. Key-derived bytes left in local arrays are wiped with
 * OPENSSL_cleanse. */
#include "aio.h"
#include "crypto.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define CRYPTO_HASHER_MT "aio_aws.hasher"

/* ------------------------------------------------------------------ */
/* Digest implementations: fetched once per Lua state (an explicit fetch
 * spares OpenSSL 3 the implicit fetch it does on every EVP_DigestInit_ex
 * with the legacy EVP_sha256() objects) and freed by the state's __gc. A
 * process-wide cache would outlive the module: Lua unloads the library at
 * lua_close, leaving the fetched objects unreachable. */

#define CRYPTO_STATE_MT "aio_aws.crypto_state"

typedef struct {
    EVP_MD *sha256, *sha1, *md5; /* NULL when OpenSSL lacks one (MD5 under FIPS) */
} crypto_state;

static int crypto_state_gc(lua_State *L)
{
    crypto_state *cs = (crypto_state *)luaL_checkudata(L, 1, CRYPTO_STATE_MT);
    EVP_MD_free(cs->sha256);
    EVP_MD_free(cs->sha1);
    EVP_MD_free(cs->md5);
    cs->sha256 = cs->sha1 = cs->md5 = NULL;
    return 0;
}

static crypto_state *crypto_state_get(lua_State *L)
{
    return (crypto_state *)lua_touserdata(L, lua_upvalueindex(1));
}

/* CRC tables are plain data: computed once per process. */
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;

/* Slicing-by-8 tables for the two reflected CRC-32 polynomials:
 * IEEE 802.3 / zlib (0xEDB88320) and Castagnoli (0x82F63B78, RFC 3720
 * section 12.1 and appendix B.4). Table k gives the CRC of a byte followed
 * by k zero bytes, which lets the loop fold 8 input bytes per step. */
static uint32_t crypto_crc32_tab[8][256];
static uint32_t crypto_crc32c_tab[8][256];

static void crypto_crc_table(uint32_t tab[8][256], uint32_t poly)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
        tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            tab[t][i] = (tab[t - 1][i] >> 8) ^ tab[0][tab[t - 1][i] & 0xff];
}

static void crypto_init_once(void)
{
    crypto_crc_table(crypto_crc32_tab, 0xEDB88320u);
    crypto_crc_table(crypto_crc32c_tab, 0x82F63B78u);
}

/* Running CRC with zlib's convention: crc(b, crc(a)) == crc(a .. b), and
 * crc("", prev) == prev. The pre- and post-inversion make that work. */
static uint32_t crypto_crc_update(uint32_t tab[8][256], uint32_t crc,
                                  const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8
                             | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8
                      | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = tab[7][lo & 0xff] ^ tab[6][(lo >> 8) & 0xff]
              ^ tab[5][(lo >> 16) & 0xff] ^ tab[4][lo >> 24]
              ^ tab[3][hi & 0xff] ^ tab[2][(hi >> 8) & 0xff]
              ^ tab[1][(hi >> 16) & 0xff] ^ tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ------------------------------------------------------------------ */
/* Encodings */

static const char crypto_hexdigits[] = "0123456789abcdef";
static const char crypto_HEXDIGITS[] = "0123456789ABCDEF";

void aio_crypto_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = crypto_hexdigits[in[i] >> 4];
        out[2 * i + 1] = crypto_hexdigits[in[i] & 15];
    }
}

int aio_crypto_unhex(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". This is
 * also the set the SigV4 canonical request leaves unencoded ("URI-encode
 * each parameter name and value", create-signed-request.html). */
static int crypto_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
        || c == '~';
}

size_t aio_crypto_uri_encode(char *out, const char *s, size_t n, int encode_slash)
{
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (crypto_unreserved(c) || (c == '/' && !encode_slash)) {
            *o++ = (char)c;
        } else {
            /* Upper-case hex: RFC 3986 section 2.1 "should use uppercase",
             * and SigV4 requires it. */
            *o++ = '%';
            *o++ = crypto_HEXDIGITS[c >> 4];
            *o++ = crypto_HEXDIGITS[c & 15];
        }
    }
    return (size_t)(o - out);
}

/* RFC 4648 section 4 alphabet. */
static const char crypto_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t crypto_b64_encode(char *out, const unsigned char *in, size_t n)
{
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = crypto_b64[v >> 18];
        *o++ = crypto_b64[(v >> 12) & 63];
        *o++ = crypto_b64[(v >> 6) & 63];
        *o++ = crypto_b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = crypto_b64[v >> 18];
        *o++ = crypto_b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? crypto_b64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    return (size_t)(o - out);
}

static int crypto_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* ------------------------------------------------------------------ */
/* One-shot digests */

enum { CRYPTO_RAW, CRYPTO_HEX, CRYPTO_BASE64 };

/* Push n digest bytes in the requested form. */
static void crypto_push_digest(lua_State *L, const unsigned char *d, size_t n, int form)
{
    char buf[2 * EVP_MAX_MD_SIZE];
    if (form == CRYPTO_HEX) {
        aio_crypto_hex(d, n, buf);
        lua_pushlstring(L, buf, 2 * n);
    } else if (form == CRYPTO_BASE64) {
        lua_pushlstring(L, buf, crypto_b64_encode(buf, d, n));
    } else {
        lua_pushlstring(L, (const char *)d, n);
    }
}

enum { CRYPTO_ALG_SHA256, CRYPTO_ALG_SHA1, CRYPTO_ALG_MD5, CRYPTO_ALG_CRC32, CRYPTO_ALG_CRC32C };
static const char *const crypto_alg_names[] = { "sha256", "sha1", "md5", "crc32", "crc32c", NULL };

static const EVP_MD *crypto_md(lua_State *L, int alg)
{
    crypto_state *cs = crypto_state_get(L);
    const EVP_MD *md = alg == CRYPTO_ALG_SHA256 ? cs->sha256 : alg == CRYPTO_ALG_SHA1 ? cs->sha1 : cs->md5;
    if (md == NULL)
        luaL_error(L, "%s is not available from OpenSSL", crypto_alg_names[alg]);
    return md;
}

static int crypto_digest(lua_State *L, int alg, int form)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    if (EVP_Digest(s, n, out, &outlen, crypto_md(L, alg), NULL) != 1)
        return luaL_error(L, "%s: OpenSSL digest failed", crypto_alg_names[alg]);
    crypto_push_digest(L, out, outlen, form);
    return 1;
}

static int crypto_sha256(lua_State *L) { return crypto_digest(L, CRYPTO_ALG_SHA256, CRYPTO_RAW); }
static int crypto_sha256_hex(lua_State *L) { return crypto_digest(L, CRYPTO_ALG_SHA256, CRYPTO_HEX); }
static int crypto_sha1(lua_State *L) { return crypto_digest(L, CRYPTO_ALG_SHA1, CRYPTO_RAW); }
static int crypto_md5(lua_State *L) { return crypto_digest(L, CRYPTO_ALG_MD5, CRYPTO_RAW); }
static int crypto_md5_hex(lua_State *L) { return crypto_digest(L, CRYPTO_ALG_MD5, CRYPTO_HEX); }
/* Content-MD5 is the base64 of the raw 128-bit digest (RFC 1864). */
static int crypto_md5_base64(lua_State *L) { return crypto_digest(L, CRYPTO_ALG_MD5, CRYPTO_BASE64); }

/* hmac_sha256(key, msg) -> raw 32 bytes (RFC 2104 with SHA-256; the test
 * vectors are RFC 4231). EVP_Q_mac is OpenSSL 3's one-shot MAC; it wipes
 * its own copy of the key. Our copy of the output is wiped too, since
 * callers use this to derive keys (the SigV4 key chain). */
static int crypto_hmac_sha256(lua_State *L)
{
    size_t klen, mlen, outlen = 0;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char out[AIO_SHA256_LEN];
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, klen,
                  (const unsigned char *)msg, mlen, out, sizeof out, &outlen) == NULL
        || outlen != sizeof out)
        return luaL_error(L, "hmac_sha256: OpenSSL MAC failed");
    lua_pushlstring(L, (const char *)out, sizeof out);
    OPENSSL_cleanse(out, sizeof out);
    return 1;
}

/* crc32(s [, prev]) / crc32c(s [, prev]) -> integer in [0, 2^32). */
static int crypto_crc(lua_State *L, uint32_t tab[8][256])
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer prev = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, prev >= 0 && prev <= 0xFFFFFFFF, 2, "checksum out of range [0, 2^32)");
    lua_pushinteger(L, crypto_crc_update(tab, (uint32_t)prev, (const unsigned char *)s, n));
    return 1;
}

static int crypto_crc32(lua_State *L) { return crypto_crc(L, crypto_crc32_tab); }
static int crypto_crc32c(lua_State *L) { return crypto_crc(L, crypto_crc32c_tab); }

/* ------------------------------------------------------------------ */
/* Encodings exposed to Lua */

static int crypto_base64_encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    if (n > (((size_t)-1) / 4 - 1) * 3)
        return luaL_error(L, "base64_encode: input too large");
    char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
    luaL_pushresultsize(&b, crypto_b64_encode(out, s, n));
    return 1;
}

/* Strict RFC 4648 decoding: the length must be a multiple of 4, padding
 * may only close the last quantum, and nothing outside the alphabet
 * (whitespace included) is accepted. Returns nil, errmsg otherwise. */
static int crypto_base64_decode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    size_t pad = 0;
    luaL_Buffer b;
    if (n % 4 != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid base64: length is not a multiple of 4");
        return 2;
    }
    if (n > 0 && s[n - 1] == '=')
        pad = (s[n - 2] == '=') ? 2 : 1;
    char *out = luaL_buffinitsize(L, &b, n / 4 * 3);
    char *o = out;
    for (size_t i = 0; i < n; i += 4) {
        int last = (i + 4 == n);
        int v[4];
        for (int k = 0; k < 4; k++) {
            if (last && k >= 4 - (int)pad) {
                v[k] = 0;
                continue;
            }
            v[k] = crypto_b64_value(s[i + k]);
            if (v[k] < 0) {
                /* Nothing pushed since luaL_buffinitsize: drop the buffer
                 * by resetting the stack to its state before it. */
                lua_settop(L, 1);
                lua_pushnil(L);
                lua_pushfstring(L, "invalid base64: bad character at position %I",
                                (lua_Integer)(i + k + 1));
                return 2;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        *o++ = (char)(w >> 16);
        if (!(last && pad == 2))
            *o++ = (char)(w >> 8);
        if (!(last && pad >= 1))
            *o++ = (char)w;
    }
    luaL_pushresultsize(&b, (size_t)(o - out));
    return 1;
}

static int crypto_hex_encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    if (n > ((size_t)-1) / 2)
        return luaL_error(L, "hex_encode: input too large");
    char *out = luaL_buffinitsize(L, &b, 2 * n);
    aio_crypto_hex(s, n, out);
    luaL_pushresultsize(&b, 2 * n);
    return 1;
}

static int crypto_hex_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    if (n % 2 != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid hex: odd length");
        return 2;
    }
    char *out = luaL_buffinitsize(L, &b, n / 2);
    for (size_t i = 0; i < n; i += 2) {
        int hi = aio_crypto_unhex((unsigned char)s[i]);
        int lo = aio_crypto_unhex((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0) {
            lua_settop(L, 1);
            lua_pushnil(L);
            lua_pushfstring(L, "invalid hex: bad digit at position %I",
                            (lua_Integer)(i + (hi < 0 ? 1 : 2)));
            return 2;
        }
        out[i / 2] = (char)(hi << 4 | lo);
    }
    luaL_pushresultsize(&b, n / 2);
    return 1;
}

/* uri_encode(s [, encode_slash]): '/' is kept unless encode_slash is true
 * (a canonical URI keeps it, a query name or value encodes it). */
static int crypto_uri_encode_l(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int encode_slash = lua_toboolean(L, 2);
    luaL_Buffer b;
    if (n > ((size_t)-1) / 3)
        return luaL_error(L, "uri_encode: input too large");
    char *out = luaL_buffinitsize(L, &b, 3 * n);
    luaL_pushresultsize(&b, aio_crypto_uri_encode(out, s, n, encode_slash));
    return 1;
}

/* secure_equals(a, b): compares two strings in time that depends only on
 * their lengths (CRYPTO_memcmp), for checking signatures and MACs. */
static int crypto_secure_equals(lua_State *L)
{
    size_t na, nb;
    const char *a = luaL_checklstring(L, 1, &na);
    const char *b = luaL_checklstring(L, 2, &nb);
    lua_pushboolean(L, na == nb && CRYPTO_memcmp(a, b, na) == 0);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Streaming hasher: hasher(alg) -> userdata "aio_aws.hasher"
 *   h:update(s) -> h      h:digest() -> raw      h:hexdigest() -> hex
 *   h:close()             (also __gc and __close; idempotent)
 * digest/hexdigest finish the hasher: any later use raises. CRC results
 * are 4 bytes big-endian, the form S3's x-amz-checksum-crc32/crc32c
 * headers base64-encode. */

typedef struct {
    int alg;
    int closed;
    EVP_MD_CTX *ctx; /* digests only; NULL for CRCs and once closed */
    uint32_t crc;
} crypto_hasher;

/* The single close path (the liolib f_gc model): frees the context (which
 * wipes the digest state) and marks the object closed. Safe to repeat. */
static void crypto_hasher_release(crypto_hasher *h)
{
    if (h->ctx != NULL) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
    }
    h->crc = 0;
    h->closed = 1;
}

static crypto_hasher *crypto_hasher_check(lua_State *L)
{
    crypto_hasher *h = (crypto_hasher *)luaL_checkudata(L, 1, CRYPTO_HASHER_MT);
    if (h->closed)
        luaL_error(L, "attempt to use a closed %s hasher (digest already taken or closed)",
                   crypto_alg_names[h->alg]);
    return h;
}

static int crypto_hasher_new(lua_State *L)
{
    int alg = luaL_checkoption(L, 1, NULL, crypto_alg_names);
    const EVP_MD *md = alg <= CRYPTO_ALG_MD5 ? crypto_md(L, alg) : NULL;
    /* The userdata exists (with its __gc) before the context is allocated,
     * so an error below cannot leak the context. */
    crypto_hasher *h = (crypto_hasher *)lua_newuserdatauv(L, sizeof *h, 0);
    h->alg = alg;
    h->closed = 0;
    h->ctx = NULL;
    h->crc = 0;
    luaL_setmetatable(L, CRYPTO_HASHER_MT);
    if (md != NULL) {
        h->ctx = EVP_MD_CTX_new();
        if (h->ctx == NULL || EVP_DigestInit_ex2(h->ctx, md, NULL) != 1)
            return luaL_error(L, "hasher: OpenSSL digest init failed");
    }
    return 1;
}

static int crypto_hasher_update(lua_State *L)
{
    crypto_hasher *h = crypto_hasher_check(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (h->ctx != NULL) {
        if (EVP_DigestUpdate(h->ctx, s, n) != 1)
            return luaL_error(L, "hasher: OpenSSL digest update failed");
    } else {
        h->crc = crypto_crc_update(h->alg == CRYPTO_ALG_CRC32 ? crypto_crc32_tab : crypto_crc32c_tab,
                                   h->crc, (const unsigned char *)s, n);
    }
    lua_settop(L, 1); /* [h] */
    return 1;
}

static int crypto_hasher_finish(lua_State *L, int form)
{
    crypto_hasher *h = crypto_hasher_check(L);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (h->ctx != NULL) {
        int ok = EVP_DigestFinal_ex(h->ctx, out, &n) == 1;
        crypto_hasher_release(h);
        if (!ok)
            return luaL_error(L, "hasher: OpenSSL digest final failed");
    } else {
        out[0] = (unsigned char)(h->crc >> 24);
        out[1] = (unsigned char)(h->crc >> 16);
        out[2] = (unsigned char)(h->crc >> 8);
        out[3] = (unsigned char)h->crc;
        n = 4;
        crypto_hasher_release(h);
    }
    crypto_push_digest(L, out, n, form);
    return 1;
}

static int crypto_hasher_digest(lua_State *L) { return crypto_hasher_finish(L, CRYPTO_RAW); }
static int crypto_hasher_hexdigest(lua_State *L) { return crypto_hasher_finish(L, CRYPTO_HEX); }

static int crypto_hasher_gc(lua_State *L)
{
    crypto_hasher_release((crypto_hasher *)luaL_checkudata(L, 1, CRYPTO_HASHER_MT));
    return 0;
}

static int crypto_hasher_tostring(lua_State *L)
{
    crypto_hasher *h = (crypto_hasher *)luaL_checkudata(L, 1, CRYPTO_HASHER_MT);
    lua_pushfstring(L, "%s (%s%s): %p", CRYPTO_HASHER_MT, crypto_alg_names[h->alg],
                    h->closed ? ", closed" : "", (void *)h);
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* uri_decode(s [, plus]): Python's urllib.parse.unquote (plus: unquote_plus,
 * as botocore decodes S3 listings with EncodingType=url). A '%' not
 * followed by two hex digits is kept as is. Bytes out, no UTF-8 check. */
static int crypto_uri_decode_l(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int plus = lua_toboolean(L, 2);
    const char *pct = memchr(s, '%', n);
    if (!pct && !(plus && memchr(s, '+', n))) { lua_settop(L, 1); return 1; }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int hi, lo;
        if (c == '%' && i + 2 < n
            && (hi = hexval((unsigned char)s[i + 1])) >= 0 && (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static const luaL_Reg crypto_hasher_methods[] = {
    { "update", crypto_hasher_update },
    { "digest", crypto_hasher_digest },
    { "hexdigest", crypto_hasher_hexdigest },
    { "close", crypto_hasher_gc },
    { NULL, NULL },
};

static const luaL_Reg crypto_hasher_meta[] = {
    { "__gc", crypto_hasher_gc },
    { "__close", crypto_hasher_gc },
    { "__tostring", crypto_hasher_tostring },
    { NULL, NULL },
};

static const luaL_Reg crypto_funcs[] = {
    { "sha256", crypto_sha256 },
    { "sha256_hex", crypto_sha256_hex },
    { "sha1", crypto_sha1 },
    { "md5", crypto_md5 },
    { "md5_hex", crypto_md5_hex },
    { "md5_base64", crypto_md5_base64 },
    { "hmac_sha256", crypto_hmac_sha256 },
    { "crc32", crypto_crc32 },
    { "crc32c", crypto_crc32c },
    { "base64_encode", crypto_base64_encode },
    { "base64_decode", crypto_base64_decode },
    { "hex_encode", crypto_hex_encode },
    { "hex_decode", crypto_hex_decode },
    { "uri_encode", crypto_uri_encode_l },
    { "uri_decode", crypto_uri_decode_l },
    { "secure_equals", crypto_secure_equals },
    { "hasher", crypto_hasher_new },
    { NULL, NULL },
};

void aio_crypto_open(lua_State *L)
{
    pthread_once(&crypto_once, crypto_init_once);
    /* stack: [core] */
    if (luaL_newmetatable(L, CRYPTO_HASHER_MT)) { /* [core, mt] */
        luaL_setfuncs(L, crypto_hasher_meta, 0);
        luaL_newlib(L, crypto_hasher_methods); /* [core, mt, methods] */
        lua_setfield(L, -2, "__index");        /* [core, mt] */
    }
    lua_pop(L, 1); /* [core] */

    crypto_state *cs = (crypto_state *)lua_newuserdatauv(L, sizeof *cs, 0); /* [core, cs] */
    memset(cs, 0, sizeof *cs);
    if (luaL_newmetatable(L, CRYPTO_STATE_MT)) { /* [core, cs, smt] */
        lua_pushcfunction(L, crypto_state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2); /* [core, cs]: __gc set before the fetches */
    cs->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    cs->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    cs->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    if (cs->sha256 == NULL)
        luaL_error(L, "aio_aws.core: OpenSSL has no SHA-256 implementation");
    luaL_setfuncs(L, crypto_funcs, 1); /* [core]: the state is their upvalue */
}
