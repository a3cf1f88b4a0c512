/*-------------------------------------------------------------------------
 *
 * mustache.c
 *	  Mustache template engine over jsonb, written for the notify extension.
 *
 * Compilation turns the template text into a flat array of nodes.  Text
 * nodes and names point into a private copy of the template text by offset;
 * a section node records the index of the first node after its body, so
 * rendering is a loop over the array that recurses only into section bodies
 * and partials.  The standalone-line rules are applied at compile time: a
 * standalone tag's line (leading whitespace, the tag, trailing whitespace
 * and the line ending) is dropped from the text nodes.
 *
 * Indentation of standalone partials is applied at render time, so one
 * compiled partial serves every call site: every node that starts a line of
 * its template carries MNF_LINE_START, and the renderer writes the current
 * indentation before such nodes and after each newline inside a text node
 * that is not the last character of that node.  This gives the same output
 * as indenting each non-empty line of the partial's text before compiling
 * it, which is how the spec describes it (empty lines are left alone, as
 * mustache.js and pystache do).
 *
 * Values are read straight from the jsonb binary form: names are looked up
 * with getKeyJsonValueFromContainer(), arrays are walked with a non-nesting
 * JsonbIterator, and nothing is converted to an in-memory tree.
 *
 * src/mustache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "mustache.h"

/* Node kinds of a compiled template */
typedef enum MNodeKind
{
	MN_TEXT,					/* literal text */
	MN_ESCAPED,					/* {{name}} */
	MN_RAW,						/* {{{name}}} or {{&name}} */
	MN_SECTION,					/* {{#name}} ... {{/name}} */
	MN_INVERTED,				/* {{^name}} ... {{/name}} */
	MN_PARTIAL					/* {{>name}} or {{>*name}} */
} MNodeKind;

/* Node flags */
#define MNF_LINE_START	0x01	/* node starts a line of its template */
#define MNF_STANDALONE	0x02	/* partial: standalone tag, indentation applies */
#define MNF_DYNAMIC		0x04	/* partial: name is looked up in the context */

/*
 * One compiled node.  Meaning of the fields by kind:
 *	TEXT:				off/len = the text
 *	ESCAPED, RAW:		part/nparts = the name
 *	SECTION, INVERTED:	part/nparts = the name, end = index after the body
 *	PARTIAL:			off/len = partial name (static) or part/nparts
 *						(MNF_DYNAMIC); indent/indent_len = the indentation
 *						when MNF_STANDALONE
 * nparts == 0 means the implicit iterator ".".
 */
typedef struct MNode
{
	uint8		kind;
	uint8		flags;
	int32		off;
	int32		len;
	int32		part;
	int32		nparts;
	int32		end;
	int32		indent;
	int32		indent_len;
} MNode;

/* One part of a dotted name, as offset and length in the template text */
typedef struct MPart
{
	int32		off;
	int32		len;
} MPart;

/* The compiled template: header, nodes, parts and text in one chunk */
struct MustacheTemplate
{
	int32		nnodes;
	int32		nparts;
	int32		textlen;
	const MNode *nodes;
	const MPart *parts;
	const char *text;
};

/* An open section while compiling */
typedef struct MSectionFrame
{
	int32		node;			/* index of the section node */
	int32		name_off;		/* trimmed tag content */
	int32		name_len;
	int32		tag_off;		/* where the opening tag starts */
} MSectionFrame;

/* Compiler state */
typedef struct MParser
{
	const char *src;
	int			len;

	/* current delimiters, and the closers of {{{ }}} and {{= =}} */
	const char *otag;
	int			otag_len;
	const char *ctag;
	int			ctag_len;
	char	   *brace_ctag;		/* "}" + ctag */
	char	   *equal_ctag;		/* "=" + ctag */

	MNode	   *nodes;
	int			nnodes;
	int			maxnodes;

	MPart	   *parts;
	int			nparts;
	int			maxparts;

	MSectionFrame *stack;
	int			depth;
	int			maxdepth;
} MParser;

/* One slot of the partials hash table */
typedef struct MPartialSlot
{
	char	   *name;			/* NULL if the slot is free */
	int			namelen;
	uint32		hash;
	MustacheTemplate *tpl;		/* NULL if there is no such partial */
} MPartialSlot;

/* Cache of compiled partials: an open-addressing hash table by name */
struct MustachePartials
{
	MemoryContext cxt;
	JsonbContainer *root;		/* NULL if there are no partials */
	MPartialSlot *slots;
	int			nslots;			/* a power of 2 */
	int			nused;
};

