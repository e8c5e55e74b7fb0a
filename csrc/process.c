/* Child processes on the runtime's libev loop; nothing blocks.
 *
 *   core.process_spawn{argv=, env=, cwd=, stdin=, mode=, capture_max=} -> proc | nil, err
 *   proc:take()        -> {stream, line, stream, line, ...}, finished
 *   proc:wait(task)    -> true if the running task must now yield until
 *                         more lines or the end arrive; false if take() can go on
 *   proc:unwait()      forget the waiting task (it was cancelled)
 *   proc:status()      -> exit_code | nil, signal name | nil (once finished)
 *   proc:output()      -> stdout, stderr, truncated (mode "capture")
 *   proc:kill(signo)   -> true | nil, err   (signals the child's process group)
 *   proc:pid()
 *
 * The child is started with fork + execvpe and a close-on-exec report pipe
 * (so "no such program" is a clean nil, err), in its own
 * process group (so kill reaches `sh -c` and what it started), with only
 * fds 0-2 open, default signal dispositions and an empty signal mask.
 * Pipes are O_CLOEXEC and non-blocking on our side and read by ev_io
 * watchers; the exit is seen by an ev_child watcher, which libev only
 * supports on its default loop. libev callbacks here only move bytes and
 * flip flags; the waiting task is woken through aio_task_complete and the
 * Lua side (aio_aws.process) calls on_line from that task. */
#define _GNU_SOURCE /* pipe2, execvpe, close_range */
#include "runtime.h"
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_MT "aio_aws.process"

/* A line longer than this is delivered in pieces of this size, so a
 * program that never writes "\n" cannot make us buffer without bound. */
#define LINE_MAX_BYTES (256 * 1024)
/* Lines waiting for the Lua side beyond this pause the pipe readers
 * (back-pressure: the child then blocks on a full pipe). */
#define QUEUE_HIGH (1024 * 1024)
#define READ_CHUNK 65536

enum { M_LINES, M_CAPTURE, M_DISCARD };

typedef struct proc proc;

typedef struct pstream {
    proc *pr;
    int idx;          /* 0 stdout, 1 stderr */
    int fd;           /* -1 once at EOF/closed */
    ev_io w;
    aio_buf part;        /* lines mode: the unfinished line */
    aio_buf cap;         /* capture mode: everything, up to capture_max */
} pstream;

struct proc {
    aio_op op;
    aio_rt *rt;
    pid_t pid;
    int mode;
    size_t capture_max;
    int truncated;
    pstream out[2];
    int in_fd;        /* stdin pipe, -1 once written/closed */
    ev_io in_w;
    char *in_data;
    size_t in_len, in_off;
    ev_child child;
    int exited, status;
    int paused;       /* readers stopped for back-pressure */
    int oom;          /* a buffer could not grow: output was lost */
    aio_buf q;           /* queued lines: [u8 stream][u32 len][bytes] ... */
    aio_task *waiter;
    int pending;      /* a wake-up is scheduled */
    int ref;          /* anchor while the child or its pipes are live */
    int freed;
};

static int p_finished(proc *pr)
{
    return pr->exited && pr->out[0].fd < 0 && pr->out[1].fd < 0;
}

/* ------------------------------------------------------------------ */
/* anchoring and waking (no Lua calls: safe from libev callbacks)        */

static void p_release(proc *pr)
{
    if (pr->ref != LUA_NOREF && p_finished(pr) && !pr->pending) {
        aio_rt_unref(pr->rt, pr->ref);
        pr->ref = LUA_NOREF;
    }
}

static void p_notify(proc *pr)
{
    if (pr->pending || !pr->waiter) return;
    if (pr->q.len == 0 && !p_finished(pr)) return;
    if (aio_task_complete(pr->waiter, &pr->op)) {
        pr->pending = 1;
    } else {
        pr->waiter = NULL; /* interrupted: nobody takes this wake-up */
    }
}

