/* The task runtime: libev loop, ready queue, dispatcher, sleep timers and
 * the loop drivers run()/step(), plus pollfd()/timeout() for Lua hosts whose
 * loop is not libev (the cqueues model). See runtime.h for the design and
 * STYLE.md s5 for the rules followed when resuming coroutines from C. */
#include "runtime.h"
#include "aio_aws.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stddef.h>
#include <time.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define RT_MT    "aio_aws.runtime"
#define TASK_MT  "aio_aws.task"
#define TIMER_MT "aio_aws.timer"
#define HANDLER_KEY "aio_aws.task_error_handler"
#define LASTERR_KEY "aio_aws.task_last_error"

/* What a task yields to say "I am waiting for an aio_aws op". Any other
 * yield is a foreign yield and fails the task (STYLE.md s5.5). */
static char rt_sentinel;

/* Runtimes (Lua states) using libev's default loop. The last one to close
 * destroys it: Lua unloads this module (and libev) at lua_close, which would
 * otherwise orphan the loop's memory and its signal handlers. */
static int rt_default_users;

static void rt_dispatch(aio_rt *rt, lua_State *from);

/* ------------------------------------------------------------------ */
/* ready queue                                                          */

static void rt_enqueue(aio_rt *rt, aio_task *t)
{
    t->next = NULL;
    if (rt->ready_tail) rt->ready_tail->next = t; else rt->ready_head = t;
    rt->ready_tail = t;
    /* An active idle watcher makes ev_run poll without blocking, so the
     * check watcher dispatches on the next iteration (libev docs, ev_idle
     * and ev_check used together). */
    if (!ev_is_active(&rt->idle))
        ev_idle_start(rt->loop, &rt->idle);
}

static aio_task *rt_dequeue(aio_rt *rt)
{
    aio_task *t = rt->ready_head;
    if (t) {
        rt->ready_head = t->next;
        if (!rt->ready_head) rt->ready_tail = NULL;
        t->next = NULL;
    }
    return t;
}

static void rt_unqueue(aio_rt *rt, aio_task *t)
{
    aio_task **pp = &rt->ready_head, *prev = NULL;
    while (*pp && *pp != t) { prev = *pp; pp = &(*pp)->next; }
    if (!*pp) return;
    *pp = t->next;
    if (rt->ready_tail == t) rt->ready_tail = prev;
    t->next = NULL;
}

int aio_task_complete(aio_task *t, aio_op *op)
{
    if (t->state != AIO_T_SUSPENDED || t->rt->closed)
        return 0;
    t->op = op;
    t->nvals = 0;
    t->state = AIO_T_READY;
    rt_enqueue(t->rt, t);
    return 1;
}

void aio_task_detach(lua_State *L, aio_task *t, aio_op *op)
{
    if (t->state != AIO_T_READY || t->op != op)
        return;
    t->op = NULL;
    /* Build on L, then move: never allocate on a suspended thread (s5.4). */
    luaL_checkstack(L, 2, NULL);
    if (!lua_checkstack(t->co, 2))
        luaL_error(L, "aio_aws: task stack overflow");
    lua_pushnil(L);
    lua_pushliteral(L, "Cancelled");
    lua_xmove(L, t->co, 2);
    t->nvals = 2;
}

