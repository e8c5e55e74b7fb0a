/* xml.c: XML decoding with expat into a compact Lua form.
 *
 * core.xml_decode(s [, "sequence"]) -> node, root_name | nil, err
 * core.xml_escape(s) -> s with &, <, >, ", ', CR, LF escaped
 *
 * The decoded form is designed for the shape-directed readers in
 * lua/aio_aws/protocol/xml.lua (which turn it into the final output, mostly
 * in place), not for general DOM work. A value is:
 *
 *   - a string: an element with no child elements and no attributes is its
 *     text ("" when empty): <Key>a.txt</Key> -> "a.txt";
 *   - a "record" table: an element whose child elements all have different
 *     names maps each child name to its value,
 *     <Owner><ID>1</ID><DisplayName>w</DisplayName></Owner>
 *       -> {ID = "1", DisplayName = "w"};
 *   - a "sequence" table: an element with repeated child names keeps its
 *     children as flat pairs in document order,
 *     <L><member>a</member><member>b</member></L> -> {"member", "a", "member", "b"}.
 *
 *   Tables also carry `_attr` = {raw attribute name = value} when the element
 *   has attributes and `_text` = its text when that text is not only
 *   whitespace (mixed content, or a leaf that has attributes); a record with
 *   children has `_n` = their number (so a reader that looks its members up
 *   by name knows whether anything else is left over). Record and
 *   sequence tables tell apart by t[1] (nil for a record: XML names never
 *   start with a digit). A child named "_attr", "_text" or "_n", or more than
 *   XML_RECORD_MAX different child names, makes a sequence. Passing
 *   "sequence" as the second argument makes every element a sequence (an
 *   order-preserving form for generic use and canonical comparison).
 *
 *   Element names are local names: a "prefix:" is dropped, as botocore's
 *   ElementTree-based parser drops "{namespace-uri}". Attribute names stay
 *   raw ("xsi:type", "xmlns:xsi"), as the models name them.
 *
 * Why this form: a page of ListObjectsV2 is one sequence (the repeated
 * <Contents>) of records; the reader converts each record in place (a few
 * fields change type) instead of copying it, and strings for element names
 * are made once per distinct name.
 *
 * Measured (spec/xml_spec.lua prints it): a 1,000-key ListObjectsV2 page
 * as S3 sends it by default (296 KB): xml_decode 1.3 ms, bytes to the final
 * parsed output table (protocol.parse) 2.2 ms of CPU; with FetchOwner
 * (362 KB): 1.9 ms and 3.3 ms. Expat alone takes 0.85 and 1.1 ms of that.
 * (lua5.4 5.4.4, -O2, one core of a shared 2-core AMD EPYC VM, best of
 * several runs; under load the same page measured up to 2.8 ms.)
 *
 * Memory safety (STYLE.md §3 rule 8): expat's callbacks never call Lua.
 * Phase 1 runs expat and records compact events into a malloc'd buffer.
 * Phase 2 turns the events into Lua values inside a lua_pcall, after the
 * parse has finished. The buffer and the parser live in a userdata "box"
 * whose __gc frees them, so neither a Lua error (out of memory in phase 2)
 * nor an early return can leak or long-jump through expat.
 *
 * Hostile input: document type declarations (and so every <!ENTITY ...>)
 * are refused outright, so "billion laughs" expansion, external and
 * parameter entities cannot start; expat's own amplification
 * limit stays on as a second fence; no external entity handler is set, so
 * external entities and parameter entities are never loaded; nesting is
 * capped at XML_MAX_DEPTH. Every failure is `nil, message`, never a raise
 * (except out of memory, raised as Lua does everywhere).
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
#define XML_RECORD_MAX 32          /* distinct child names a record may have */
#define XML_BOX_MT "aio_aws.xml_box"
/* A reusable buffer that grew past this is released after the call. */
#define XML_KEEP_BYTES (4u << 20)

/* Event tags in the phase-1 buffer. Integers are stored with memcpy in
 * native byte order (the buffer never leaves the process).
 *   START: tag, u32 nchild, u32 flags, u32 nattr, u32 name id,
 *          nattr x (u32 len, bytes, u32 len, bytes)
 *   TEXT:  tag, u32 len, bytes   (consecutive character data merged)
 *   END:   tag */
enum { EV_START = 'S', EV_TEXT = 'T', EV_END = 'E' };
enum { FL_SEQUENCE = 1 };

typedef struct open_elem {
    size_t at;                 /* offset of its START event */
    uint32_t nchild;
    uint32_t flags;
    uint32_t ndistinct;        /* child name ids seen, while a record */
    uint32_t ids[XML_RECORD_MAX];
} open_elem;