static int p_deliver(lua_State *L, aio_op *op)
{
    proc *pr = (proc *)op;
    pr->pending = 0;
    pr->waiter = NULL;
    p_release(pr);
    lua_pushboolean(L, 1);
    return 1;
}

static void p_drop(aio_rt *rt, aio_op *op)
{
    (void)rt;
    proc *pr = (proc *)op;
    pr->pending = 0;
    pr->waiter = NULL;
    p_release(pr);
}

/* ------------------------------------------------------------------ */
/* output                                                               */

static void q_line(proc *pr, int idx, const char *s, size_t n)
{
    unsigned char hdr[5];
    uint32_t len = (uint32_t)n;
    hdr[0] = (unsigned char)idx;
    memcpy(hdr + 1, &len, 4);
    if (aio_buf_add(&pr->q, (const char *)hdr, 5) != 0 || aio_buf_add(&pr->q, s, n) != 0)
        pr->oom = 1;
}

/* Split what was read into lines ("\n" removed); the unfinished rest
 * waits in ps->part. */
static void s_lines(pstream *ps, const char *s, size_t n)
{
    proc *pr = ps->pr;
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t seg = nl ? (size_t)(nl - s) : n;
        if (ps->part.len + seg >= LINE_MAX_BYTES) {
            size_t take = LINE_MAX_BYTES - ps->part.len;
            if (ps->part.len == 0) {
                q_line(pr, ps->idx, s, take);
            } else {
                if (aio_buf_add(&ps->part, s, take) != 0) pr->oom = 1;
                q_line(pr, ps->idx, ps->part.p, ps->part.len);
                ps->part.len = 0;
            }
            s += take;
            n -= take;
            continue;
        }
        if (!nl) {
            if (aio_buf_add(&ps->part, s, n) != 0) pr->oom = 1;
            return;
        }
        if (ps->part.len == 0) {
            q_line(pr, ps->idx, s, seg);
        } else {
            if (aio_buf_add(&ps->part, s, seg) != 0) pr->oom = 1;
            q_line(pr, ps->idx, ps->part.p, ps->part.len);
            ps->part.len = 0;
        }
        s += seg + 1;
        n -= seg + 1;
    }
}

static void s_close(pstream *ps)
{
    proc *pr = ps->pr;
    if (ps->fd < 0) return;
    if (!pr->rt->closed) ev_io_stop(pr->rt->loop, &ps->w);
    close(ps->fd);
    ps->fd = -1;
    /* The partial last line is delivered at EOF. */
    if (pr->mode == M_LINES && ps->part.len > 0) {
        q_line(pr, ps->idx, ps->part.p, ps->part.len);
        ps->part.len = 0;
    }
}

static void s_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    pstream *ps = w->data;
    proc *pr = ps->pr;
    char buf[READ_CHUNK];
    ssize_t n = read(ps->fd, buf, sizeof buf);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        s_close(ps);
    } else if (n == 0) {
        s_close(ps);
    } else if (pr->mode == M_LINES) {
        s_lines(ps, buf, (size_t)n);
        if (pr->q.len >= QUEUE_HIGH && !pr->paused) {
            pr->paused = 1;
            for (int i = 0; i < 2; i++)
                if (pr->out[i].fd >= 0) ev_io_stop(pr->rt->loop, &pr->out[i].w);
        }
    } else if (pr->mode == M_CAPTURE) {
        size_t room = pr->capture_max > ps->cap.len ? pr->capture_max - ps->cap.len : 0;
        size_t keep = (size_t)n < room ? (size_t)n : room;
        if (keep < (size_t)n) pr->truncated = 1;
        if (keep > 0 && aio_buf_add(&ps->cap, buf, keep) != 0) pr->oom = 1;
    }
    p_notify(pr);
    p_release(pr);
}

/* stdin: written as the child reads it. A child that exits without
 * reading gives EPIPE; SIGPIPE is blocked around the write and a pending
 * one consumed, so the host's disposition of SIGPIPE does not matter. */
static void in_close(proc *pr)
{
    if (pr->in_fd < 0) return;
    if (!pr->rt->closed) ev_io_stop(pr->rt->loop, &pr->in_w);
    close(pr->in_fd);
    pr->in_fd = -1;
    free(pr->in_data);
    pr->in_data = NULL;
}

