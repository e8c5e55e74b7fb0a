/* xml.c: XML decoding with expat into a compact Lua form.
 *
 * core.xml_decode(s [, "sequence"]) -> node, root_name | nil, err
 * core.xml_escape(s) -> s with &, <, >, ", ', CR, LF escaped
 * core.xml_schema(nodes), core.xml_decode_shaped(s, schema): straight to
 *   the output of one shape (see "shape-directed decoding" below)
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
 * as S3 sends it by default (296 KB): xml_decode 1.3 ms; bytes to the final
 * output (protocol.parse, shaped path below) 1.2-1.4 ms of CPU, against
 * 2.2 ms through this generic form and the Lua reader; with FetchOwner
 * (362 KB): 1.8 ms against 3.3 ms. Expat alone takes 0.85 and 1.1 ms.
 * (lua5.4 5.4.4, -O2, one core of a shared 2-core AMD EPYC VM, best of
 * several runs.)
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
    /* shaped decoding: per (schema node, name id) the field index + 2
     * (0 = not looked up yet, 1 = not a field) */
    uint32_t *fcache;
    size_t fcache_cap;
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
    free(b->fcache);
    b->fcache = NULL;
    b->fcache_cap = 0;
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

/* ---- shape-directed decoding ------------------------------------------
 *
 * core.xml_schema(nodes) -> schema
 * core.xml_decode_shaped(s, schema) -> output | false | nil, err
 *
 * The generic form above is read into the output by Lua (protocol/xml.lua);
 * for the output shapes that matter for speed (a ListObjectsV2 page is
 * thousands of small records) the same events are turned straight into the
 * final output here, guided by a schema compiled once per shape in Lua:
 * `nodes[i]` is the list of fields of structure i (the root is 1), a field
 * {elem, member, kind, item_kind, sub}; `elem` the element name, `member`
 * the output key, `kind` one of the K_ numbers below, `sub` a node index.
 * Anything the schema cannot say exactly as the Lua reader would (a leaf
 * with child elements, a number that is not plain digits, a timestamp not
 * in the S3 form, ...) returns false, and the caller uses the generic path,
 * which also reports malformed documents. So the two paths cannot differ
 * on any document: this one either agrees or declines. */

#define XS_MT "aio_aws.xml_schema"
enum { K_STR = 1, K_INT = 2, K_BOOL = 3, K_TS = 4, K_FLOAT = 5, K_STRUCT = 7, K_LIST = 8, K_FLIST = 10 };

typedef struct xs_field {
    uint32_t elem_off, elem_len;   /* in strs */
    int member;                    /* index in the uservalue's key list */
    int kind, item_kind;
    int sub;                       /* 0-based node, -1 when none */
} xs_field;

typedef struct xml_schema {
    uint32_t nnodes, nfields;
    uint32_t *first, *count;       /* fields of node i: [first[i], first[i] + count[i]) */
    xs_field *fields;
    char *strs;
} xml_schema;

static int xs_gc(lua_State *L)
{
    xml_schema *x = luaL_checkudata(L, 1, XS_MT);
    free(x->first); free(x->count); free(x->fields); free(x->strs);
    x->first = x->count = NULL; x->fields = NULL; x->strs = NULL;
    x->nnodes = x->nfields = 0;
    return 0;
}

static int xs_int_field(lua_State *L, int t, const char *k, int def)
{
    int isnum, v;
    lua_getfield(L, t, k);
    v = (int)lua_tointegerx(L, -1, &isnum);
    if (!isnum) {
        if (!lua_isnil(L, -1) || def == INT_MIN) luaL_error(L, "xml_schema: field '%s' must be an integer", k);
        v = def;
    }
    lua_pop(L, 1);
    return v;
}

