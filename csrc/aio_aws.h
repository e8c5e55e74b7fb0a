/* Public C API of aio_aws.core for programs that embed Lua.
 *
 * By default the module owns its libev loop (libev's default loop, which
 * is also the only one that can watch child processes). A host that runs
 * its own libev loop hands it in before the module is first used:
 *
 *     lua_State *L = luaL_newstate(); luaL_openlibs(L);
 *     aio_aws_set_loop(L, my_loop);          // before any aio_aws use
 *     ... run a script that calls aws.spawn(...) ...
 *     ev_run(my_loop, 0);                    // tasks progress inside it
 *
 * The host keeps ownership of the loop; aio_aws only adds watchers to it
 * and never destroys it. Tasks are resumed from an ev_check watcher of
 * the host's loop. See examples/embed/. */
#ifndef AIO_AWS_H
#define AIO_AWS_H

#include <lua.h>
#include <ev.h>

#define AIO_AWS_RUNTIME_KEY "aio_aws.runtime_instance"
#define AIO_AWS_LOOP_KEY "aio_aws.host_loop"

/* Header-only, so the host needs no link-time dependency on core.so (which
 * Lua loads later with dlopen): the loop travels in the Lua registry.
 * Returns 0, or -1 if the runtime of this state already exists (too late). */
static inline int aio_aws_set_loop(lua_State *L, struct ev_loop *loop)
{
    int exists = lua_getfield(L, LUA_REGISTRYINDEX, AIO_AWS_RUNTIME_KEY) != LUA_TNIL;
    lua_pop(L, 1);
    if (exists)
        return -1;
    lua_pushlightuserdata(L, loop);
    lua_setfield(L, LUA_REGISTRYINDEX, AIO_AWS_LOOP_KEY);
    return 0;
}

#endif