/* Renderer state */
typedef struct MRender
{
	StringInfo	out;
	int			base;			/* out->len when rendering started */
	Size		max_output;
	int			max_depth;
	int			depth;			/* partials currently being rendered */
	bool		escape;			/* {{name}} escapes HTML */

	MustachePartials *partials;

	/* context stack; the top is stack[nstack - 1] */
	JsonbValue *stack;
	int			nstack;
	int			maxstack;

	/* indentation of the standalone partial(s) being rendered */
	const char *indent;
	int			indent_len;

	/* numeric zero, for the truthiness of numbers; made on first use */
	Datum		zero;
	bool		have_zero;
} MRender;

/* Characters that {{name}} escapes */
static const bool html_special[256] = {
	['&'] = true,
	['<'] = true,
	['>'] = true,
	['"'] = true,
	['\''] = true,
};

static void render_nodes(MRender *rs, const MustacheTemplate *tpl,
						 int from, int to);


/* ----------------------------------------------------------------
 *		Compiler
 * ----------------------------------------------------------------
 */

/*
 * Compute the 1-based line and column (in characters) of byte offset off.
 */
static void
mp_location(MParser *ps, int off, int *line, int *col)
{
	const char *linestart = ps->src;
	int			ln = 1;
	int			i;

	for (i = 0; i < off; i++)
	{
		if (ps->src[i] == '\n')
		{
			ln++;
			linestart = ps->src + i + 1;
		}
	}
	*line = ln;
	*col = pg_mbstrlen_with_len(linestart, (int) (ps->src + off - linestart)) + 1;
}

/*
 * Find pat in src[from, len), returning its offset or -1.
 */
static int
mp_find(const char *src, int len, int from, const char *pat, int patlen)
{
	const char *p = src + from;
	const char *last;

	if (len - from < patlen)
		return -1;
	last = src + len - patlen;	/* the last possible match start */
	while (p <= last)
	{
		p = memchr(p, pat[0], last - p + 1);
		if (p == NULL)
			return -1;
		if (memcmp(p, pat, patlen) == 0)
			return (int) (p - src);
		p++;
	}
	return -1;
}

/* Is c a space or tab, the whitespace allowed around standalone tags? */
static inline bool
mp_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Is c whitespace for trimming tag contents? */
static inline bool
mp_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\f' || c == '\v';
}

/*
 * Is byte offset off at the start of a line of the template?
 */
static inline bool
mp_at_line_start(MParser *ps, int off)
{
	return off == 0 || ps->src[off - 1] == '\n';
}

/*
 * Append a zeroed node and return its index.
 */
static int
mp_add_node(MParser *ps, MNodeKind kind)
{
	MNode	   *n;

	if (ps->nnodes >= ps->maxnodes)
	{
		ps->maxnodes *= 2;
		ps->nodes = repalloc_huge(ps->nodes, sizeof(MNode) * ps->maxnodes);
	}
	n = &ps->nodes[ps->nnodes];
	memset(n, 0, sizeof(MNode));
	n->kind = (uint8) kind;
	return ps->nnodes++;
}

/*
 * Append a text node for src[start, end), unless it is empty and not
 * needed as a line-start marker.
 */
static void
mp_add_text(MParser *ps, int start, int end, bool marker)
{
	int			i;

	if (end <= start && !marker)
		return;
	i = mp_add_node(ps, MN_TEXT);
	ps->nodes[i].off = start;
	ps->nodes[i].len = end - start;
	if (mp_at_line_start(ps, start))
		ps->nodes[i].flags |= MNF_LINE_START;
}

/*
 * Split the (trimmed, non-empty) name src[start, end) into dotted parts
 * and attach them to node i.  "." is the implicit iterator (no parts).
 */
static void
mp_set_name(MParser *ps, int i, int start, int end)
{
	int			first = ps->nparts;
	int			p = start;

	if (end - start == 1 && ps->src[start] == '.')
	{
		ps->nodes[i].part = first;
		ps->nodes[i].nparts = 0;
		return;
	}

	for (;;)
	{
		const char *dot = memchr(ps->src + p, '.', end - p);
		int			pend = dot ? (int) (dot - ps->src) : end;

		if (ps->nparts >= ps->maxparts)
		{
			ps->maxparts *= 2;
			ps->parts = repalloc_huge(ps->parts, sizeof(MPart) * ps->maxparts);
		}
		ps->parts[ps->nparts].off = p;
		ps->parts[ps->nparts].len = pend - p;
		ps->nparts++;
		if (dot == NULL)
			break;
		p = pend + 1;
	}
	ps->nodes[i].part = first;
	ps->nodes[i].nparts = ps->nparts - first;
}

/*
 * Install new delimiters (pointers into the template text).
 */