void aio_rt_unref(aio_rt *rt, int ref)
{
    lua_State *L = rt->driver ? rt->driver : rt->L;
    if (ref != LUA_NOREF && ref != LUA_REFNIL && lua_checkstack(L, 2))
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

void aio_rt_add_source(aio_rt *rt, aio_source *src)
{
    if (src->linked) return;
    src->prev = NULL;
    src->next = rt->sources;
    if (rt->sources) rt->sources->prev = src;
    rt->sources = src;
    src->linked = 1;
    if (rt->mirror_fd >= 0 && src->mirror) src->mirror(src);
}

void aio_rt_remove_source(aio_rt *rt, aio_source *src)
{
    if (!src->linked) return;
    if (src->prev) src->prev->next = src->next; else rt->sources = src->next;
    if (src->next) src->next->prev = src->prev;
    src->prev = src->next = NULL;
    src->linked = 0;
}

/* ------------------------------------------------------------------ */
/* finishing and failing tasks                                          */

static void rt_finish(aio_rt *rt, aio_task *t)
{
    if (t->state == AIO_T_DEAD) return;
    if (t->state == AIO_T_READY) rt_unqueue(rt, t);
    if (t->op) { aio_op *op = t->op; t->op = NULL; op->drop(rt, op); }
    t->state = AIO_T_DEAD;
    rt->live--;
    /* Unanchor exactly once (s5.6). */
    if (t->ref != LUA_NOREF) {
        aio_rt_unref(rt, t->ref);
        t->ref = LUA_NOREF;
    }
}

/* [msg] -> [traceback] ; runs in lua_pcall. */
static int rt_traceback_tramp(lua_State *L)
{
    aio_task *t = lua_touserdata(L, 1);
    const char *msg = lua_tostring(L, 2);
    if (!msg) msg = luaL_typename(L, 2);
    luaL_traceback(L, t->co, msg, 0);
    return 1;
}

/* [task, traceback] -> handler(task, traceback) or remember it. */
static int rt_report_tramp(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, HANDLER_KEY) == LUA_TFUNCTION) {
        lua_insert(L, 1);
        lua_call(L, 2, 0);
    } else {
        lua_setfield(L, LUA_REGISTRYINDEX, LASTERR_KEY);
    }
    return 0;
}

/* The task died outside the Lua task wrapper (its own error, a foreign
 * yield): close it so its to-be-closed variables run (as luaB_auxwrap does
 * with lua_closethread; 5.4.4 names it lua_resetthread), report it, free
 * it. Error message on top of `from`. */
static void rt_fail(aio_rt *rt, aio_task *t, lua_State *from)
{
    int base = lua_gettop(from) - 1;
    lua_pushcfunction(from, rt_traceback_tramp);
    lua_pushlightuserdata(from, t);
    lua_pushvalue(from, -3);
    if (lua_pcall(from, 2, 1, 0) != LUA_OK) {
        lua_pop(from, 1);
        lua_pushvalue(from, -1); /* report the bare message */
    }
    lua_remove(from, -2);              /* [traceback] */
    lua_resetthread(t->co);
    lua_pushcfunction(from, rt_report_tramp);
    lua_insert(from, -2);              /* [tramp, traceback] */
    lua_rawgeti(from, LUA_REGISTRYINDEX, t->ref);
    lua_insert(from, -2);              /* [tramp, task, traceback] */
    if (lua_pcall(from, 2, 0, 0) != LUA_OK)
        lua_setfield(from, LUA_REGISTRYINDEX, LASTERR_KEY);
    lua_settop(from, base);
    rt_finish(rt, t);
}

/* ------------------------------------------------------------------ */
/* resuming                                                             */

static int rt_deliver_tramp(lua_State *L)
{
    aio_op *op = lua_touserdata(L, 1);
    lua_settop(L, 0);
    return op->deliver(L, op);
}

static void rt_resume(aio_rt *rt, aio_task *t, lua_State *from)
{
    lua_State *co = t->co;
    int nargs, nres = 0, status;

    if (t->op) {
        /* Build the values on the driver thread under pcall, then move them
         * (s5.4): an allocation error must not be thrown on `co`. */
        aio_op *op = t->op;
        int base = lua_gettop(from);
        t->op = NULL;
        lua_pushcfunction(from, rt_deliver_tramp);
        lua_pushlightuserdata(from, op);
        if (lua_pcall(from, 1, LUA_MULTRET, 0) != LUA_OK) {
            lua_pushnil(from);
            lua_insert(from, -2); /* nil, message */
        }
        nargs = lua_gettop(from) - base;
        if (!lua_checkstack(co, nargs + LUA_MINSTACK)) {
            lua_settop(from, base);
            lua_pushliteral(from, "aio_aws: task stack overflow");
            rt_fail(rt, t, from);
            return;
        }
        lua_xmove(from, co, nargs);
    } else {
        nargs = t->nvals;
    }
    t->nvals = 0;

    /* Resume only a suspended thread (or a fresh one), never the driver
     * itself (s5.3; luv #329/#483). */
    status = lua_status(co);
    if (co == from || !(status == LUA_YIELD || (status == LUA_OK && !t->started))) {
        lua_pop(co, nargs);
        lua_pushliteral(from, "aio_aws: task coroutine was resumed outside the loop");
        rt_fail(rt, t, from);
        return;
    }
    t->started = 1;
    t->state = AIO_T_RUNNING;
    status = lua_resume(co, from, nargs, &nres);
    if (status == LUA_YIELD) {
        int ours = nres >= 1 && lua_touserdata(co, -nres) == &rt_sentinel;
        lua_pop(co, nres); /* the manual requires it before the next resume */
        if (ours) {
            if (t->state == AIO_T_RUNNING) t->state = AIO_T_SUSPENDED;
        } else {
            lua_pushliteral(from, "aio_aws: task yielded outside an aio_aws wait "
                                  "(coroutine.yield inside a task?)");
            rt_fail(rt, t, from);
        }
    } else if (status == LUA_OK) {
        lua_pop(co, nres);
        rt_finish(rt, t);
    } else {
        lua_xmove(co, from, 1);
        rt_fail(rt, t, from);
    }
}