/* core.xml_schema(nodes): uservalue 1 = the output keys, by member index */
static int xs_new(lua_State *L)
{
    lua_Integer nn, i, j, nf = 0;
    size_t slen = 0;
    xml_schema *x;
    luaL_checktype(L, 1, LUA_TTABLE);
    nn = (lua_Integer)lua_rawlen(L, 1);
    if (nn < 1 || nn > 100000) return luaL_error(L, "xml_schema: 1 to 100000 nodes expected");
    for (i = 1; i <= nn; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE) return luaL_error(L, "xml_schema: node %d is not a table", (int)i);
        nf += (lua_Integer)lua_rawlen(L, -1);
        for (j = 1; j <= (lua_Integer)lua_rawlen(L, -1); j++) {
            size_t l;
            lua_rawgeti(L, -1, j);
            luaL_checktype(L, -1, LUA_TTABLE);
            lua_getfield(L, -1, "elem");
            if (!lua_tolstring(L, -1, &l)) return luaL_error(L, "xml_schema: field without elem");
            slen += l;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        if (nf > 1000000) return luaL_error(L, "xml_schema: too many fields");
    }
    x = lua_newuserdatauv(L, sizeof *x, 1);              /* [nodes x] */
    memset(x, 0, sizeof *x);
    luaL_setmetatable(L, XS_MT);
    x->first = malloc((size_t)nn * sizeof *x->first);
    x->count = malloc((size_t)nn * sizeof *x->count);
    x->fields = malloc((size_t)(nf ? nf : 1) * sizeof *x->fields);
    x->strs = malloc(slen ? slen : 1);
    if (!x->first || !x->count || !x->fields || !x->strs) return luaL_error(L, "out of memory");
    x->nnodes = (uint32_t)nn;
    lua_newtable(L);                                     /* [nodes x keys] */
    {
        uint32_t fi = 0, so = 0;
        int nkeys = 0;
        for (i = 1; i <= nn; i++) {
            lua_Integer cnt;
            lua_rawgeti(L, 1, i);                        /* [.. node] */
            cnt = (lua_Integer)lua_rawlen(L, -1);
            x->first[i - 1] = fi;
            x->count[i - 1] = (uint32_t)cnt;
            for (j = 1; j <= cnt; j++) {
                xs_field *f = &x->fields[fi++];
                size_t l;
                const char *e;
                lua_rawgeti(L, -1, j);                   /* [.. node field] */
                int ft = lua_gettop(L);
                lua_getfield(L, ft, "elem");
                e = lua_tolstring(L, -1, &l);
                memcpy(x->strs + so, e, l);
                f->elem_off = so;
                f->elem_len = (uint32_t)l;
                so += (uint32_t)l;
                lua_pop(L, 1);
                if (lua_getfield(L, ft, "member") != LUA_TSTRING)
                    return luaL_error(L, "xml_schema: field without member");
                lua_rawseti(L, 3, ++nkeys);              /* keys[nkeys] = member */
                f->member = nkeys;
                f->kind = xs_int_field(L, ft, "kind", INT_MIN);
                f->item_kind = xs_int_field(L, ft, "item_kind", 0);
                f->sub = xs_int_field(L, ft, "sub", 0) - 1;
                if (f->sub < -1 || f->sub >= (int)nn) return luaL_error(L, "xml_schema: bad node index");
                if ((f->kind == K_STRUCT || ((f->kind == K_LIST || f->kind == K_FLIST) && f->item_kind == K_STRUCT))
                    && f->sub < 0)
                    return luaL_error(L, "xml_schema: structure field without sub");
                lua_pop(L, 1);                           /* [.. node] */
            }
            lua_pop(L, 1);
        }
        x->nfields = fi;
    }
    lua_setiuservalue(L, -2, 1);                         /* [nodes x] */
    return 1;
}

/* Lua's iso_fast (protocol/timestamp.lua) in C: "YYYY-MM-DDThh:mm:ss[.f+]Z".
 * Returns 0 when not that form (the caller declines). */