static void
mp_set_delimiters(MParser *ps, const char *otag, int otag_len,
				  const char *ctag, int ctag_len)
{
	ps->otag = otag;
	ps->otag_len = otag_len;
	ps->ctag = ctag;
	ps->ctag_len = ctag_len;

	if (ps->brace_ctag)
		pfree(ps->brace_ctag);
	if (ps->equal_ctag)
		pfree(ps->equal_ctag);
	ps->brace_ctag = palloc(ctag_len + 1);
	ps->brace_ctag[0] = '}';
	memcpy(ps->brace_ctag + 1, ctag, ctag_len);
	ps->equal_ctag = palloc(ctag_len + 1);
	ps->equal_ctag[0] = '=';
	memcpy(ps->equal_ctag + 1, ctag, ctag_len);
}

/*
 * Handle the contents src[start, end) of a {{=open close=}} tag that
 * begins at byte offset tag_off.
 */
static void
mp_parse_delimiters(MParser *ps, int start, int end, int tag_off)
{
	const char *s = ps->src;
	int			o1,
				o2,
				c1,
				c2;
	int			i;

	/* first token */
	o1 = start;
	for (o2 = o1; o2 < end && !mp_is_space(s[o2]); o2++)
		;
	/* whitespace */
	for (c1 = o2; c1 < end && mp_is_space(s[c1]); c1++)
		;
	/* second token, which must end the contents */
	for (c2 = c1; c2 < end && !mp_is_space(s[c2]); c2++)
		;

	if (o2 == o1 || c1 == o2 || c2 == c1 || c2 != end)
		goto bad;
	for (i = o1; i < c2; i++)
		if (s[i] == '=')
			goto bad;

	mp_set_delimiters(ps, s + o1, o2 - o1, s + c1, c2 - c1);
	return;

bad:
	{
		int			line;
		int			col;

		mp_location(ps, tag_off, &line, &col);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid set-delimiter tag at line %d, column %d",
						line, col),
				 errhint("Give two delimiters separated by whitespace, neither containing whitespace or \"=\", as in {{=<%% %%>=}}.")));
	}
}

/*
 * Decide whether the tag src[tag_start, tag_end) stands alone on its line:
 * only blanks between the start of the line and the tag, only blanks and
 * then a line ending or the end of the template after it.  The text before
 * the tag begins at pos, so the backward scan stops there.  On success,
 * *ws_start is where the line (its leading blanks) starts and *next is
 * where the following line starts.
 */
static bool
mp_standalone(MParser *ps, int pos, int tag_start, int tag_end,
			  int *ws_start, int *next)
{
	const char *s = ps->src;
	int			i = tag_start;
	int			j = tag_end;

	while (i > pos && mp_is_blank(s[i - 1]))
		i--;
	if (!mp_at_line_start(ps, i))
		return false;

	while (j < ps->len && mp_is_blank(s[j]))
		j++;
	if (j < ps->len)
	{
		if (s[j] == '\n')
			j++;
		else if (s[j] == '\r' && j + 1 < ps->len && s[j + 1] == '\n')
			j += 2;
		else
			return false;
	}
	*ws_start = i;
	*next = j;
	return true;
}

/*
 * Compile template text into a MustacheTemplate allocated in cxt.
 */