/* Resume the tasks that were ready when we started; tasks made ready by
 * them wait for the next iteration so I/O is polled in between. */
static void rt_dispatch(aio_rt *rt, lua_State *from)
{
    if (rt->dispatching || rt->closed)
        return;
    rt->dispatching = 1;
    if (!lua_checkstack(from, LUA_MINSTACK)) {
        rt->dispatching = 0;
        return;
    }
    aio_task *last = rt->ready_tail, *t;
    while (last && (t = rt_dequeue(rt)) != NULL) {
        int was_last = (t == last);
        rt_resume(rt, t, from);
        if (was_last) break;
    }
    rt->dispatching = 0;
    if (!rt->ready_head && ev_is_active(&rt->idle))
        ev_idle_stop(rt->loop, &rt->idle);
}

static void rt_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    aio_rt *rt = w->data;
    rt_dispatch(rt, rt->driver ? rt->driver : rt->L);
}

static void rt_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop; (void)w; (void)revents; /* only there to keep the loop from blocking */
}

static void rt_step_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)w; (void)revents; /* wakes step(max_wait) */
}

/* ------------------------------------------------------------------ */
/* runtime object                                                       */

static int rt_gc(lua_State *L)
{
    aio_rt *rt = luaL_checkudata(L, 1, RT_MT);
    if (rt->closed) return 0;
    rt->closed = 1;
    while (rt->ready_head) {
        aio_task *t = rt_dequeue(rt);
        if (t->op) { aio_op *op = t->op; t->op = NULL; op->drop(rt, op); }
    }
    if (ev_is_active(&rt->check)) {
        ev_ref(rt->loop); /* undo the ev_unref done at start */
        ev_check_stop(rt->loop, &rt->check);
    }
    ev_idle_stop(rt->loop, &rt->idle);
    ev_timer_stop(rt->loop, &rt->step_timer);
    if (rt->mirror_fd >= 0) { close(rt->mirror_fd); rt->mirror_fd = -1; }
    /* A host's loop is the host's: never destroyed here. */
    if (!rt->host_loop && --rt_default_users == 0)
        ev_loop_destroy(rt->loop);
    return 0;
}

aio_rt *aio_rt_get(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, AIO_AWS_RUNTIME_KEY) == LUA_TUSERDATA) {
        aio_rt *rt = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (rt->closed) luaL_error(L, "aio_aws: runtime is closed");
        return rt;
    }
    lua_pop(L, 1);
    aio_rt *rt = lua_newuserdatauv(L, sizeof *rt, 0);
    memset(rt, 0, sizeof *rt);
    rt->mirror_fd = -1;
    luaL_setmetatable(L, RT_MT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    rt->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, AIO_AWS_LOOP_KEY) == LUA_TLIGHTUSERDATA) {
        rt->loop = lua_touserdata(L, -1);
        rt->host_loop = 1;
    }
    lua_pop(L, 1);
    if (!rt->loop) {
        /* libev's default loop: the only one that can watch children. */
        rt->loop = ev_default_loop(EVFLAG_AUTO);
        if (!rt->loop) luaL_error(L, "aio_aws: cannot initialise libev (bad $LIBEV_FLAGS?)");
        rt_default_users++;
    }
    ev_check_init(&rt->check, rt_check_cb);
    rt->check.data = rt;
    /* Lowest priority: runs after the I/O and timer callbacks of the same
     * iteration have queued their completions. */
    ev_set_priority(&rt->check, EV_MINPRI);
    ev_check_start(rt->loop, &rt->check);
    ev_unref(rt->loop); /* the dispatcher alone must not keep the loop alive */
    ev_idle_init(&rt->idle, rt_idle_cb);
    ev_timer_init(&rt->step_timer, rt_step_cb, 0., 0.);
    lua_setfield(L, LUA_REGISTRYINDEX, AIO_AWS_RUNTIME_KEY);
    return rt;
}