typedef struct xml_box {
    XML_Parser parser;     /* reused across calls with XML_ParserReset */
    char *buf;             /* phase-1 event buffer */
    size_t len, cap;
    int busy;              /* set while a call uses this box */
    int all_sequence;      /* the "sequence" option */
    /* phase-1 state */
    size_t last_text;      /* offset of the length field of the last TEXT event */
    int last_was_text;
    int depth;
    open_elem open[XML_MAX_DEPTH];
    const char *error;     /* our own stop reason, or NULL */
    uint32_t id_attr, id_text, id_n;  /* ids of "_attr", "_text", "_n" if seen, else UINT32_MAX */
    /* distinct element names: an open-addressing table of ids, so that
     * phase 2 makes each name string once */
    uint32_t *slots;       /* id + 1, 0 = empty; nslots is a power of 2 */
    uint32_t nslots;
    uint32_t nnames;
    struct { uint32_t off, len, hash; } *names;
    uint32_t names_cap;
    char *nbuf;            /* name bytes */
    size_t nbuf_len, nbuf_cap;
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
    free(b->slots);
    b->slots = NULL;
    b->nslots = 0;
    free(b->names);
    b->names = NULL;
    b->names_cap = b->nnames = 0;
    free(b->nbuf);
    b->nbuf = NULL;
    b->nbuf_len = b->nbuf_cap = 0;
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

/* Id of a local element name, adding it when new; UINT32_MAX when out of
 * memory. FNV-1a hash, linear probing, table kept at most half full. */
static uint32_t s_name_id(xml_box *b, const char *p, size_t len)
{
    uint32_t h = 2166136261u, mask, i;
    size_t k;
    for (k = 0; k < len; k++) h = (h ^ (unsigned char)p[k]) * 16777619u;
    if ((b->nnames + 1) * 2 > b->nslots) {
        uint32_t nn = b->nslots ? b->nslots * 2 : 64, j;
        uint32_t *ns;
        if (nn > (UINT32_MAX >> 2)) return UINT32_MAX;
        ns = calloc(nn, sizeof *ns);
        if (!ns) return UINT32_MAX;
        for (j = 0; j < b->nnames; j++) {
            uint32_t at = b->names[j].hash & (nn - 1);
            while (ns[at]) at = (at + 1) & (nn - 1);
            ns[at] = j + 1;
        }
        free(b->slots);
        b->slots = ns;
        b->nslots = nn;
    }
    mask = b->nslots - 1;
    for (i = h & mask; b->slots[i]; i = (i + 1) & mask) {
        uint32_t id = b->slots[i] - 1;
        if (b->names[id].hash == h && b->names[id].len == len &&
            memcmp(b->nbuf + b->names[id].off, p, len) == 0)
            return id;
    }
    if (b->nnames == b->names_cap) {
        uint32_t nc = b->names_cap ? b->names_cap * 2 : 32;
        void *nb = realloc(b->names, (size_t)nc * sizeof *b->names);
        if (!nb) return UINT32_MAX;
        b->names = nb;
        b->names_cap = nc;
    }
    if (len > UINT32_MAX || b->nbuf_len > UINT32_MAX - len) return UINT32_MAX;
    if (b->nbuf_len + len > b->nbuf_cap) {
        size_t nc = b->nbuf_cap ? b->nbuf_cap : 1024;
        char *nb;
        while (nc < b->nbuf_len + len) nc *= 2;
        nb = realloc(b->nbuf, nc);
        if (!nb) return UINT32_MAX;
        b->nbuf = nb;
        b->nbuf_cap = nc;
    }
    memcpy(b->nbuf + b->nbuf_len, p, len);
    b->names[b->nnames].off = (uint32_t)b->nbuf_len;
    b->names[b->nnames].len = (uint32_t)len;
    b->names[b->nnames].hash = h;
    b->nbuf_len += len;
    b->slots[i] = b->nnames + 1;
    if (len == 5 && memcmp(p, "_attr", 5) == 0) b->id_attr = b->nnames;
    if (len == 5 && memcmp(p, "_text", 5) == 0) b->id_text = b->nnames;
    if (len == 2 && memcmp(p, "_n", 2) == 0) b->id_n = b->nnames;
    return b->nnames++;
}

/* A child named `id` starts under `parent`: keep the parent a record while
 * its child names stay distinct (and few, and not our reserved keys). */
static void s_note_child(xml_box *b, open_elem *parent, uint32_t id)
{
    uint32_t k;
    parent->nchild++;
    if (parent->flags & FL_SEQUENCE) return;
    if (id == b->id_attr || id == b->id_text || id == b->id_n || parent->ndistinct == XML_RECORD_MAX) {
        parent->flags |= FL_SEQUENCE;
        return;
    }
    for (k = 0; k < parent->ndistinct; k++) {
        if (parent->ids[k] == id) {
            parent->flags |= FL_SEQUENCE;
            return;
        }
    }
    parent->ids[parent->ndistinct++] = id;
}

static void XMLCALL s_on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_box *b = ud;
    const char *local = name, *q;
    size_t need;
    uint32_t nattr = 0, id;
    open_elem *e;
    int i;
    if (b->error) return;
    if (b->depth >= XML_MAX_DEPTH) { s_stop(b, "XML nesting too deep"); return; }
    for (q = name; *q; q++)
        if (*q == ':') local = q + 1;
    id = s_name_id(b, local, (size_t)(q - local));
    if (id == UINT32_MAX) { s_stop(b, "out of memory"); return; }
    need = 1 + 4 * sizeof(uint32_t);
    for (i = 0; atts[i]; i += 2) {
        need += 2 * sizeof(uint32_t) + strlen(atts[i]) + strlen(atts[i + 1]);
        nattr++;
    }
    if (need > UINT32_MAX || !s_reserve(b, need)) {
        s_stop(b, "out of memory");
        return;
    }
    if (b->depth > 0) s_note_child(b, &b->open[b->depth - 1], id);
    e = &b->open[b->depth++];
    e->at = b->len;
    e->nchild = 0;
    e->flags = b->all_sequence ? FL_SEQUENCE : 0;
    e->ndistinct = 0;
    b->buf[b->len++] = EV_START;
    s_put_u32(b, 0);                /* child count, patched at the end tag */
    s_put_u32(b, 0);                /* flags, patched at the end tag */
    s_put_u32(b, nattr);
    s_put_u32(b, id);
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
    open_elem *e;
    (void)name;
    if (b->error) return;
    if (!s_reserve(b, 1)) { s_stop(b, "out of memory"); return; }
    e = &b->open[--b->depth];
    memcpy(b->buf + e->at + 1, &e->nchild, sizeof e->nchild);
    memcpy(b->buf + e->at + 1 + sizeof(uint32_t), &e->flags, sizeof e->flags);
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

/* AWS never sends a document type declaration. Refusing any DTD removes
 * entity expansion ("billion laughs"), external entities and parameter
 * entities at the root (as defusedxml's forbid_dtd does); refusing entity
 * declarations too is a second fence should the first ever be lifted. */
static void XMLCALL s_on_doctype(void *ud, const XML_Char *doctypeName, const XML_Char *sysid,
                                 const XML_Char *pubid, int has_internal_subset)
{
    (void)doctypeName; (void)sysid; (void)pubid; (void)has_internal_subset;
    s_stop(ud, "XML document type declarations (DTD) are not allowed");
}

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
    b->nnames = 0;
    b->nbuf_len = 0;
    b->id_attr = b->id_text = b->id_n = UINT32_MAX;
    if (b->slots) memset(b->slots, 0, (size_t)b->nslots * sizeof *b->slots);
    XML_SetUserData(p, b);
    XML_SetElementHandler(p, s_on_start, s_on_end);
    XML_SetCharacterDataHandler(p, s_on_text);
    XML_SetStartDoctypeDeclHandler(p, s_on_doctype);
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
    uint32_t name;                     /* id: index in the names table */
    const char *text; uint32_t tlen;   /* leading text segment */
    int tbl;                           /* stack index of the table, 0 if none */
    uint32_t nchild, nattr, flags;
    uint32_t pos;                      /* sequence: last array slot used */
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
    int extra;
    if (f->tbl) return;
    extra = f->nattr ? 2 : 0;
    if (f->flags & FL_SEQUENCE)
        lua_createtable(L, (int)(2 * f->nchild), extra);
    else
        lua_createtable(L, 0, (int)f->nchild + extra + 1);
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

/* lua_pcall'd; arg 1 = lightuserdata box.
 * Returns node, root_name, or nil, message for structural limits. */
static int s_phase2(lua_State *L)
{
    xml_box *b = lua_touserdata(L, 1);
    const char *p = b->buf, *end = b->buf + b->len;
    frame st[XML_MAX_DEPTH + 1];
    int depth = 0;
    uint32_t i;
    lua_settop(L, 0);
    if (!lua_checkstack(L, XML_MAX_DEPTH + 16)) {
        lua_pushnil(L);
        lua_pushliteral(L, "XML: not enough Lua stack");
        return 2;
    }
    /* [names]: each distinct element name once, at stack index 1 */
    lua_createtable(L, (int)b->nnames, 0);
    for (i = 0; i < b->nnames; i++) {
        lua_pushlstring(L, b->nbuf + b->names[i].off, b->names[i].len);
        lua_rawseti(L, 1, (lua_Integer)i + 1);
    }
    while (p < end) {
        char ev = *p++;
        if (ev == EV_START) {
            frame *f;
            if (depth > 0) s_need_table(L, &st[depth - 1]);   /* parent gets a table */
            f = &st[depth++];
            f->nchild = s_get_u32(&p);
            f->flags = s_get_u32(&p);
            f->nattr = s_get_u32(&p);
            f->name = s_get_u32(&p);
            f->text = NULL;
            f->tlen = 0;
            f->tbl = 0;
            f->pos = 0;
            if (f->nattr) {
                s_need_table(L, f);                   /* [.. t] */
                lua_createtable(L, 0, (int)f->nattr); /* [.. t attrs] */
                for (i = 0; i < f->nattr; i++) {
                    uint32_t kl = s_get_u32(&p);
                    const char *k = p;
                    uint32_t vl;
                    p += kl;
                    vl = s_get_u32(&p);
                    lua_pushlstring(L, k, kl);        /* [.. t attrs k] */
                    lua_pushlstring(L, p, vl);        /* [.. t attrs k v] */
                    lua_rawset(L, -3);                /* [.. t attrs] */
                    p += vl;
                }
                lua_setfield(L, f->tbl, "_attr");     /* [.. t] */
            }
        } else if (ev == EV_TEXT) {
            frame *f = &st[depth - 1];
            uint32_t n = s_get_u32(&p);
            if (f->pos == 0 && f->tbl == 0) {
                f->text = p;                          /* leading segment */
                f->tlen = n;
            } else if (f->pos == 0 && !f->text && f->nchild == 0) {
                f->text = p;                          /* leaf with attributes */
                f->tlen = n;
            } else if (!s_blank(p, n)) {
                s_need_table(L, f);                   /* mixed content */
                s_add_text(L, f->tbl, p, n);
            }
            p += n;
        } else { /* EV_END */
            frame *f = &st[--depth];
            if (f->tbl) {
                /* [.. t] */
                if (f->nchild > 0 && !(f->flags & FL_SEQUENCE)) {
                    lua_pushinteger(L, (lua_Integer)f->nchild);
                    lua_setfield(L, f->tbl, "_n");            /* record size */
                }
                if (f->text && f->nchild == 0) {
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
                /* [names v] root done */
                lua_rawgeti(L, 1, (lua_Integer)f->name + 1);
                return 2;
            }
            {
                frame *parent = &st[depth - 1];
                lua_rawgeti(L, 1, (lua_Integer)f->name + 1); /* [.. pt .. v name] */
                if (parent->flags & FL_SEQUENCE) {
                    lua_rawseti(L, parent->tbl, ++parent->pos);  /* [.. pt .. v] */
                    lua_rawseti(L, parent->tbl, ++parent->pos);  /* [.. pt ..] */
                } else {
                    lua_insert(L, -2);                            /* [.. pt .. name v] */
                    lua_rawset(L, parent->tbl);                   /* [.. pt ..] */
                    parent->pos++;
                }
            }
        }
    }
    lua_pushnil(L);
    lua_pushliteral(L, "XML parse error: unexpected end of events");
    return 2;
}

/* core.xml_decode(s [, "sequence"]) -> node, root_name | nil, err */
static int s_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *mode = luaL_optstring(L, 2, "record");
    xml_box *b = lua_touserdata(L, lua_upvalueindex(1));
    const char *err;
    char msg[256];
    int status, seq;
    if (strcmp(mode, "sequence") == 0) seq = 1;
    else if (strcmp(mode, "record") == 0) seq = 0;
    else return luaL_argerror(L, 2, "\"record\" or \"sequence\" expected");
    if (b->busy) {
        /* Re-entered (a finalizer running during phase 2 called us):
         * use a private box that the collector frees. */
        b = s_box_new(L);
    }
    b->busy = 1;
    b->all_sequence = seq;
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

/* core.xml_escape(s): text and attribute values for the XML writer. */
static int s_escape(lua_State *L)
{
    size_t n, i, start = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer B;
    for (i = 0; i < n; i++) {
        char c = s[i];
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
    lua_setfield(L, -2, "xml_escape");            /* [core] */
    lua_pushstring(L, XML_ExpatVersion());
    lua_setfield(L, -2, "expat_version");         /* [core] */
}