MustacheTemplate *
mustache_compile(const char *text, int len, MemoryContext cxt)
{
	MParser		ps;
	int			pos = 0;
	Size		hdrsize;
	Size		nodesize;
	Size		partsize;
	char	   *chunk;
	MustacheTemplate *tpl;

	memset(&ps, 0, sizeof(ps));
	ps.src = text;
	ps.len = len;
	ps.maxnodes = 16;
	ps.nodes = palloc(sizeof(MNode) * ps.maxnodes);
	ps.maxparts = 16;
	ps.parts = palloc(sizeof(MPart) * ps.maxparts);
	ps.maxdepth = 8;
	ps.stack = palloc(sizeof(MSectionFrame) * ps.maxdepth);
	mp_set_delimiters(&ps, "{{", 2, "}}", 2);

	while (pos < len)
	{
		int			tag_start;
		int			p;
		char		type;
		const char *closer;
		int			closer_len;
		int			close_pos;
		int			tag_end;
		int			cstart;
		int			cend;
		bool		standalone = false;
		int			ws_start = 0;
		int			next = 0;
		int			line;
		int			col;
		int			i;

		CHECK_FOR_INTERRUPTS();

		tag_start = mp_find(text, len, pos, ps.otag, ps.otag_len);
		if (tag_start < 0)
		{
			mp_add_text(&ps, pos, len, false);
			break;
		}

		/* the sigil, if any, and the closing sequence to look for */
		p = tag_start + ps.otag_len;
		type = (p < len) ? text[p] : '\0';
		closer = ps.ctag;
		closer_len = ps.ctag_len;
		switch (type)
		{
			case '{':
				closer = ps.brace_ctag;
				closer_len = ps.ctag_len + 1;
				p++;
				break;
			case '=':
				closer = ps.equal_ctag;
				closer_len = ps.ctag_len + 1;
				p++;
				break;
			case '&':
			case '#':
			case '^':
			case '/':
			case '>':
			case '!':
				p++;
				break;
			case '<':
			case '$':
				mp_location(&ps, tag_start, &line, &col);
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("template inheritance tag at line %d, column %d is not supported",
								line, col)));
				break;
			default:
				type = 'v';
				break;
		}

		close_pos = mp_find(text, len, p, closer, closer_len);
		if (close_pos < 0)
		{
			mp_location(&ps, tag_start, &line, &col);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unclosed tag at line %d, column %d", line, col)));
		}
		tag_end = close_pos + closer_len;

		/* trimmed contents */
		cstart = p;
		cend = close_pos;
		while (cstart < cend && mp_is_space(text[cstart]))
			cstart++;
		while (cend > cstart && mp_is_space(text[cend - 1]))
			cend--;
		if (cstart == cend && type != '!' && type != '=')
		{
			mp_location(&ps, tag_start, &line, &col);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("empty tag name at line %d, column %d", line, col)));
		}

		if (type != 'v' && type != '{' && type != '&')
			standalone = mp_standalone(&ps, pos, tag_start, tag_end,
									   &ws_start, &next);

		/* text before the tag, minus a standalone tag's indentation */
		mp_add_text(&ps, pos, standalone ? ws_start : tag_start, false);

		switch (type)
		{
			case 'v':
			case '{':
			case '&':
				i = mp_add_node(&ps, type == 'v' ? MN_ESCAPED : MN_RAW);
				mp_set_name(&ps, i, cstart, cend);
				if (mp_at_line_start(&ps, tag_start))
					ps.nodes[i].flags |= MNF_LINE_START;
				break;

			case '#':
			case '^':
				i = mp_add_node(&ps, type == '#' ? MN_SECTION : MN_INVERTED);
				mp_set_name(&ps, i, cstart, cend);
				if (!standalone && mp_at_line_start(&ps, tag_start))
					ps.nodes[i].flags |= MNF_LINE_START;
				if (ps.depth >= ps.maxdepth)
				{
					ps.maxdepth *= 2;
					ps.stack = repalloc_huge(ps.stack,
											 sizeof(MSectionFrame) * ps.maxdepth);
				}
				ps.stack[ps.depth].node = i;
				ps.stack[ps.depth].name_off = cstart;
				ps.stack[ps.depth].name_len = cend - cstart;
				ps.stack[ps.depth].tag_off = tag_start;
				ps.depth++;
				break;

			case '/':
				{
					MSectionFrame *f;

					if (ps.depth == 0)
					{
						mp_location(&ps, tag_start, &line, &col);
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("closing tag \"%.*s\" at line %d, column %d has no open section",
										cend - cstart, text + cstart,
										line, col)));
					}
					f = &ps.stack[ps.depth - 1];
					if (f->name_len != cend - cstart ||
						memcmp(text + f->name_off, text + cstart,
							   cend - cstart) != 0)
					{
						int			oline;
						int			ocol;

						mp_location(&ps, tag_start, &line, &col);
						mp_location(&ps, f->tag_off, &oline, &ocol);
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("closing tag \"%.*s\" at line %d, column %d does not match section \"%.*s\" opened at line %d, column %d",
										cend - cstart, text + cstart,
										line, col,
										f->name_len, text + f->name_off,
										oline, ocol)));
					}
					/* keep the line-start indentation inside the body */
					if (!standalone && mp_at_line_start(&ps, tag_start))
						mp_add_text(&ps, tag_start, tag_start, true);
					ps.nodes[f->node].end = ps.nnodes;
					ps.depth--;
				}
				break;

			case '>':
				i = mp_add_node(&ps, MN_PARTIAL);
				if (text[cstart] == '*')
				{
					cstart++;
					while (cstart < cend && mp_is_space(text[cstart]))
						cstart++;
					if (cstart == cend)
					{
						mp_location(&ps, tag_start, &line, &col);
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("empty tag name at line %d, column %d",
										line, col)));
					}
					ps.nodes[i].flags |= MNF_DYNAMIC;
					mp_set_name(&ps, i, cstart, cend);
				}
				else
				{
					ps.nodes[i].off = cstart;
					ps.nodes[i].len = cend - cstart;
				}
				if (standalone)
				{
					ps.nodes[i].flags |= MNF_STANDALONE;
					ps.nodes[i].indent = ws_start;
					ps.nodes[i].indent_len = tag_start - ws_start;
				}
				else if (mp_at_line_start(&ps, tag_start))
					ps.nodes[i].flags |= MNF_LINE_START;
				break;

			case '=':
				mp_parse_delimiters(&ps, cstart, cend, tag_start);
				/* FALLTHROUGH */
			case '!':
				if (!standalone && mp_at_line_start(&ps, tag_start))
					mp_add_text(&ps, tag_start, tag_start, true);
				break;
		}

		pos = standalone ? next : tag_end;
	}

	if (ps.depth > 0)
	{
		MSectionFrame *f = &ps.stack[ps.depth - 1];
		int			line;
		int			col;

		mp_location(&ps, f->tag_off, &line, &col);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unclosed section \"%.*s\" opened at line %d, column %d",
						f->name_len, text + f->name_off, line, col)));
	}

	/* copy everything into one chunk in the target context */
	hdrsize = MAXALIGN(sizeof(MustacheTemplate));
	nodesize = MAXALIGN(sizeof(MNode) * ps.nnodes);
	partsize = MAXALIGN(sizeof(MPart) * ps.nparts);
	chunk = MemoryContextAllocHuge(cxt, hdrsize + nodesize + partsize + len + 1);
	tpl = (MustacheTemplate *) chunk;
	tpl->nnodes = ps.nnodes;
	tpl->nparts = ps.nparts;
	tpl->textlen = len;
	memcpy(chunk + hdrsize, ps.nodes, sizeof(MNode) * ps.nnodes);
	tpl->nodes = (const MNode *) (chunk + hdrsize);
	memcpy(chunk + hdrsize + nodesize, ps.parts, sizeof(MPart) * ps.nparts);
	tpl->parts = (const MPart *) (chunk + hdrsize + nodesize);
	memcpy(chunk + hdrsize + nodesize + partsize, text, len);
	chunk[hdrsize + nodesize + partsize + len] = '\0';
	tpl->text = chunk + hdrsize + nodesize + partsize;

	pfree(ps.nodes);
	pfree(ps.parts);
	pfree(ps.stack);
	pfree(ps.brace_ctag);
	pfree(ps.equal_ctag);

	return tpl;
}

