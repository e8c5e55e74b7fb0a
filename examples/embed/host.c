/* A host program with its own libev loop that embeds Lua and aio_aws.
 *
 *   host SCRIPT [ARGS...]
 *
 * It hands its loop to aio_aws (aio_aws_set_loop, before the script first
 * uses the module), runs the script, which starts tasks with aws.spawn and
 * returns, then runs its own loop until nothing is left: the tasks progress
 * inside the host's ev_run, next to the host's own watchers (a timer here).
 * Build: cc host.c -I../../csrc $(pkg-config --cflags --libs lua5.4) -lev */
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>
#include <lauxlib.h>
#include <lualib.h>

#include "aio_aws.h"

static int ticks;

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    ticks++;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "host: cannot create a libev loop\n");
        return 1;
    }
    /* The host's own work on the same loop: a 10 ms ticker. */
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    ev_unref(loop); /* the ticker alone must not keep the loop running */

    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (aio_aws_set_loop(L, loop) != 0) {
        fprintf(stderr, "host: aio_aws already initialised\n");
        return 1;
    }
    int status = luaL_loadfile(L, argv[1]);
    if (status == LUA_OK) {
        for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 0);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
        lua_close(L);
        ev_loop_destroy(loop);
        return 1;
    }
    /* The host runs its loop; aio_aws tasks are resumed from inside it. */
    ev_run(loop, 0);
    printf("host: loop finished after %d ticks\n", ticks);

    /* The script may leave a status for the host in a global. */
    lua_getglobal(L, "HOST_EXIT");
    int code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    lua_close(L);       /* stops aio_aws's watchers; the loop stays the host's */
    ev_ref(loop);
    ev_timer_stop(loop, &tick);
    ev_loop_destroy(loop);
    return code;
}