static void in_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    proc *pr = w->data;
    sigset_t pipeset, old, pend;
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    sigpending(&pend);
    int was_pending = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeset, &old);
    ssize_t n = write(pr->in_fd, pr->in_data + pr->in_off, pr->in_len - pr->in_off);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipeset, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (n < 0) {
        if (err == EAGAIN || err == EINTR) return;
        in_close(pr);
        return;
    }
    pr->in_off += (size_t)n;
    if (pr->in_off >= pr->in_len) in_close(pr);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    proc *pr = w->data;
    ev_child_stop(loop, w);
    pr->exited = 1;
    pr->status = w->rstatus;
    /* Nobody is left to read stdin. */
    in_close(pr);
    p_notify(pr);
    p_release(pr);
}

/* ------------------------------------------------------------------ */
/* signal names                                                          */

static const struct { int no; const char *name; } sig_names[] = {
    {SIGHUP, "HUP"}, {SIGINT, "INT"}, {SIGQUIT, "QUIT"}, {SIGILL, "ILL"},
    {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"}, {SIGBUS, "BUS"}, {SIGFPE, "FPE"},
    {SIGKILL, "KILL"}, {SIGUSR1, "USR1"}, {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"},
    {SIGPIPE, "PIPE"}, {SIGALRM, "ALRM"}, {SIGTERM, "TERM"}, {SIGCHLD, "CHLD"},
    {SIGCONT, "CONT"}, {SIGSTOP, "STOP"}, {SIGTSTP, "TSTP"}, {SIGTTIN, "TTIN"},
    {SIGTTOU, "TTOU"}, {SIGURG, "URG"}, {SIGXCPU, "XCPU"}, {SIGXFSZ, "XFSZ"},
    {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"}, {SIGWINCH, "WINCH"}, {SIGIO, "IO"},
    {SIGPWR, "PWR"}, {SIGSYS, "SYS"}, {0, NULL}};

static void push_signame(lua_State *L, int no)
{
    for (int i = 0; sig_names[i].name; i++)
        if (sig_names[i].no == no) { lua_pushstring(L, sig_names[i].name); return; }
    lua_pushfstring(L, "SIG%d", no);
}

/** signal_number(name | number) -> number | nil */
static int p_signo(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, 1);
        if (n > 0 && n < NSIG) { lua_pushinteger(L, n); return 1; }
        lua_pushnil(L);
        return 1;
    }
    const char *s = luaL_checkstring(L, 1);
    if (strncmp(s, "SIG", 3) == 0) s += 3;
    for (int i = 0; sig_names[i].name; i++)
        if (strcmp(sig_names[i].name, s) == 0) { lua_pushinteger(L, sig_names[i].no); return 1; }
    lua_pushnil(L);
    return 1;
}

/* ------------------------------------------------------------------ */
/* spawning                                                              */

static proc *p_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, PROC_MT);
}

static void p_free(proc *pr)
{
    if (pr->freed) return;
    pr->freed = 1;
    for (int i = 0; i < 2; i++) {
        pstream *ps = &pr->out[i];
        if (ps->fd >= 0) {
            if (!pr->rt->closed) ev_io_stop(pr->rt->loop, &ps->w);
            close(ps->fd);
            ps->fd = -1;
        }
        aio_buf_free(&ps->part);
        aio_buf_free(&ps->cap);
    }
    in_close(pr);
    if (!pr->exited && pr->pid > 0) {
        /* Only reached when the Lua state closes with the child still
         * running (the object is anchored until then): leave no orphan. */
        if (!pr->rt->closed) ev_child_stop(pr->rt->loop, &pr->child);
        kill(-pr->pid, SIGKILL);
        kill(pr->pid, SIGKILL);
    }
    aio_buf_free(&pr->q);
}

static int p_gc(lua_State *L)
{
    p_free(p_check(L, 1));
    return 0;
}