/*
 * Release a compiled template.
 */
void
mustache_free(MustacheTemplate *tpl)
{
	if (tpl)
		pfree(tpl);
}


/* ----------------------------------------------------------------
 *		Partials cache
 * ----------------------------------------------------------------
 */

/*
 * Set up a partials cache in cxt over the jsonb object partials (which may
 * be NULL and must outlive the cache).
 */
static void
partials_init(MustachePartials *mp, Jsonb *partials, MemoryContext cxt)
{
	memset(mp, 0, sizeof(MustachePartials));
	mp->cxt = cxt;

	if (partials == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(partials))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mustache partials must be a jsonb object")));
	if (JB_ROOT_COUNT(partials) == 0)
		return;
	mp->root = &partials->root;
}

/* Error context callback naming the partial being compiled */
static void
partial_error_callback(void *arg)
{
	errcontext("mustache partial \"%s\"", (const char *) arg);
}

/*
 * Return the compiled partial called name (len bytes), or NULL if there is
 * none.  Compiles it on first use and remembers the answer either way.
 */
static const MustacheTemplate *
partials_lookup(MustachePartials *mp, const char *name, int len)
{
	uint32		hash;
	uint32		mask;
	uint32		i;
	MPartialSlot *slot;
	JsonbValue	v;
	MustacheTemplate *tpl = NULL;

	if (mp == NULL || mp->root == NULL)
		return NULL;

	hash = hash_bytes((const unsigned char *) name, len);
	if (mp->slots != NULL)
	{
		mask = (uint32) mp->nslots - 1;
		for (i = hash & mask; mp->slots[i].name != NULL; i = (i + 1) & mask)
		{
			slot = &mp->slots[i];
			if (slot->hash == hash && slot->namelen == len &&
				memcmp(slot->name, name, len) == 0)
				return slot->tpl;
		}
	}

	/* not seen yet: look it up and compile it */
	if (getKeyJsonValueFromContainer(mp->root, name, len, &v) != NULL &&
		v.type != jbvNull)
	{
		ErrorContextCallback errcb;
		char	   *cname = pnstrdup(name, len);

		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("mustache partial \"%s\" is not a string", cname)));

		errcb.callback = partial_error_callback;
		errcb.arg = cname;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		tpl = mustache_compile(v.val.string.val, v.val.string.len, mp->cxt);
		error_context_stack = errcb.previous;
		pfree(cname);
	}

	/* grow the table to keep it at most half full */
	if ((mp->nused + 1) * 2 > mp->nslots)
	{
		MPartialSlot *old = mp->slots;
		int			oldn = mp->nslots;
		int			j;

		mp->nslots = oldn > 0 ? oldn * 2 : 16;
		mp->slots = MemoryContextAllocZero(mp->cxt,
										   sizeof(MPartialSlot) * mp->nslots);
		mask = (uint32) mp->nslots - 1;
		for (j = 0; j < oldn; j++)
		{
			if (old[j].name == NULL)
				continue;
			for (i = old[j].hash & mask; mp->slots[i].name != NULL;
				 i = (i + 1) & mask)
				;
			mp->slots[i] = old[j];
		}
		if (old)
			pfree(old);
	}

	mask = (uint32) mp->nslots - 1;
	for (i = hash & mask; mp->slots[i].name != NULL; i = (i + 1) & mask)
		;
	slot = &mp->slots[i];
	slot->name = MemoryContextAlloc(mp->cxt, len + 1);
	memcpy(slot->name, name, len);
	slot->name[len] = '\0';
	slot->namelen = len;
	slot->hash = hash;
	slot->tpl = tpl;
	mp->nused++;

	return tpl;
}


