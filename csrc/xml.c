/* xml.c: XML decoding with expat into a compact Lua form.
 *
 * core.xml_decode(s) -> node, root_name | nil, err
 *
 * The decoded form is designed for the shape-directed readers in
 * lua/aio_aws/protocol/xml.lua, not for general DOM work:
 *
 *   - an element with no child elements and no attributes is its text,
 *     a plain Lua string ("" when empty): <Key>a.txt</Key> -> "a.txt";
 *   - any other element is a table whose array part holds its children as
 *     flat pairs {name1, value1, name2, value2, ...} in document order, with
 *     `_attr` = {raw attribute name = value} when it has attributes and
 *     `_text` = its text when that text is not just whitespace (mixed
 *     content, or a leaf that carries attributes);
 *   - element names are local names: a "prefix:" is dropped, as botocore's
 *     ElementTree-based parser drops "{namespace-uri}". Attribute names are
 *     kept raw ("xsi:type", "xmlns:xsi"), which is how the models name them.
 *
 * One table per element that has children (not per element) and interned
 * short strings for names keep a 1,000-key ListObjectsV2 page cheap: see the
 * number measured in spec/xml_spec.lua and quoted below.
 *
 * Measured (spec/xml_spec.lua, 1,000-key ListObjectsV2 page, 290 KB, -O2,
 * one core of the build machine): xml_decode alone 0.88 ms, bytes to the
 * final parsed output table (protocol.parse) 1.9 ms of CPU per page.
 *
 * Memory safety (STYLE.md §3 rule 8): expat's callbacks never call Lua.
 * Phase 1 runs expat and records compact events into a malloc'd buffer.
 * Phase 2 turns the events into Lua values inside a lua_pcall, after the
 * parse has finished. The buffer and the parser live in a userdata "box"
 * whose __gc frees them, so neither a Lua error (out of memory in phase 2)
 * nor an early return can leak or long-jump through expat.
 *
 * Hostile input: entity declarations (<!ENTITY ...>) are refused outright,
 * so "billion laughs" expansion cannot start; expat's own amplification
 * limit stays on as a second fence; no external entity handler is set, so
 * external entities and parameter entities are never loaded; nesting is
 * capped at XML_MAX_DEPTH. Every failure is `nil, message`, never a raise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdio.h>
/* Debian's libexpat is built with XML_DTD, which declares the
 * amplification limits used below; say so before including the header. */
#ifndef XML_DTD
#define XML_DTD 1
#endif
#include <expat.h>

#include "aio.h"

#define XML_MAX_DEPTH 256
#define XML_BOX_MT "aio_aws.xml_box"
/* A reusable buffer that grew past this is released after the call. */
#define XML_KEEP_BYTES (4u << 20)

/* Event tags in the phase-1 buffer. Integers are stored with memcpy in
 * native byte order (the buffer never leaves the process). */
enum { EV_START = 'S', EV_TEXT = 'T', EV_END = 'E' };

typedef struct xml_box {
    XML_Parser parser;     /* reused across calls with XML_ParserReset */
    char *buf;             /* phase-1 event buffer */
    size_t len, cap;
    int busy;              /* set while a call uses this box */
    /* phase-1 state */
    size_t last_text;      /* offset of the length field of the last TEXT event */
    int last_was_text;
    int depth;
    size_t open[XML_MAX_DEPTH];     /* offsets of the open START events */
    uint32_t nchild[XML_MAX_DEPTH]; /* child element counts of open elements */
    const char *error;     /* our own stop reason, or NULL */
} xml_box;

static void s_box_release(xml_box *b)
{
    if (b->parser) {
        XML_ParserFree(b->parser);
        b->parser = NULL;
    }
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

static int s_box_gc(lua_State *L)
{
    xml_box *b = luaL_checkudata(L, 1, XML_BOX_MT);
    s_box_release(b);
    return 0;
}

static xml_box *s_box_new(lua_State *L)
{
    xml_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, XML_BOX_MT);
    return b;
}

/* ---- phase 1: expat callbacks (no Lua calls here) ---------------------- */

static void s_stop(xml_box *b, const char *why)
{
    if (!b->error) b->error = why;
    XML_StopParser(b->parser, XML_FALSE);
}

static int s_reserve(xml_box *b, size_t extra)
{
    size_t need, cap;
    char *nb;
    if (extra > SIZE_MAX - b->len) return 0;
    need = b->len + extra;
    if (need <= b->cap) return 1;
    cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    nb = realloc(b->buf, cap);
    if (!nb) return 0;
    b->buf = nb;
    b->cap = cap;
    return 1;
}