/* Frees the C arrays of a spawn attempt: they are malloc'd, not Lua's, so
 * no error may be raised while they are live (lua-cjson's rule). */
typedef struct spawn_args {
    char **argv, **envp;
    size_t nargv, nenv;
    int die_with_parent;
    pid_t parent;
} spawn_args;

static void sa_free(spawn_args *sa)
{
    if (sa->argv) for (size_t i = 0; i < sa->nargv; i++) free(sa->argv[i]);
    if (sa->envp) for (size_t i = 0; i < sa->nenv; i++) free(sa->envp[i]);
    free(sa->argv);
    free(sa->envp);
}

static int fail(lua_State *L, const char *fmt, const char *a, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, fmt, a, strerror(err));
    return 2;
}

/* Copies the strings of the list at stack index t (checked by the Lua
 * side: a sequence of strings without NUL) into a NULL-terminated array. */
static char **copy_list(lua_State *L, int t, size_t *n)
{
    size_t len = (size_t)lua_rawlen(L, t);
    char **v = calloc(len + 1, sizeof *v);
    if (!v) return NULL;
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        size_t sl;
        lua_rawgeti(L, t, (lua_Integer)i + 1);
        const char *s = lua_tolstring(L, -1, &sl);
        if (s) {
            v[i] = malloc(sl + 1);
            if (v[i]) memcpy(v[i], s, sl + 1);
        }
        lua_pop(L, 1);
        if (!v[i]) { *n = i; return v; } /* caller frees; NULL marks failure */
        *n = i + 1;
    }
    return v;
}


enum { STAGE_FORK = 1, STAGE_SETUP, STAGE_CWD, STAGE_EXEC };

/* The child side of fork: only async-signal-safe calls until exec. A
 * failure is reported to the parent through `ew` (O_CLOEXEC: closed by a
 * successful exec) as {stage, errno}, then _exit(127). */
static void p_child(const spawn_args *sa, const char *cwd, int in, int out, int errfd, int ew)
{
    int msg[2] = {STAGE_SETUP, 0};
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    /* Default dispositions (libev's handlers and an ignored SIGPIPE are
     * not the child's business), then an empty mask. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) goto fail;
    /* SIGKILL when we die, however we die (prctl(2) PR_SET_PDEATHSIG);
     * if we already have, the getppid check catches the race. */
    if (sa->die_with_parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) goto fail;
        if (getppid() != sa->parent) _exit(127);
    }
    /* Its own process group, so a kill reaches what it starts. */
    if (setpgid(0, 0) != 0) goto fail;
    if (in < 0) {
        in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in < 0) goto fail;
    }
    /* dup2 clears FD_CLOEXEC on the targets; the pipes are all >= 3
     * (0-2 are open in any sane host), so no target is a source. */
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0) goto fail;
    /* Descriptors the host opened without O_CLOEXEC stay ours: keep 0-2
     * and the report pipe only. */
    if (ew > 3) close_range(3, (unsigned)ew - 1, 0);
    close_range((unsigned)ew + 1, ~0U, 0);
    if (cwd && chdir(cwd) != 0) { msg[0] = STAGE_CWD; goto fail; }
    msg[0] = STAGE_EXEC;
    execvpe(sa->argv[0], sa->argv, sa->envp ? sa->envp : environ);
fail:
    msg[1] = errno;
    while (write(ew, msg, sizeof msg) < 0 && errno == EINTR) {}
    _exit(127);
}

/* fork + exec with the close-on-exec report pipe (what CPython's
 * _posixsubprocess does), rather than posix_spawn: glibc's posix_spawn
 * reports exec errors only through CLONE_VFORK shared memory, which
 * valgrind cannot emulate. Returns the pid, or -1 with *stage and *err. */