/* ----------------------------------------------------------------
 *		Renderer
 * ----------------------------------------------------------------
 */

/* Raise the output size limit error */
static void
render_output_limit(MRender *rs)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("mustache output exceeds the limit of %zu bytes",
					rs->max_output)));
}

/*
 * Append len bytes verbatim, enforcing the output limit first.
 */
static inline void
emit_raw(MRender *rs, const char *p, int len)
{
	if ((Size) (rs->out->len - rs->base) + (Size) len > rs->max_output)
		render_output_limit(rs);
	appendBinaryStringInfo(rs->out, p, len);
}

/*
 * Append len bytes with & < > " ' replaced by HTML entities.
 */
static void
emit_escaped(MRender *rs, const char *p, int len)
{
	StringInfo	out = rs->out;
	const char *end = p + len;
	const char *run = p;

	/* escaping only grows the text, so a too long input fails early */
	if ((Size) (out->len - rs->base) + (Size) len > rs->max_output)
		render_output_limit(rs);

	for (; p < end; p++)
	{
		if (!html_special[(unsigned char) *p])
			continue;
		if (p > run)
			appendBinaryStringInfo(out, run, (int) (p - run));
		switch (*p)
		{
			case '&':
				appendBinaryStringInfo(out, "&amp;", 5);
				break;
			case '<':
				appendBinaryStringInfo(out, "&lt;", 4);
				break;
			case '>':
				appendBinaryStringInfo(out, "&gt;", 4);
				break;
			case '"':
				appendBinaryStringInfo(out, "&quot;", 6);
				break;
			case '\'':
				appendBinaryStringInfo(out, "&#39;", 5);
				break;
		}
		run = p + 1;
	}
	if (end > run)
		appendBinaryStringInfo(out, run, (int) (end - run));

	if ((Size) (out->len - rs->base) > rs->max_output)
		render_output_limit(rs);
}

/*
 * Append literal template text, writing the current indentation after each
 * newline that is not the last character of the text, except before an
 * empty line.
 */
static void
emit_indented(MRender *rs, const char *p, int len)
{
	const char *end = p + len;

	while (p < end)
	{
		const char *nl = memchr(p, '\n', end - p);

		if (nl == NULL)
		{
			emit_raw(rs, p, (int) (end - p));
			break;
		}
		emit_raw(rs, p, (int) (nl + 1 - p));
		p = nl + 1;
		if (p < end && *p != '\n')
			emit_raw(rs, rs->indent, rs->indent_len);
	}
}

/*
 * Append the text form of a value, escaped or not.
 */
