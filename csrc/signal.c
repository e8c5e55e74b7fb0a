/* signal.c: let a task wait for POSIX signals (SIGINT, SIGTERM, ...) on
 * the runtime's libev loop, so `aio-aws local` can shut down cleanly
 * without a blocking call or an async-unsafe Lua signal handler.
 *
 * Lua API (module aio_aws.core):
 *   signal_wait(task, {"INT", "TERM", ...}) -> waiter
 *     Arms one ev_signal watcher per name for the running task, which must
 *     then yield (aio_aws.async suspend); it resumes with the name of the
 *     first signal that arrives ("TERM"). The watchers stop at once, so
 *     the next such signal gets the default action again (a second Ctrl-C
 *     during a slow shutdown still kills the process).
 *   waiter:cancel()  disarm; a task waiting on it gets (nil, "Cancelled").
 *
 * libev delivers the signal through its own async-safe handler and a
 * pipe/eventfd, then calls sig_cb from the loop; sig_cb only schedules the
 * task (aio_task_complete never calls Lua). Signals belong to the default
 * loop, which is the runtime's loop unless a host loop was embedded (the
 * ev.pod "SIGNAL WATCHERS" rule: one loop per signal). */
#include "aio.h"
#include "runtime.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>

#define SIG_MT "aio_aws.signal_waiter"
#define SIG_MAX 8

typedef struct {
    aio_op op;
    aio_rt *rt;
    aio_task *task;
    ev_signal w[SIG_MAX];
    int n;     /* watchers initialised */
    int armed;
    int got;   /* index of the signal that arrived, -1 before */
    int ref;   /* anchors the userdata (uservalue 1 = task) while armed */
} sig_waiter;

static const struct {
    const char *name;
    int signum;
} sig_names[] = {
    {"INT", SIGINT}, {"TERM", SIGTERM}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {NULL, 0},
};

static const char *sig_name(int signum)
{
    for (int i = 0; sig_names[i].name != NULL; i++)
        if (sig_names[i].signum == signum)
            return sig_names[i].name;
    return "?";
}

static void sig_unref(sig_waiter *s)
{
    if (s->ref != LUA_NOREF) {
        aio_rt_unref(s->rt, s->ref);
        s->ref = LUA_NOREF;
    }
}

static void sig_stop(sig_waiter *s)
{
    if (!s->armed)
        return;
    for (int i = 0; i < s->n; i++)
        ev_signal_stop(s->rt->loop, &s->w[i]);
    s->armed = 0;
}

static int sig_deliver(lua_State *L, aio_op *op)
{
    sig_waiter *s = (sig_waiter *)op;
    sig_unref(s);
    lua_pushstring(L, s->got >= 0 ? sig_name(s->w[s->got].signum) : "?");
    return 1;
}

static void sig_drop(aio_rt *rt, aio_op *op)
{
    (void)rt;
    sig_unref((sig_waiter *)op);
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    sig_waiter *s = w->data;
    if (!s->armed)
        return;
    s->got = (int)(w - s->w);
    sig_stop(s);
    if (!aio_task_complete(s->task, &s->op))
        sig_unref(s);
}

/** signal_wait(task, names) -> waiter */
static int sig_wait(lua_State *L)
{
    aio_task *t = aio_task_running(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int signums[SIG_MAX];
    int n = 0;
    for (lua_Integer i = 1;; i++) {
        if (lua_rawgeti(L, 2, i) == LUA_TNIL) {
            lua_pop(L, 1);
            break;
        }
        const char *name = lua_tostring(L, -1);
        if (name == NULL || lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 2, "signal names must be strings");
        int k;
        for (k = 0; sig_names[k].name != NULL; k++)
            if (strcmp(sig_names[k].name, name) == 0)
                break;
        if (sig_names[k].name == NULL)
            return luaL_error(L, "aio_aws.signal_wait: unknown signal '%s' "
                                 "(INT, TERM, HUP, QUIT, USR1, USR2)", name);
        if (n == SIG_MAX)
            return luaL_argerror(L, 2, "too many signals");
        signums[n++] = sig_names[k].signum;
        lua_pop(L, 1);
    }
    luaL_argcheck(L, n > 0, 2, "at least one signal name expected");

    sig_waiter *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    s->ref = LUA_NOREF;
    s->got = -1;
    luaL_setmetatable(L, SIG_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* keep the task alive with the waiter */
    s->op.deliver = sig_deliver;
    s->op.drop = sig_drop;
    s->rt = t->rt;
    s->task = t;
    for (int i = 0; i < n; i++) {
        ev_signal_init(&s->w[i], sig_cb, signums[i]);
        s->w[i].data = s;
        ev_signal_start(s->rt->loop, &s->w[i]);
    }
    s->n = n;
    s->armed = 1;
    lua_pushvalue(L, -1);
    s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/** waiter:cancel() */
static int sig_cancel(lua_State *L)
{
    sig_waiter *s = luaL_checkudata(L, 1, SIG_MT);
    if (s->rt->closed)
        return 0;
    sig_stop(s);
    aio_task_detach(L, s->task, &s->op);
    sig_unref(s);
    return 0;
}

static int sig_gc(lua_State *L)
{
    sig_waiter *s = luaL_checkudata(L, 1, SIG_MT);
    if (!s->rt->closed)
        sig_stop(s);
    return 0;
}

void aio_signal_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"cancel", sig_cancel},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, SIG_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, sig_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sig_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, sig_wait);
    lua_setfield(L, -2, "signal_wait");
}