static void s_put_u32(xml_box *b, uint32_t v)
{
    memcpy(b->buf + b->len, &v, sizeof v);
    b->len += sizeof v;
}

static void s_put_bytes(xml_box *b, const char *p, size_t n)
{
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void XMLCALL s_on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_box *b = ud;
    const char *local = strrchr(name, ':');
    size_t nlen, need;
    uint32_t nattr = 0;
    int i;
    if (b->error) return;
    if (b->depth >= XML_MAX_DEPTH) { s_stop(b, "XML nesting too deep"); return; }
    local = local ? local + 1 : name;
    nlen = strlen(local);
    need = 1 + 3 * sizeof(uint32_t) + nlen;
    for (i = 0; atts[i]; i += 2) {
        need += 2 * sizeof(uint32_t) + strlen(atts[i]) + strlen(atts[i + 1]);
        nattr++;
    }
    if (nlen > UINT32_MAX || need > UINT32_MAX || !s_reserve(b, need)) {
        s_stop(b, "out of memory");
        return;
    }
    if (b->depth > 0) b->nchild[b->depth - 1]++;
    b->open[b->depth] = b->len;
    b->nchild[b->depth] = 0;
    b->depth++;
    b->buf[b->len++] = EV_START;
    s_put_u32(b, 0);                /* child count, patched at the end tag */
    s_put_u32(b, nattr);
    s_put_u32(b, (uint32_t)nlen);
    s_put_bytes(b, local, nlen);
    for (i = 0; atts[i]; i += 2) {
        size_t kl = strlen(atts[i]), vl = strlen(atts[i + 1]);
        s_put_u32(b, (uint32_t)kl);
        s_put_bytes(b, atts[i], kl);
        s_put_u32(b, (uint32_t)vl);
        s_put_bytes(b, atts[i + 1], vl);
    }
    b->last_was_text = 0;
}

static void XMLCALL s_on_end(void *ud, const XML_Char *name)
{
    xml_box *b = ud;
    uint32_t n;
    (void)name;
    if (b->error) return;
    if (!s_reserve(b, 1)) { s_stop(b, "out of memory"); return; }
    b->depth--;
    n = b->nchild[b->depth];
    memcpy(b->buf + b->open[b->depth] + 1, &n, sizeof n);
    b->buf[b->len++] = EV_END;
    b->last_was_text = 0;
}

/* Character data arrives in pieces (around entity references, at buffer
 * boundaries, CDATA sections): consecutive pieces are merged into one TEXT
 * event so a leaf always has exactly one. Text outside the root is dropped. */
static void XMLCALL s_on_text(void *ud, const XML_Char *s, int len)
{
    xml_box *b = ud;
    uint32_t cur;
    if (b->error || b->depth == 0 || len <= 0) return;
    if (!s_reserve(b, 1 + sizeof(uint32_t) + (size_t)len)) {
        s_stop(b, "out of memory");
        return;
    }
    if (b->last_was_text) {
        memcpy(&cur, b->buf + b->last_text, sizeof cur);
        if ((uint64_t)cur + (uint64_t)len > UINT32_MAX) { s_stop(b, "text node too large"); return; }
        cur += (uint32_t)len;
        memcpy(b->buf + b->last_text, &cur, sizeof cur);
        s_put_bytes(b, s, (size_t)len);
        return;
    }
    b->buf[b->len++] = EV_TEXT;
    b->last_text = b->len;
    s_put_u32(b, (uint32_t)len);
    s_put_bytes(b, s, (size_t)len);
    b->last_was_text = 1;
}

/* AWS never sends a DTD with entities; refusing every declaration removes
 * entity expansion attacks at the root. */
static void XMLCALL s_on_entity_decl(void *ud, const XML_Char *entityName,
                                     int is_parameter_entity, const XML_Char *value,
                                     int value_length, const XML_Char *base,
                                     const XML_Char *systemId, const XML_Char *publicId,
                                     const XML_Char *notationName)
{
    (void)entityName; (void)is_parameter_entity; (void)value; (void)value_length;
    (void)base; (void)systemId; (void)publicId; (void)notationName;
    s_stop(ud, "XML entity declarations are not allowed");
}

/* Runs expat over the whole input. Returns NULL on success or a message;
 * `msgbuf` receives expat's located message. */