static void
emit_value(MRender *rs, JsonbValue *v, bool escape)
{
	switch (v->type)
	{
		case jbvNull:
			break;
		case jbvString:
			if (escape)
				emit_escaped(rs, v->val.string.val, v->val.string.len);
			else
				emit_raw(rs, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			{
				char	   *s;

				s = DatumGetCString(DirectFunctionCall1(numeric_out,
														NumericGetDatum(v->val.numeric)));
				emit_raw(rs, s, (int) strlen(s));
				pfree(s);
			}
			break;
		case jbvBool:
			if (v->val.boolean)
				emit_raw(rs, "true", 4);
			else
				emit_raw(rs, "false", 5);
			break;
		case jbvBinary:
			{
				StringInfoData buf;

				initStringInfo(&buf);
				JsonbToCString(&buf, v->val.binary.data, v->val.binary.len);
				if (escape)
					emit_escaped(rs, buf.data, buf.len);
				else
					emit_raw(rs, buf.data, buf.len);
				pfree(buf.data);
			}
			break;
		default:
			/* other kinds do not occur in stored jsonb */
			elog(ERROR, "unexpected jsonb value type: %d", (int) v->type);
	}
}

/*
 * Push a value on the context stack.
 */
static void
push_context(MRender *rs, const JsonbValue *v)
{
	if (rs->nstack >= rs->maxstack)
	{
		rs->maxstack *= 2;
		rs->stack = repalloc_huge(rs->stack, sizeof(JsonbValue) * rs->maxstack);
	}
	rs->stack[rs->nstack++] = *v;
}

/*
 * Resolve the name parts[first .. first+nparts) of tpl into *res.
 * Returns false if the name is not found.
 */
static bool
resolve_name(MRender *rs, const MustacheTemplate *tpl, int first, int nparts,
			 JsonbValue *res)
{
	const MPart *part;
	JsonbValue	tmp;
	int			f;
	int			k;

	if (rs->nstack == 0)
		return false;
	if (nparts == 0)
	{
		*res = rs->stack[rs->nstack - 1];
		return true;
	}

	/* the first part: the nearest frame that has the key */
	part = &tpl->parts[first];
	for (f = rs->nstack - 1; f >= 0; f--)
	{
		JsonbValue *fv = &rs->stack[f];

		if (fv->type == jbvBinary &&
			JsonContainerIsObject(fv->val.binary.data) &&
			getKeyJsonValueFromContainer(fv->val.binary.data,
										 tpl->text + part->off, part->len,
										 res) != NULL)
			break;
	}
	if (f < 0)
		return false;

	/* the other parts: only inside what was found */
	for (k = 1; k < nparts; k++)
	{
		part = &tpl->parts[first + k];
		if (res->type != jbvBinary ||
			!JsonContainerIsObject(res->val.binary.data) ||
			getKeyJsonValueFromContainer(res->val.binary.data,
										 tpl->text + part->off, part->len,
										 &tmp) == NULL)
			return false;
		*res = tmp;
	}
	return true;
}

/*
 * Is the value falsey for a section: null, false, "", zero or []?
 */
static bool
value_is_falsey(MRender *rs, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return !v->val.boolean;
		case jbvString:
			return v->val.string.len == 0;
		case jbvNumeric:
			if (!rs->have_zero)
			{
				rs->zero = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
				rs->have_zero = true;
			}
			return DatumGetBool(DirectFunctionCall2(numeric_eq,
													NumericGetDatum(v->val.numeric),
													rs->zero));
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) &&
				JsonContainerSize(v->val.binary.data) == 0;
		default:
			return false;
	}
}

/*
 * Render a section body, nodes [from, to), for the truthy value v.
 */
static void
render_section(MRender *rs, const MustacheTemplate *tpl, JsonbValue *v,
			   int from, int to)
{
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	elem;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			CHECK_FOR_INTERRUPTS();
			push_context(rs, &elem);
			render_nodes(rs, tpl, from, to);
			rs->nstack--;
		}
	}
	else
	{
		push_context(rs, v);
		render_nodes(rs, tpl, from, to);
		rs->nstack--;
	}
}

/*
 * Render a partial node.
 */
static void
render_partial(MRender *rs, const MustacheTemplate *tpl, const MNode *n)
{
	const MustacheTemplate *ptpl;
	const char *name;
	int			namelen;
	const char *save_indent = rs->indent;
	int			save_indent_len = rs->indent_len;
	char	   *new_indent = NULL;

	if (n->flags & MNF_DYNAMIC)
	{
		JsonbValue	v;

		if (!resolve_name(rs, tpl, n->part, n->nparts, &v) ||
			v.type != jbvString)
			return;
		name = v.val.string.val;
		namelen = v.val.string.len;
	}
	else
	{
		name = tpl->text + n->off;
		namelen = n->len;
	}

	ptpl = partials_lookup(rs->partials, name, namelen);
	if (ptpl == NULL)
		return;

	if (rs->depth >= rs->max_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("mustache partials nested more than %d levels deep",
						rs->max_depth),
				 errdetail("The limit was reached when including partial \"%.*s\".",
						   namelen, name),
				 errhint("A partial probably includes itself without a terminating condition.")));

	/* a standalone partial is indented; an inline one is not */
	if (n->flags & MNF_STANDALONE)
	{
		if (n->indent_len > 0)
		{
			new_indent = palloc(rs->indent_len + n->indent_len);
			if (rs->indent_len > 0)
				memcpy(new_indent, rs->indent, rs->indent_len);
			memcpy(new_indent + rs->indent_len, tpl->text + n->indent,
				   n->indent_len);
			rs->indent = new_indent;
			rs->indent_len += n->indent_len;
		}
	}
	else
	{
		rs->indent = NULL;
		rs->indent_len = 0;
	}

	rs->depth++;
	render_nodes(rs, ptpl, 0, ptpl->nnodes);
	rs->depth--;

	rs->indent = save_indent;
	rs->indent_len = save_indent_len;
	if (new_indent)
		pfree(new_indent);
}