static pid_t p_fork_exec(const spawn_args *sa, const char *cwd, int in, int out, int errfd,
                         int *stage, int *err)
{
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) != 0) { *stage = STAGE_FORK; *err = errno; return -1; }
    /* No signal handler of ours may run in the child before exec. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(rep[0]);
        p_child(sa, cwd, in, out, errfd, rep[1]);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(rep[1]);
    if (pid < 0) { close(rep[0]); *stage = STAGE_FORK; *err = fork_errno; return -1; }
    setpgid(pid, pid); /* also here: a kill right after us must reach the group */
    /* Returns at once: EOF when exec succeeded, the report when not. */
    int msg[2];
    ssize_t n;
    do n = read(rep[0], msg, sizeof msg); while (n < 0 && errno == EINTR);
    close(rep[0]);
    if (n == (ssize_t)sizeof msg) {
        /* It has exited (or is about to): reap it here; no ev_child
         * watches it and the loop is not running, so libev cannot. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        *stage = msg[0];
        *err = msg[1];
        return -1;
    }
    return pid;
}

extern char **environ;

/** process_spawn{argv, env, cwd, stdin, mode = "lines"|"capture"|"discard",
 * capture_max} -> proc | nil, err. The Lua side has validated the types. */
static int p_spawn(lua_State *L)
{
    aio_rt *rt = aio_rt_get(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (!ev_is_default_loop(rt->loop)) {
        lua_pushnil(L);
        lua_pushliteral(L, "aio_aws.process needs libev's default loop to watch children "
                           "(the runtime runs on a host loop that is not the default one)");
        return 2;
    }
    lua_getfield(L, 1, "argv");    /* [opts, argv] */
    lua_getfield(L, 1, "env");     /* [opts, argv, env] */
    lua_getfield(L, 1, "cwd");     /* [opts, argv, env, cwd] */
    lua_getfield(L, 1, "stdin");   /* [opts, argv, env, cwd, stdin] */
    lua_getfield(L, 1, "mode");    /* [.., mode] */
    lua_getfield(L, 1, "capture_max");
    lua_getfield(L, 1, "die_with_parent"); /* [.., capture_max, die_with_parent] (8) */
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_rawlen(L, 2) < 1) luaL_argerror(L, 1, "argv must not be empty");
    const char *cwd = lua_tostring(L, 4);
    size_t in_len = 0;
    const char *in_data = lua_tolstring(L, 5, &in_len);
    const char *mode = luaL_optstring(L, 6, "lines");
    lua_Integer capmax = luaL_optinteger(L, 7, 1 << 20);
    int m = strcmp(mode, "capture") == 0 ? M_CAPTURE : strcmp(mode, "discard") == 0 ? M_DISCARD : M_LINES;

    if (cwd) {
        struct stat st;
        if (stat(cwd, &st) != 0) return fail(L, "cannot use working directory '%s': %s", cwd, errno);
        if (!S_ISDIR(st.st_mode)) return fail(L, "cannot use working directory '%s': %s", cwd, ENOTDIR);
    }

    proc *pr = lua_newuserdatauv(L, sizeof *pr, 1);   /* [.., pr]; uservalue 1: the waiting task */
    memset(pr, 0, sizeof *pr);
    pr->rt = rt;
    pr->ref = LUA_NOREF;
    pr->in_fd = -1;
    pr->out[0].fd = pr->out[1].fd = -1;
    pr->exited = 1; /* until started, so __gc does not kill anything */
    pr->mode = m;
    pr->capture_max = (size_t)(capmax < 0 ? 0 : capmax);
    pr->op.deliver = p_deliver;
    pr->op.drop = p_drop;
    luaL_setmetatable(L, PROC_MT);
    int pr_idx = lua_gettop(L);

    /* No Lua errors from here until the arrays are freed. */
    spawn_args sa = {0};
    sa.die_with_parent = lua_toboolean(L, 8);
    sa.parent = getpid();
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int err = 0, about_cwd = 0;
    const char *what = "cannot run '%s': %s";
    sa.argv = copy_list(L, 2, &sa.nargv);
    if (!sa.argv || sa.nargv < lua_rawlen(L, 2)) err = ENOMEM;
    if (!err && lua_istable(L, 3)) {
        sa.envp = copy_list(L, 3, &sa.nenv);
        if (!sa.envp || sa.nenv < lua_rawlen(L, 3)) err = ENOMEM;
    }
    for (int i = 0; i < 3 && !err; i++) {
        if (i == 0 && !in_data) continue;
        if (pipe2(fds[i], O_CLOEXEC) != 0) { err = errno; what = "cannot run '%s': pipe: %s"; }
    }

    pid_t pid = -1;
    if (!err) {
        int stage = 0;
        pid = p_fork_exec(&sa, cwd, in_data ? fds[0][0] : -1, fds[1][1], fds[2][1], &stage, &err);
        if (pid < 0) {
            if (stage == STAGE_CWD) { what = "cannot use working directory '%s': %s"; about_cwd = 1; }
            else if (stage == STAGE_SETUP) what = "cannot run '%s': setting up the child: %s";
            else if (stage == STAGE_FORK) what = "cannot run '%s': fork: %s";
        }
    }
    /* The child's ends are the child's now. */
    if (fds[0][0] >= 0) close(fds[0][0]);
    if (fds[1][1] >= 0) close(fds[1][1]);
    if (fds[2][1] >= 0) close(fds[2][1]);
    if (err) {
        if (fds[0][1] >= 0) close(fds[0][1]);
        if (fds[1][0] >= 0) close(fds[1][0]);
        if (fds[2][0] >= 0) close(fds[2][0]);
        char name[256];
        snprintf(name, sizeof name, "%s", about_cwd ? cwd :
                 sa.argv && sa.argv[0] ? sa.argv[0] : "?");
        sa_free(&sa);
        return fail(L, what, name, err);
    }
    sa_free(&sa);

    pr->pid = pid;
    pr->exited = 0;
    /* Started before returning to the loop, so an early exit is not missed
     * (libev reaps on SIGCHLD from inside ev_run only). */
    ev_child_init(&pr->child, child_cb, pid, 0);
    pr->child.data = pr;
    ev_child_start(rt->loop, &pr->child);
    for (int i = 0; i < 2; i++) {
        pstream *ps = &pr->out[i];
        ps->pr = pr;
        ps->idx = i;
        ps->fd = fds[i + 1][0];
        fcntl(ps->fd, F_SETFL, fcntl(ps->fd, F_GETFL) | O_NONBLOCK);
        ev_io_init(&ps->w, s_read_cb, ps->fd, EV_READ);
        ps->w.data = ps;
        ev_io_start(rt->loop, &ps->w);
    }
    if (in_data) {
        pr->in_fd = fds[0][1];
        fcntl(pr->in_fd, F_SETFL, fcntl(pr->in_fd, F_GETFL) | O_NONBLOCK);
        if (in_len == 0) {
            in_close(pr);
        } else {
            pr->in_data = malloc(in_len);
            if (!pr->in_data) {
                in_close(pr);
                pr->oom = 1;
            } else {
                memcpy(pr->in_data, in_data, in_len);
                pr->in_len = in_len;
                ev_io_init(&pr->in_w, in_write_cb, pr->in_fd, EV_WRITE);
                pr->in_w.data = pr;
                ev_io_start(rt->loop, &pr->in_w);
            }
        }
    }
    lua_pushvalue(L, pr_idx);
    pr->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, pr_idx);
    return 1;
}

