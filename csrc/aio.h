/* Internal header of the aio_aws.core C module: how the parts register.
 * Each part's open function adds its functions to the module table that is
 * on top of the stack (stack in: [core], stack out: [core]). */
#ifndef AIO_H
#define AIO_H

#include <lua.h>
#include <lauxlib.h>

/* Everything is hidden (-fvisibility=hidden) except what is marked. */
#define AIO_EXPORT __attribute__((visibility("default")))

void aio_crypto_open(lua_State *L);  /* crypto.c: hashes, hmac, base64, hex, uri */
void aio_sigv4_open(lua_State *L);   /* sigv4.c: SigV4 signing and presigning */
void aio_xml_open(lua_State *L);     /* xml.c: expat decoding, XML writer */
void aio_runtime_open(lua_State *L); /* runtime.c: loop, tasks, timers, driver */
void aio_http_open(lua_State *L);    /* http.c: libcurl transfers on the loop */
void aio_http_server_open(lua_State *L); /* http_server.c: HTTP/1.1 server on the loop */
void aio_signal_open(lua_State *L);  /* signal.c: tasks wait for SIGINT/SIGTERM */
void aio_process_open(lua_State *L); /* process.c: child processes, pipes read on the loop */

#endif