static const char *s_phase1(xml_box *b, const char *s, size_t n, char *msgbuf, size_t msgsz)
{
    XML_Parser p;
    if (b->parser) {
        if (!XML_ParserReset(b->parser, NULL)) return "cannot reset the XML parser";
    } else {
        b->parser = XML_ParserCreate(NULL);
        if (!b->parser) return "out of memory";
    }
    p = b->parser;
    b->len = 0;
    b->depth = 0;
    b->last_was_text = 0;
    b->error = NULL;
    XML_SetUserData(p, b);
    XML_SetElementHandler(p, s_on_start, s_on_end);
    XML_SetCharacterDataHandler(p, s_on_text);
    XML_SetEntityDeclHandler(p, s_on_entity_decl);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)  /* 2.4.0+ */
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(p, 100.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(p, 1u << 20);
#endif
    /* Feed in pieces no larger than INT_MAX (XML_Parse takes an int). */
    for (;;) {
        size_t chunk = n > (size_t)(INT_MAX / 2) ? (size_t)(INT_MAX / 2) : n;
        int final = chunk == n;
        if (XML_Parse(p, s, (int)chunk, final) != XML_STATUS_OK) {
            if (b->error) return b->error;
            snprintf(msgbuf, msgsz, "XML parse error at line %lu, column %lu: %s",
                     (unsigned long)XML_GetCurrentLineNumber(p),
                     (unsigned long)XML_GetCurrentColumnNumber(p),
                     XML_ErrorString(XML_GetErrorCode(p)));
            return msgbuf;
        }
        if (final) break;
        s += chunk;
        n -= chunk;
    }
    if (b->error) return b->error;
    if (b->len == 0) return "XML parse error: no element found";
    return NULL;
}

/* ---- phase 2: events -> Lua values (may raise only out of memory) ------ */

typedef struct frame {
    const char *name; uint32_t nlen;
    const char *text; uint32_t tlen;  /* first text segment */
    int tbl;                           /* stack index of the table, 0 if none */
    uint32_t nchild, nattr, pos;       /* pos: next array slot - 1 */
} frame;

static uint32_t s_get_u32(const char **p)
{
    uint32_t v;
    memcpy(&v, *p, sizeof v);
    *p += sizeof v;
    return v;
}

static int s_blank(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return 0;
    }
    return 1;
}

/* Ensures the frame has its table on the stack (created lazily when the
 * first child starts, or at once when the element has attributes). */
static void s_need_table(lua_State *L, frame *f)
{
    if (f->tbl) return;
    lua_createtable(L, (int)(2 * f->nchild), f->nattr ? 2 : 0);
    f->tbl = lua_gettop(L);
}

/* Appends text to t._text (mixed content; rare). Stack: [.. t ..] -> same */
static void s_add_text(lua_State *L, int tbl, const char *s, size_t n)
{
    if (lua_getfield(L, tbl, "_text") == LUA_TSTRING) {
        lua_pushlstring(L, s, n);
        lua_concat(L, 2);
    } else {
        lua_pop(L, 1);
        lua_pushlstring(L, s, n);
    }
    lua_setfield(L, tbl, "_text");
}

/* lua_pcall'd: upvalue-free; arg 1 = lightuserdata box.
 * Returns node, root_name, or nil, message for structural limits. */