/* ------------------------------------------------------------------ */
/* methods                                                               */

static int p_take(lua_State *L)
{
    proc *pr = p_check(L, 1);
    const char *names[2] = {"stdout", "stderr"};
    size_t off = 0;
    lua_Integer n = 0;
    lua_createtable(L, 0, 0);
    luaL_checkstack(L, 4, NULL);
    while (off + 5 <= pr->q.len) {
        uint32_t len;
        int idx = (unsigned char)pr->q.p[off];
        memcpy(&len, pr->q.p + off + 1, 4);
        lua_pushstring(L, names[idx]);
        lua_rawseti(L, -2, ++n);
        lua_pushlstring(L, pr->q.p + off + 5, len);
        lua_rawseti(L, -2, ++n);
        off += 5 + len;
    }
    pr->q.len = 0;
    if (pr->q.cap > 4 * QUEUE_HIGH) aio_buf_free(&pr->q);
    if (pr->paused && !pr->freed && !pr->rt->closed) {
        pr->paused = 0;
        for (int i = 0; i < 2; i++)
            if (pr->out[i].fd >= 0) ev_io_start(pr->rt->loop, &pr->out[i].w);
    }
    lua_pushboolean(L, p_finished(pr));
    return 2;
}

static int p_wait(lua_State *L)
{
    proc *pr = p_check(L, 1);
    aio_task *t = aio_task_running(L, 2);
    if (pr->q.len > 0 || p_finished(pr)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (pr->waiter && pr->waiter != t) luaL_error(L, "another task is already reading this process");
    pr->waiter = t;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, 1); /* keep the waiting task's userdata alive */
    lua_pushboolean(L, 1);
    return 1;
}