/*
 * Render nodes [from, to) of tpl.
 */
static void
render_nodes(MRender *rs, const MustacheTemplate *tpl, int from, int to)
{
	int			i;

	check_stack_depth();

	for (i = from; i < to; i++)
	{
		const MNode *n = &tpl->nodes[i];
		JsonbValue	v;

		/* indent a line of a standalone partial, unless the line is empty */
		if (rs->indent_len > 0 && (n->flags & MNF_LINE_START) &&
			!(n->kind == MN_TEXT && n->len > 0 && tpl->text[n->off] == '\n'))
			emit_raw(rs, rs->indent, rs->indent_len);

		switch ((MNodeKind) n->kind)
		{
			case MN_TEXT:
				if (rs->indent_len > 0)
					emit_indented(rs, tpl->text + n->off, n->len);
				else
					emit_raw(rs, tpl->text + n->off, n->len);
				break;

			case MN_ESCAPED:
			case MN_RAW:
				if (resolve_name(rs, tpl, n->part, n->nparts, &v))
					emit_value(rs, &v, n->kind == MN_ESCAPED && rs->escape);
				break;

			case MN_SECTION:
				if (resolve_name(rs, tpl, n->part, n->nparts, &v) &&
					!value_is_falsey(rs, &v))
					render_section(rs, tpl, &v, i + 1, n->end);
				i = n->end - 1;
				break;

			case MN_INVERTED:
				if (!resolve_name(rs, tpl, n->part, n->nparts, &v) ||
					value_is_falsey(rs, &v))
					render_nodes(rs, tpl, i + 1, n->end);
				i = n->end - 1;
				break;

			case MN_PARTIAL:
				CHECK_FOR_INTERRUPTS();
				render_partial(rs, tpl, n);
				break;
		}
	}
}

/*
 * Render tpl against a jsonb container, appending to out.
 */
void
mustache_render_ext(const MustacheTemplate *tpl, JsonbContainer *context,
					MustachePartials *partials, const MustacheOptions *options,
					StringInfo out)
{
	MRender		rs;

	memset(&rs, 0, sizeof(rs));
	rs.out = out;
	rs.base = out->len;
	rs.max_output = MUSTACHE_DEFAULT_MAX_OUTPUT;
	rs.escape = !(options != NULL && options->plain_text);
	rs.max_depth = MUSTACHE_DEFAULT_MAX_PARTIAL_DEPTH;
	if (options != NULL)
	{
		if (options->max_output > 0)
			rs.max_output = options->max_output;
		if (options->max_partial_depth > 0)
			rs.max_depth = options->max_partial_depth;
	}
	rs.partials = partials;
	rs.maxstack = 16;
	rs.stack = palloc(sizeof(JsonbValue) * rs.maxstack);

	if (context != NULL)
	{
		JsonbValue	root;

		if (JsonContainerIsScalar(context))
		{
			if (!JsonbExtractScalar(context, &root))
				elog(ERROR, "could not extract scalar from jsonb");
		}
		else
		{
			root.type = jbvBinary;
			root.val.binary.data = context;
			root.val.binary.len = 0;	/* unknown; only a size hint */
		}
		push_context(&rs, &root);
	}

	render_nodes(&rs, tpl, 0, tpl->nnodes);

	pfree(rs.stack);
}

/*
 * Render with default limits and a partials cache private to this call.
 */
void
mustache_render(const MustacheTemplate *tpl, Jsonb *context, Jsonb *partials,
				StringInfo out)
{
	MustachePartials mp;

	/* no copy: the caller's jsonb outlives this call */
	partials_init(&mp, partials, CurrentMemoryContext);
	mustache_render_ext(tpl, context ? &context->root : NULL, &mp, NULL, out);

	/* release what the private cache compiled */
	if (mp.slots != NULL)
	{
		int			i;

		for (i = 0; i < mp.nslots; i++)
		{
			if (mp.slots[i].name == NULL)
				continue;
			pfree(mp.slots[i].name);
			if (mp.slots[i].tpl)
				pfree(mp.slots[i].tpl);
		}
		pfree(mp.slots);
	}
}
