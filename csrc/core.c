/* luaopen_aio_aws_core: registers the parts of the C core and nothing else
 * (the luasystem core.c pattern). See aio.h for the part list. */
#include "aio.h"

AIO_EXPORT int luaopen_aio_aws_core(lua_State *L);

int luaopen_aio_aws_core(lua_State *L)
{
    lua_newtable(L);
    aio_crypto_open(L);
    aio_sigv4_open(L);
    aio_xml_open(L);
    aio_runtime_open(L);
    aio_http_open(L);
    aio_http_server_open(L);
    aio_signal_open(L);
    aio_process_open(L);
    lua_pushliteral(L, "aio_aws.core 0.1");
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