static int p_unwait(lua_State *L)
{
    proc *pr = p_check(L, 1);
    if (pr->waiter) aio_task_detach(L, pr->waiter, &pr->op);
    pr->waiter = NULL;
    pr->pending = 0;
    p_release(pr);
    return 0;
}

static int p_status(lua_State *L)
{
    proc *pr = p_check(L, 1);
    if (!pr->exited) return 0;
    if (WIFEXITED(pr->status)) {
        lua_pushinteger(L, WEXITSTATUS(pr->status));
        lua_pushnil(L);
    } else if (WIFSIGNALED(pr->status)) {
        lua_pushnil(L);
        push_signame(L, WTERMSIG(pr->status));
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    lua_pushboolean(L, pr->oom);
    return 3;
}

static int p_output(lua_State *L)
{
    proc *pr = p_check(L, 1);
    lua_pushlstring(L, pr->out[0].cap.p ? pr->out[0].cap.p : "", pr->out[0].cap.len);
    lua_pushlstring(L, pr->out[1].cap.p ? pr->out[1].cap.p : "", pr->out[1].cap.len);
    lua_pushboolean(L, pr->truncated);
    return 3;
}

static int p_kill(lua_State *L)
{
    proc *pr = p_check(L, 1);
    lua_Integer sig = luaL_checkinteger(L, 2);
    luaL_argcheck(L, sig > 0 && sig < NSIG, 2, "not a signal number");
    if (pr->exited || pr->pid <= 0) {
        /* Reaped: its pid may belong to someone else now. */
        lua_pushnil(L);
        lua_pushliteral(L, "process has already exited");
        return 2;
    }
    /* The whole group (shells and what they started); the child itself
     * too, in case it left the group. */
    int rc = kill(-pr->pid, (int)sig);
    int rc2 = kill(pr->pid, (int)sig);
    if (rc != 0 && rc2 != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "kill: %s", strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int p_pid(lua_State *L)
{
    lua_pushinteger(L, p_check(L, 1)->pid);
    return 1;
}

static int p_tostring(lua_State *L)
{
    proc *pr = p_check(L, 1);
    lua_pushfstring(L, "aio_aws.process (pid %d, %s)", (int)pr->pid,
                    p_finished(pr) ? "finished" : pr->exited ? "exited" : "running");
    return 1;
}

/** process_environ() -> {NAME = value}: a copy of this process's
 * environment (read from memory, no I/O). */
static int p_environ(lua_State *L)
{
    lua_newtable(L);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e) continue;
        lua_pushlstring(L, *e, (size_t)(eq - *e));
        lua_pushstring(L, eq + 1);
        lua_rawset(L, -3);
    }
    return 1;
}

void aio_process_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"process_spawn", p_spawn},
        {"signal_number", p_signo},
        {"process_environ", p_environ},
        {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"take", p_take},
        {"wait", p_wait},
        {"unwait", p_unwait},
        {"status", p_status},
        {"output", p_output},
        {"kill", p_kill},
        {"pid", p_pid},
        {NULL, NULL}};
    if (luaL_newmetatable(L, PROC_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, p_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, p_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
}
