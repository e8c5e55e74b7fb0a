/* C helpers of crypto.c that the SigV4 signer (sigv4.c) shares.
 * Not part of the Lua API; hidden by -fvisibility=hidden like everything
 * else in the core. All names start with aio_crypto_. */
#ifndef AIO_CRYPTO_H
#define AIO_CRYPTO_H

#include <stddef.h>

#define AIO_SHA256_LEN 32

/* Lower-case hex of n bytes into out (2n bytes, no terminating NUL). */
void aio_crypto_hex(const unsigned char *in, size_t n, char *out);

/* Value of one hex digit (either case), or -1. */
int aio_crypto_unhex(int c);

/* RFC 3986 section 2.1/2.3 percent-encoding: bytes of the unreserved set
 * A-Z a-z 0-9 - . _ ~ are copied, every other byte becomes %XX with
 * upper-case hex; '/' is copied unless encode_slash. out needs room for
 * 3n bytes. Returns the number of bytes written. */
size_t aio_crypto_uri_encode(char *out, const char *s, size_t n, int encode_slash);

#endif