/* ------------------------------------------------------------------ */
/* tasks                                                                */

static aio_task *rt_checktask(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, TASK_MT);
}

aio_task *aio_task_running(lua_State *L, int idx)
{
    aio_task *t = rt_checktask(L, idx);
    if (t->state != AIO_T_RUNNING || t->co != L)
        luaL_error(L, "aio_aws: this task is not the running coroutine "
                      "(waiting functions must be called by the task itself)");
    return t;
}

/** spawn(fn, ...) -> task. The coroutine gets its first resume from the
 * loop, so the loop owns it from the start (cqueues cq:wrap). */
static int rt_spawn(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    int n = lua_gettop(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    aio_task *t = lua_newuserdatauv(L, sizeof *t, 1);  /* [fn, args.., t] */
    memset(t, 0, sizeof *t);
    t->ref = LUA_NOREF;
    luaL_setmetatable(L, TASK_MT);
    lua_State *co = lua_newthread(L);                  /* [fn, args.., t, co] */
    lua_setiuservalue(L, -2, 1);                       /* [fn, args.., t] */
    if (!lua_checkstack(co, n + 1))
        return luaL_error(L, "aio_aws.spawn: too many arguments");
    for (int i = 1; i <= n; i++)
        lua_pushvalue(L, i);
    lua_xmove(L, co, n);                               /* co: [fn, args..] */
    t->rt = rt;
    t->co = co;
    t->nvals = n - 1;
    t->state = AIO_T_READY;
    lua_pushvalue(L, -1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);           /* anchored until dead */
    rt->live++;
    rt_enqueue(rt, t);
    return 1;
}

/** wake(task, ...) -> boolean: resume a suspended task with the values. */
static int rt_wake(lua_State *L)
{
    aio_task *t = rt_checktask(L, 1);
    int n = lua_gettop(L) - 1;
    if (t->state != AIO_T_SUSPENDED || t->rt->closed) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (!lua_checkstack(t->co, n + LUA_MINSTACK))
        return luaL_error(L, "aio_aws.wake: too many values");
    lua_xmove(L, t->co, n);
    t->nvals = n;
    t->state = AIO_T_READY;
    rt_enqueue(t->rt, t);
    lua_pushboolean(L, 1);
    return 1;
}

/** interrupt(task, ...) -> boolean: like wake, but also replaces results
 * already scheduled for a ready task (cancellation). */
static int rt_interrupt(lua_State *L)
{
    aio_task *t = rt_checktask(L, 1);
    if (t->state == AIO_T_READY && t->started) {
        aio_rt *rt = t->rt;
        int n = lua_gettop(L) - 1;
        if (t->op) { aio_op *op = t->op; t->op = NULL; op->drop(rt, op); }
        lua_pop(t->co, t->nvals);
        if (!lua_checkstack(t->co, n + LUA_MINSTACK))
            return luaL_error(L, "aio_aws.interrupt: too many values");
        lua_xmove(L, t->co, n);
        t->nvals = n;
        lua_pushboolean(L, 1);
        return 1;
    }
    return rt_wake(L);
}

static int task_status(lua_State *L)
{
    static const char *const names[] = {"?", "ready", "running", "suspended", "dead"};
    aio_task *t = rt_checktask(L, 1);
    lua_pushstring(L, names[t->state]);
    return 1;
}

static int task_tostring(lua_State *L)
{
    aio_task *t = rt_checktask(L, 1);
    lua_pushfstring(L, "aio_aws.task (%p)", (void *)t);
    return 1;
}

/* ------------------------------------------------------------------ */
/* sleep timers                                                         */

typedef struct rt_timer {
    aio_op op;
    aio_source src;
    ev_timer w;
    aio_rt *rt;
    aio_task *task;
    int ref; /* anchors the timer userdata (uservalue 1 = task) while armed */
    int armed;
} rt_timer;

static void timer_unref(rt_timer *tm)
{
    if (tm->ref != LUA_NOREF) {
        aio_rt_unref(tm->rt, tm->ref);
        tm->ref = LUA_NOREF;
    }
}

static void timer_stop(rt_timer *tm)
{
    /* libev has already stopped a one-shot timer when its callback runs,
     * so track our own count with `armed`. */
    ev_timer_stop(tm->rt->loop, &tm->w);
    if (tm->armed) {
        tm->armed = 0;
        tm->rt->timers--;
    }
    aio_rt_remove_source(tm->rt, &tm->src);
}

static int timer_deliver(lua_State *L, aio_op *op)
{
    rt_timer *tm = (rt_timer *)op;
    timer_unref(tm);
    lua_pushboolean(L, 1);
    return 1;
}

static void timer_drop(aio_rt *rt, aio_op *op)
{
    (void)rt;
    timer_unref((rt_timer *)op);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    rt_timer *tm = w->data;
    timer_stop(tm);
    if (!aio_task_complete(tm->task, &tm->op))
        timer_unref(tm);
}

static double timer_timeout(aio_source *src)
{
    rt_timer *tm = (rt_timer *)((char *)src - offsetof(rt_timer, src));
    return ev_is_active(&tm->w) ? ev_timer_remaining(tm->rt->loop, &tm->w) : -1;
}

/** sleep(task, seconds) -> timer: arms a one-shot timer for the running
 * task, which must then yield; it resumes with `true`. */
static int rt_sleep(lua_State *L)
{
    aio_task *t = aio_task_running(L, 1);
    lua_Number secs = luaL_checknumber(L, 2);
    luaL_argcheck(L, secs >= 0 && secs == secs && secs != HUGE_VAL, 2,
                  "must be a finite number >= 0");
    aio_rt *rt = t->rt;
    rt_timer *tm = lua_newuserdatauv(L, sizeof *tm, 1);
    memset(tm, 0, sizeof *tm);
    tm->ref = LUA_NOREF;
    luaL_setmetatable(L, TIMER_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    tm->op.deliver = timer_deliver;
    tm->op.drop = timer_drop;
    tm->src.timeout = timer_timeout;
    tm->rt = rt;
    tm->task = t;
    /* The loop's cached time may be stale after a long stretch of Lua. */
    ev_now_update(rt->loop);
    ev_timer_init(&tm->w, timer_cb, secs, 0.);
    tm->w.data = tm;
    ev_timer_start(rt->loop, &tm->w);
    tm->armed = 1;
    rt->timers++;
    aio_rt_add_source(rt, &tm->src);
    lua_pushvalue(L, -1);
    tm->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/** timer:cancel(): disarm; a task waiting on it gets (nil, "Cancelled"). */
static int timer_cancel(lua_State *L)
{
    rt_timer *tm = luaL_checkudata(L, 1, TIMER_MT);
    if (tm->rt->closed) return 0;
    timer_stop(tm);
    aio_task_detach(L, tm->task, &tm->op);
    timer_unref(tm);
    return 0;
}

static int timer_gc(lua_State *L)
{
    rt_timer *tm = luaL_checkudata(L, 1, TIMER_MT);
    if (!tm->rt->closed) timer_stop(tm);
    return 0;
}

/* ------------------------------------------------------------------ */
/* drivers                                                              */

static int rt_busy(lua_State *L, aio_rt *rt)
{
    /* Not re-entrant (luv luv_run; cqueues "cannot step live cqueue"). A
     * host loop that is inside ev_run counts too. */
    if (rt->running || ev_depth(rt->loop) > 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "loop already running");
        return 2;
    }
    return 0;
}

static int rt_last_error(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LASTERR_KEY) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LASTERR_KEY);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/** run() -> true | nil, err: runs the loop until no task is left. A task
 * error that nobody handled (no error handler set) is returned; tasks
 * waiting with nothing that could wake them give a "deadlock" error. */
static int rt_run(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    int n = rt_busy(L, rt);
    if (n) return n;
    rt->running = 1;
    rt->driver = L;
    int deadlock = 0;
    while (rt->live > 0) {
        int active = ev_run(rt->loop, EVRUN_ONCE);
        if (!active && !rt->ready_head && rt->live > 0) {
            deadlock = 1;
            break;
        }
    }
    rt->running = 0;
    rt->driver = NULL;
    if ((n = rt_last_error(L)))
        return n;
    if (deadlock) {
        lua_pushnil(L);
        lua_pushfstring(L, "deadlock: %d task(s) waiting and nothing left that could wake them",
                        rt->live);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/** step([max_wait]) -> true | nil, err: one loop iteration, waiting at
 * most max_wait seconds (0: poll only; nil: until something happens). */
static int rt_step(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    lua_Number wait = luaL_optnumber(L, 1, -1);
    int n = rt_busy(L, rt);
    if (n) return n;
    rt->running = 1;
    rt->driver = L;
    if (wait == 0 || rt->ready_head) {
        ev_run(rt->loop, EVRUN_NOWAIT);
    } else {
        if (wait > 0) {
            ev_now_update(rt->loop);
            ev_timer_set(&rt->step_timer, wait, 0.);
            ev_timer_start(rt->loop, &rt->step_timer);
        }
        ev_run(rt->loop, EVRUN_ONCE);
        ev_timer_stop(rt->loop, &rt->step_timer);
    }
    rt->running = 0;
    rt->driver = NULL;
    if ((n = rt_last_error(L)))
        return n;
    lua_pushboolean(L, 1);
    return 1;
}

/** pollfd() -> fd | nil, err: readable when one of the core's sockets is
 * ready. libev does not expose its backend fd, so the core mirrors its
 * sockets into an epoll fd of its own, created on first call. */
static int rt_pollfd(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    if (rt->mirror_fd < 0) {
        rt->mirror_fd = epoll_create1(EPOLL_CLOEXEC);
        if (rt->mirror_fd < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "epoll_create1: %s", strerror(errno));
            return 2;
        }
        for (aio_source *s = rt->sources; s; s = s->next)
            if (s->mirror) s->mirror(s);
    }
    lua_pushinteger(L, rt->mirror_fd);
    return 1;
}

/** timeout() -> seconds | nil: how long a host may wait before the next
 * step(); 0 when tasks are ready, nil when nothing is pending. */
static int rt_timeout(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    double best = -1;
    if (rt->ready_head) {
        best = 0;
    } else {
        for (aio_source *s = rt->sources; s; s = s->next) {
            double d = s->timeout ? s->timeout(s) : -1;
            if (d >= 0 && (best < 0 || d < best)) best = d;
        }
    }
    if (best < 0) lua_pushnil(L); else lua_pushnumber(L, best < 0 ? 0 : best);
    return 1;
}

/** stats() -> {tasks, ready, timers, in_flight, running, host_loop} */
static int rt_stats(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    int ready = 0;
    for (aio_task *t = rt->ready_head; t; t = t->next) ready++;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, rt->live); lua_setfield(L, -2, "tasks");
    lua_pushinteger(L, ready); lua_setfield(L, -2, "ready");
    lua_pushinteger(L, rt->timers); lua_setfield(L, -2, "timers");
    lua_pushinteger(L, rt->in_flight); lua_setfield(L, -2, "in_flight");
    lua_pushboolean(L, rt->running); lua_setfield(L, -2, "running");
    lua_pushboolean(L, rt->host_loop); lua_setfield(L, -2, "host_loop");
    return 1;
}

/** set_task_error_handler(fn|nil): fn(task, traceback) is called (on the
 * driver thread) when a task dies of an error outside the Lua wrapper. */
static int rt_set_handler(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, HANDLER_KEY);
    return 0;
}

/** now() -> seconds: monotonic loop time (libev's ev_time is wall-clock). */
static int rt_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

void aio_runtime_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"spawn", rt_spawn},
        {"wake", rt_wake},
        {"interrupt", rt_interrupt},
        {"sleep", rt_sleep},
        {"run", rt_run},
        {"step", rt_step},
        {"pollfd", rt_pollfd},
        {"timeout", rt_timeout},
        {"stats", rt_stats},
        {"set_task_error_handler", rt_set_handler},
        {"monotime", rt_monotime},
        {NULL, NULL}};
    static const luaL_Reg task_methods[] = {
        {"status", task_status},
        {NULL, NULL}};
    static const luaL_Reg timer_methods[] = {
        {"cancel", timer_cancel},
        {NULL, NULL}};

    if (luaL_newmetatable(L, RT_MT)) {
        lua_pushcfunction(L, rt_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TASK_MT)) {
        luaL_newlib(L, task_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, task_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TIMER_MT)) {
        luaL_newlib(L, timer_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, timer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
    lua_pushlightuserdata(L, &rt_sentinel);
    lua_setfield(L, -2, "SENTINEL");
}