static int s_phase2(lua_State *L)
{
    xml_box *b = lua_touserdata(L, 1);
    const char *p = b->buf, *end = b->buf + b->len;
    frame st[XML_MAX_DEPTH + 1];
    int depth = 0;
    lua_settop(L, 0);
    if (!lua_checkstack(L, XML_MAX_DEPTH + 16)) {
        lua_pushnil(L);
        lua_pushliteral(L, "XML: not enough Lua stack");
        return 2;
    }
    while (p < end) {
        char ev = *p++;
        if (ev == EV_START) {
            frame *f;
            uint32_t i;
            if (depth > 0) s_need_table(L, &st[depth - 1]);   /* parent gets a table */
            f = &st[depth++];
            f->nchild = s_get_u32(&p);
            f->nattr = s_get_u32(&p);
            f->nlen = s_get_u32(&p);
            f->name = p;
            p += f->nlen;
            f->text = NULL;
            f->tlen = 0;
            f->tbl = 0;
            f->pos = 0;
            if (f->nattr) {
                s_need_table(L, f);                 /* [.. t] */
                lua_createtable(L, 0, (int)f->nattr); /* [.. t attrs] */
                for (i = 0; i < f->nattr; i++) {
                    uint32_t kl = s_get_u32(&p);
                    const char *k = p;
                    uint32_t vl;
                    p += kl;
                    vl = s_get_u32(&p);
                    lua_pushlstring(L, k, kl);      /* [.. t attrs k] */
                    lua_pushlstring(L, p, vl);      /* [.. t attrs k v] */
                    lua_rawset(L, -3);              /* [.. t attrs] */
                    p += vl;
                }
                lua_setfield(L, f->tbl, "_attr");   /* [.. t] */
            }
        } else if (ev == EV_TEXT) {
            frame *f = &st[depth - 1];
            uint32_t n = s_get_u32(&p);
            if (!f->text && f->pos == 0) {
                f->text = p;                        /* leading segment */
                f->tlen = n;
            } else if (!s_blank(p, n)) {
                s_need_table(L, f);                 /* mixed content */
                s_add_text(L, f->tbl, p, n);
            }
            p += n;
        } else { /* EV_END */
            frame *f = &st[--depth];
            if (f->tbl) {
                /* [.. t] */
                if (f->text && f->pos == 0) {
                    /* a leaf that carries attributes: its text as is */
                    lua_pushlstring(L, f->text, f->tlen);
                    lua_setfield(L, f->tbl, "_text");
                } else if (f->text && !s_blank(f->text, f->tlen)) {
                    /* mixed content: the leading text goes first */
                    lua_pushlstring(L, f->text, f->tlen);    /* [.. t s] */
                    if (lua_getfield(L, f->tbl, "_text") == LUA_TSTRING)
                        lua_concat(L, 2);                     /* [.. t s..old] */
                    else
                        lua_pop(L, 1);                        /* [.. t s] */
                    lua_setfield(L, f->tbl, "_text");         /* [.. t] */
                }
            } else {
                lua_pushlstring(L, f->text ? f->text : "", f->tlen);  /* [.. v] */
            }
            if (depth == 0) {
                /* [v] root done */
                lua_pushlstring(L, f->name, f->nlen);
                return 2;
            }
            {
                frame *parent = &st[depth - 1];
                lua_pushlstring(L, f->name, f->nlen);        /* [.. pt .. v name] */
                lua_rawseti(L, parent->tbl, ++parent->pos);  /* [.. pt .. v] */
                lua_rawseti(L, parent->tbl, ++parent->pos);  /* [.. pt ..] */
            }
        }
    }
    lua_pushnil(L);
    lua_pushliteral(L, "XML parse error: unexpected end of events");
    return 2;
}

/* core.xml_decode(s) -> node, root_name | nil, err */
static int s_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    xml_box *b = lua_touserdata(L, lua_upvalueindex(1));
    const char *err;
    char msg[256];
    int status;
    if (b->busy) {
        /* Re-entered (a finalizer running during phase 2 called us):
         * use a private box that the collector frees. */
        b = s_box_new(L);
    }
    b->busy = 1;
    err = s_phase1(b, s, n, msg, sizeof msg);
    if (err) {
        b->busy = 0;
        if (b->cap > XML_KEEP_BYTES) s_box_release(b);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushcfunction(L, s_phase2);
    lua_pushlightuserdata(L, b);
    status = lua_pcall(L, 1, 2, 0);
    b->busy = 0;
    if (b->cap > XML_KEEP_BYTES) s_box_release(b);
    if (status != LUA_OK) return lua_error(L);   /* out of memory: re-raise */
    return 2;
}

/* core.xml_escape(s) -> s with & < > " ' and CR/LF/TAB in attribute-safe
 * form. Used by the Lua XML writer for text and attribute values. */
static int s_escape(lua_State *L)
{
    size_t n, i, start = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer B;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' || c == '\r' || c == '\n') break;
    }
    if (i == n) { lua_settop(L, 1); return 1; }
    luaL_buffinit(L, &B);
    for (i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        case '\r': rep = "&#xD;"; break;
        case '\n': rep = "&#xA;"; break;
        default: continue;
        }
        luaL_addlstring(&B, s + start, i - start);
        luaL_addstring(&B, rep);
        start = i + 1;
    }
    luaL_addlstring(&B, s + start, n - start);
    luaL_pushresult(&B);
    return 1;
}

void aio_xml_open(lua_State *L)
{
    /* [core] */
    if (luaL_newmetatable(L, XML_BOX_MT)) {      /* [core mt] */
        lua_pushcfunction(L, s_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, s_box_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);                                /* [core] */
    s_box_new(L);                                 /* [core box] */
    lua_pushcclosure(L, s_decode, 1);             /* [core decode] */
    lua_setfield(L, -2, "xml_decode");            /* [core] */
    lua_pushcfunction(L, s_escape);
    lua_setfield(L, -2, "xml_escape");
    lua_pushstring(L, XML_ExpatVersion());
    lua_setfield(L, -2, "expat_version");
}
