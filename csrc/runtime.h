/* The runtime shared by the C parts that make tasks wait: one per Lua state,
 * holding the libev loop, the task ready queue and the dispatcher.
 *
 * A task is a coroutine owned by the loop. A task that waits yields a private
 * sentinel (from Lua) after registering an *op* (a transfer, a timer); when
 * the op completes, a libev/libcurl callback calls aio_task_complete, which
 * only links the task into the ready queue. The dispatcher (an ev_check
 * watcher, so never inside a libcurl call) later asks the op to push its
 * results onto the driver thread inside lua_pcall, moves them to the task
 * and resumes it (STYLE.md s5). */
#ifndef AIO_RUNTIME_H
#define AIO_RUNTIME_H

#include <ev.h>
#include "aio.h"

typedef struct aio_rt aio_rt;
typedef struct aio_task aio_task;
typedef struct aio_op aio_op;
typedef struct aio_source aio_source;

struct aio_op {
    /* Push the values the task resumes with onto L (the driver thread).
     * Runs inside lua_pcall, so it may raise; it must release the op's
     * anchor before anything that can raise. Returns the number pushed. */
    int (*deliver)(lua_State *L, aio_op *op);
    /* The result will not be delivered (the task was woken by something
     * else, interrupted, or the runtime closed). Must not raise. */
    void (*drop)(aio_rt *rt, aio_op *op);
};

/* Something that can wake the loop later: asked for its deadline by
 * core.timeout() and for its sockets by core.pollfd(). */
struct aio_source {
    double (*timeout)(aio_source *src); /* seconds, or < 0 for none */
    void (*mirror)(aio_source *src);    /* add its fds to rt->mirror_fd */
    aio_source *prev, *next;
    int linked;
};

enum { AIO_T_READY = 1, AIO_T_RUNNING, AIO_T_SUSPENDED, AIO_T_DEAD };

struct aio_task {
    aio_rt *rt;
    lua_State *co;
    int ref;        /* anchors the task userdata (uservalue 1 = co) until dead */
    int state;
    int started;
    int nvals;      /* values already on co's stack for the next resume */
    aio_op *op;     /* or: deliver these results at the next resume */
    aio_task *next; /* ready queue */
};

struct aio_rt {
    lua_State *L;            /* the main thread (LUA_RIDX_MAINTHREAD) */
    struct ev_loop *loop;
    int host_loop;           /* the loop belongs to the host program */
    ev_check check;          /* dispatches after every loop iteration */
    ev_idle idle;            /* keeps the loop from blocking while tasks are ready */
    ev_timer step_timer;     /* bounds step(max_wait) */
    aio_task *ready_head, *ready_tail;
    int live;                /* tasks not dead */
    int running;             /* inside run() or step() */
    int dispatching;
    lua_State *driver;       /* thread of run()/step(), else NULL */
    int mirror_fd;           /* epoll fd for pollfd(), -1 until asked */
    aio_source *sources;
    int timers;              /* active sleep timers */
    int in_flight;           /* transfers started and not finished (http.c) */
    int closed;
};

/* The runtime of L's state, created on first use (raises on failure). */
aio_rt *aio_rt_get(lua_State *L);
/* Checks that argument idx is a task and is the coroutine calling us
 * (an op must be registered by the task that will wait for it). */
aio_task *aio_task_running(lua_State *L, int idx);
/* Schedule op's results for a suspended task. Returns 0 (nothing done) if
 * the task is not suspended: the caller then drops the op. Never raises,
 * never calls Lua: safe from libev and libcurl callbacks. */
int aio_task_complete(aio_task *t, aio_op *op);
/* If t waits to receive op's results, forget them and make it receive
 * (nil, "Cancelled") instead. Called from Lua C functions only (may raise). */
void aio_task_detach(lua_State *L, aio_task *t, aio_op *op);
/* luaL_unref that is safe from libev/libcurl callbacks: it uses the driver
 * thread (or the main thread) and never allocates. */
void aio_rt_unref(aio_rt *rt, int ref);
void aio_rt_add_source(aio_rt *rt, aio_source *src);
void aio_rt_remove_source(aio_rt *rt, aio_source *src);

#endif