static int64_t xs_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, mp, doy, doe;
    if (m <= 2) y -= 1;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    mp = (m + 9) % 12;
    doy = (153 * mp + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define XS_D(c) ((c) >= '0' && (c) <= '9')
static int xs_iso(lua_State *L, const char *s, size_t n)
{
    int64_t y, mo, d, secs, micro = 0;
    size_t k;
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return 0;
    if (!(s[10] == 'T' || s[10] == 't' || s[10] == ' ')) return 0;
    if (!(XS_D(s[0]) && XS_D(s[1]) && XS_D(s[2]) && XS_D(s[3]) && s[5] >= '0' && s[5] <= '1' && XS_D(s[6])
          && s[8] >= '0' && s[8] <= '3' && XS_D(s[9]) && s[11] >= '0' && s[11] <= '2' && XS_D(s[12])
          && s[14] >= '0' && s[14] <= '5' && XS_D(s[15]) && s[17] >= '0' && s[17] <= '6' && XS_D(s[18])))
        return 0;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    mo = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (mo < 1 || mo > 12 || d < 1) return 0;
    secs = (xs_days_from_civil(y, mo, 1) + d - 1) * 86400 + ((s[11] - '0') * 10 + (s[12] - '0')) * 3600
         + ((s[14] - '0') * 10 + (s[15] - '0')) * 60 + ((s[17] - '0') * 10 + (s[18] - '0'));
    if (s[19] == 'Z' || s[19] == 'z') {
        if (n != 20) return 0;
        lua_pushinteger(L, (lua_Integer)secs);
        return 1;
    }
    if (s[19] != '.') return 0;
    if (n == 24) {
        int64_t ms;
        if (s[23] != 'Z' || !XS_D(s[20]) || !XS_D(s[21]) || !XS_D(s[22])) return 0;
        ms = (s[20] - '0') * 100 + (s[21] - '0') * 10 + (s[22] - '0');
        if (ms == 0) lua_pushinteger(L, (lua_Integer)secs);
        else lua_pushnumber(L, (lua_Number)(secs * 1000 + ms) / 1000);
        return 1;
    }
    if (s[n - 1] != 'Z' && s[n - 1] != 'z') return 0;
    for (k = 20; k < n - 1; k++) {
        if (!XS_D(s[k])) return 0;
        if (k <= 25) micro = micro * 10 + (s[k] - '0');
    }
    if (k == 20) return 0;
    for (; k <= 25; k++) micro *= 10;
    if (micro == 0) lua_pushinteger(L, (lua_Integer)secs);
    else lua_pushnumber(L, (lua_Number)(secs * 1000000 + micro) / 1000000);
    return 1;
}

/* Pushes the value of a leaf of `kind` with text s; 0 = decline. */
static int xs_leaf(lua_State *L, int kind, const char *s, size_t n)
{
    switch (kind) {
    case K_STR:
        lua_pushlstring(L, s, n);
        return 1;
    case K_BOOL:
        lua_pushboolean(L, n == 4 && memcmp(s, "true", 4) == 0);
        return 1;
    case K_INT: {
        /* plain [+-]digits within 64 bits, as tonumber gives an integer */
        size_t i = 0;
        uint64_t v = 0;
        int neg = 0;
        if (n > 0 && (s[0] == '-' || s[0] == '+')) { neg = s[0] == '-'; i = 1; }
        if (i == n || n - i > 18) return 0;
        for (; i < n; i++) {
            if (!XS_D(s[i])) return 0;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        lua_pushinteger(L, neg ? -(lua_Integer)v : (lua_Integer)v);
        return 1;
    }
    case K_FLOAT: {
        char buf[64];
        char *endp;
        size_t i;
        double v;
        if (n == 0 || n >= sizeof buf) return 0;
        for (i = 0; i < n; i++)
            if (!(XS_D(s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '+' || s[i] == 'e' || s[i] == 'E')) return 0;
        memcpy(buf, s, n);
        buf[n] = 0;
        v = strtod(buf, &endp);
        if (*endp) return 0;
        lua_pushnumber(L, v);
        return 1;
    }
    case K_TS:
        return xs_iso(L, s, n);
    default:
        return 0;
    }
}

enum { SF_STRUCT, SF_LIST, SF_LEAF, SF_SKIP };

typedef struct sframe {
    int type;                 /* SF_* */
    int kind;                 /* leaf kind, or list item kind */
    int node;                 /* structure node (SF_STRUCT), item node (SF_LIST) */
    int tbl;                  /* stack index of its table (struct, list) */
    const xs_field *field;    /* the field it fills in its parent structure, or NULL */
    const char *text; uint32_t tlen;
    lua_Integer n;            /* list length */
} sframe;

/* field of structure `node` for element name id `id`, or NULL */
static const xs_field *xs_lookup(xml_box *b, const xml_schema *x, int node, uint32_t id)
{
    uint32_t *slot = &b->fcache[(size_t)node * b->nnames + id];
    if (*slot == 0) {
        uint32_t i, k = x->first[node], end = k + x->count[node];
        const char *nm = b->nbuf + b->names[id].off;
        uint32_t nl = b->names[id].len;
        *slot = 1;
        /* element names are unique per node (protocol/xml.lua compile_schema) */
        for (i = k; i < end; i++)
            if (x->fields[i].elem_len == nl && memcmp(x->strs + x->fields[i].elem_off, nm, nl) == 0)
                *slot = i + 2;
    }
    return *slot == 1 ? NULL : &x->fields[*slot - 2];
}

/* Stack: [box schema keys ...]. Sets the value on top into its place. */
static void xs_place(lua_State *L, sframe *parent, const xs_field *f)
{
    if (parent->type == SF_LIST) {
        lua_rawseti(L, parent->tbl, ++parent->n);
        return;
    }
    /* parent is a structure */
    lua_rawgeti(L, 3, f->member);                         /* [.. v key] */
    if (f->kind == K_FLIST) {
        lua_pushvalue(L, -1);                             /* [.. v key key] */
        if (lua_rawget(L, parent->tbl) != LUA_TTABLE) {   /* [.. v key list?] */
            lua_pop(L, 1);
            lua_createtable(L, 4, 0);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);                         /* [.. v key list key list] */
            lua_rawset(L, parent->tbl);
        }
        lua_rotate(L, -3, -1);                            /* [.. key list v] */
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
        return;
    }
    lua_insert(L, -2);                                    /* [.. key v] */
    lua_rawset(L, parent->tbl);
}

/* lua_pcall'd: (box, schema) -> output table, or false to decline */
static int s_phase2_shaped(lua_State *L)
{
    xml_box *b = lua_touserdata(L, 1);
    const xml_schema *x = lua_touserdata(L, 2);
    const char *p = b->buf, *end = b->buf + b->len;
    sframe st[XML_MAX_DEPTH + 1];
    int depth = 0;
    size_t need;
    lua_settop(L, 2);
    lua_getiuservalue(L, 2, 1);                           /* [box schema keys] */
    if (!lua_checkstack(L, XML_MAX_DEPTH + 16)) { lua_pushboolean(L, 0); return 1; }
    need = (size_t)x->nnodes * b->nnames;
    if (need > b->fcache_cap) {
        uint32_t *nc = realloc(b->fcache, need * sizeof *nc);
        if (!nc) return luaL_error(L, "out of memory");
        b->fcache = nc;
        b->fcache_cap = need;
    }
    memset(b->fcache, 0, need * sizeof *b->fcache);
    while (p < end) {
        char ev = *p++;
        if (ev == EV_START) {
            uint32_t nchild = s_get_u32(&p), i;
            uint32_t nattr, id;
            sframe *f, *parent = depth > 0 ? &st[depth - 1] : NULL;
            (void)s_get_u32(&p);                          /* flags */
            nattr = s_get_u32(&p);
            id = s_get_u32(&p);
            for (i = 0; i < nattr; i++) {                 /* attributes: not read */
                uint32_t l = s_get_u32(&p);
                p += l;
                l = s_get_u32(&p);
                p += l;
            }
            f = &st[depth++];
            f->text = NULL;
            f->tlen = 0;
            f->tbl = 0;
            f->n = 0;
            f->field = NULL;
            if (!parent) {                                /* the root: node 0 */
                f->type = SF_STRUCT;
                f->node = 0;
            } else if (parent->type == SF_SKIP) {
                f->type = SF_SKIP;
                continue;
            } else if (parent->type == SF_LEAF) {
                lua_pushboolean(L, 0);                    /* a leaf with elements */
                return 1;
            } else if (parent->type == SF_LIST) {         /* an item, any name */
                f->type = parent->kind == K_STRUCT ? SF_STRUCT : SF_LEAF;
                f->kind = parent->kind;
                f->node = parent->node;
            } else {                                      /* a structure's child */
                const xs_field *fd = xs_lookup(b, x, parent->node, id);
                f->field = fd;
                if (!fd) {
                    f->type = SF_SKIP;
                    continue;
                }
                if (fd->kind == K_STRUCT) {
                    f->type = SF_STRUCT;
                    f->node = fd->sub;
                } else if (fd->kind == K_LIST) {
                    f->type = SF_LIST;
                    f->kind = fd->item_kind;
                    f->node = fd->sub;
                } else if (fd->kind == K_FLIST) {         /* the element is an item */
                    f->type = fd->item_kind == K_STRUCT ? SF_STRUCT : SF_LEAF;
                    f->kind = fd->item_kind;
                    f->node = fd->sub;
                } else {
                    f->type = SF_LEAF;
                    f->kind = fd->kind;
                }
            }
            if (f->type == SF_STRUCT) {
                lua_createtable(L, 0, (int)(nchild < 64 ? nchild : 64));
                f->tbl = lua_gettop(L);
            } else if (f->type == SF_LIST) {
                lua_createtable(L, (int)(nchild < 4096 ? nchild : 4096), 0);
                f->tbl = lua_gettop(L);
            }
        } else if (ev == EV_TEXT) {
            sframe *f = &st[depth - 1];
            uint32_t n = s_get_u32(&p);
            if (f->type == SF_LEAF && !f->text) {
                f->text = p;
                f->tlen = n;
            }
            p += n;
        } else { /* EV_END */
            sframe *f = &st[--depth];
            if (f->type == SF_SKIP) continue;
            if (f->type == SF_LEAF) {
                if (!xs_leaf(L, f->kind, f->text ? f->text : "", f->tlen)) {
                    lua_pushboolean(L, 0);
                    return 1;
                }
            }                                             /* [.. v] */
            if (depth == 0) {
                if (f->type != SF_STRUCT) { lua_pushboolean(L, 0); return 1; }
                return 1;
            }
            xs_place(L, &st[depth - 1], f->field);
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* core.xml_decode_shaped(s, schema) -> output | false | nil, err */
static int s_decode_shaped(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    xml_schema *x = luaL_checkudata(L, 2, XS_MT);
    xml_box *b = lua_touserdata(L, lua_upvalueindex(1));
    const char *err;
    char msg[256];
    int status;
    if (!x->fields) return luaL_argerror(L, 2, "schema was collected");
    if (b->busy) b = s_box_new(L);
    b->busy = 1;
    b->all_sequence = 0;
    err = s_phase1(b, s, n, msg, sizeof msg);
    if (err) {
        b->busy = 0;
        if (b->cap > XML_KEEP_BYTES) s_box_release(b);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushcfunction(L, s_phase2_shaped);
    lua_pushlightuserdata(L, b);
    lua_pushvalue(L, 2);
    status = lua_pcall(L, 2, 1, 0);
    b->busy = 0;
    if (b->cap > XML_KEEP_BYTES) s_box_release(b);
    if (status != LUA_OK) return lua_error(L);
    return 1;
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
    if (luaL_newmetatable(L, XS_MT)) {
        lua_pushcfunction(L, xs_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    s_box_new(L);                                 /* [core box] */
    lua_pushvalue(L, -1);                         /* [core box box] */
    lua_pushcclosure(L, s_decode, 1);             /* [core box decode] */
    lua_setfield(L, -3, "xml_decode");            /* [core box] */
    lua_pushcclosure(L, s_decode_shaped, 1);      /* [core decode_shaped] */
    lua_setfield(L, -2, "xml_decode_shaped");     /* [core] */
    lua_pushcfunction(L, xs_new);
    lua_setfield(L, -2, "xml_schema");
    lua_pushcfunction(L, s_escape);
    lua_setfield(L, -2, "xml_escape");            /* [core] */
    lua_pushstring(L, XML_ExpatVersion());
    lua_setfield(L, -2, "expat_version");         /* [core] */
}
