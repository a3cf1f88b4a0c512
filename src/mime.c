/*-------------------------------------------------------------------------
 *
 * mime.c
 *		RFC 5322 / MIME message builder for outgoing email
 *
 * notify_mail_build() produces the exact octets sent in the SMTP DATA phase.
 * The rules it follows:
 *
 * Line endings.  Every line ends with CRLF.  Bodies are taken in canonical
 * form: CRLF, bare LF and bare CR all become CRLF.
 *
 * Dots.  No line of the message starts with ".": a body line (or the
 * continuation after a QP soft line break) that would is written with
 * "=2E", base64 has no ".", header lines start with a field name or white
 * space, and boundary lines with "--".  (Only an extra header whose name
 * starts with "." breaks this; the SMTP transport checks.)  So the SMTP
 * dot-stuffing (RFC 5321 4.5.2) has nothing to do, no relay's handling of
 * a lone "." can cut a message short, and the text survives any
 * transparency bug on the way.
 *
 * Body encoding.  Bodies are UTF-8 and every part says charset=UTF-8.  Each
 * part gets whichever of quoted-printable and base64 is shorter for it: in
 * practice QP for Latin-script text (which stays readable in the source) and
 * base64 for CJK and other mostly non-ASCII text, where QP would triple the
 * size.  Encoded lines are at most 76 characters.  QP soft line breaks never
 * fall inside an =XX escape nor between the escapes of one UTF-8 character,
 * white space before a line break is escaped, a leading "." is "=2E" (see
 * Dots), and a line that starts with "From " is written as "=46rom " so that mbox-style ">From" quoting by some
 * relay cannot alter the text (or break a DKIM signature).
 *
 * Multipart.  With both bodies the message is multipart/alternative with the
 * text/plain part first.  The boundary is "=_notify_" followed by a 128-bit
 * FNV-1a hash of the Message-ID.  "=_" can never occur in QP output (where
 * "=" is followed by two hex digits or a line break) nor in base64 output,
 * so the boundary cannot collide with the content; hashing the Message-ID
 * makes it unique per message, yet repeatable for a given Message-ID.
 *
 * Headers.  Lines are folded to at most 78 characters where possible and
 * never exceed 998.  A subject or display name that is not plain printable
 * ASCII (or that contains "=?", which a reader could take for an encoded
 * word) is written as RFC 2047 "B" encoded words: each at most 75
 * characters, each holding whole UTF-8 characters, separated by SP or by a
 * CRLF SP fold.  An ASCII subject is folded only before white space that is
 * already there, so unfolding gives back the original.  Non-ASCII values of
 * extra headers are encoded the same way (right for unstructured fields);
 * ASCII values are written as given and folded at white space.
 *
 * Validation.  A header value containing CR or LF is rejected, naming the
 * header (header injection; NUL cannot occur in a C string), and so is
 * invalid UTF-8 anywhere.  Addresses must be RFC 5321 mailboxes as checked
 * by notify_mailbox_is_valid() (address.c), the same rule as for recipients
 * at enqueue time; internationalized addresses would need SMTPUTF8 and are
 * not supported.  Bad input never throws: the background worker builds one
 * message at a time and marks just that message failed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "mime.h"
#include "notify.h"

/* RFC 5322 2.1.1: lines SHOULD be at most 78 and MUST be at most 998 */
#define HDR_SOFT_LIMIT		78
#define HDR_HARD_LIMIT		998

/* a character quoted-printable writes as it is (but see the exceptions) */
#define QP_LITERAL(c)		(((c) >= 0x20 && (c) < 0x7F && (c) != '=') || (c) == '\t')

/* RFC 2045 6.7 and 6.8: encoded body lines are at most 76 characters */
#define QP_LINE_LIMIT		76
#define B64_LINE_OCTETS		57	/* 57 octets give 76 base64 characters */

/* RFC 2047 encoded words */
#define EW_MAX_LEN			75
#define EW_PREFIX			"=?UTF-8?B?"
#define EW_SUFFIX			"?="
#define EW_OVERHEAD			12	/* strlen(EW_PREFIX) + strlen(EW_SUFFIX) */
#define EW_MIN_ROOM			20	/* a word holding one 4-octet character */

/* Longest Message-ID accepted, keeping its header line below 998 */
#define MAX_MESSAGE_ID_LEN	900

/* Largest body accepted, so that the encoded message fits in a StringInfo */
#define MAX_BODY_LEN		(MaxAllocSize / 8)

static const char upper_hex[] = "0123456789ABCDEF";
static const char lower_hex[] = "0123456789abcdef";
static const char base64_chars[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Header fields the builder writes itself, refused as extra headers */
static const char *const reserved_headers[] = {
	"Date", "Message-ID", "From", "To", "Subject", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding"
};

/* State of the header field being written */
typedef struct HeaderWriter
{
	StringInfo	out;
	int			linelen;		/* octets on the current physical line */
	bool		can_fold;		/* line holds more than the field name */
} HeaderWriter;


/*
 * Length of the well-formed UTF-8 character at s, or 0 if s does not start
 * one (bad lead or continuation octet, overlong form, surrogate, or beyond
 * U+10FFFF).  s must be NUL-terminated.
 */
static int
utf8_char_len(const unsigned char *s)
{
	unsigned char c = s[0];
	uint32		cp;
	int			len;
	int			i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
	{
		len = 2;
		cp = c & 0x1F;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		len = 3;
		cp = c & 0x0F;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		len = 4;
		cp = c & 0x07;
	}
	else
		return 0;

	/* a NUL terminator fails this test, so we never read past it */
	for (i = 1; i < len; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}

	if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
		return 0;
	if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))
		return 0;
	return len;
}

/*
 * Is s entirely well-formed UTF-8?
 */
static bool
utf8_is_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p)
	{
		int			len;

		if (*p < 0x80)
		{
			p++;
			continue;
		}
		len = utf8_char_len(p);

		if (len == 0)
			return false;
		p += len;
	}
	return true;
}

/*
 * Check a value that goes into header "header": no CR or LF, valid UTF-8.
 */
static bool
check_header_input(const char *header, const char *value, char **error)
{
	if (value == NULL)
		return true;
	if (strpbrk(value, "\r\n") != NULL)
	{
		*error = psprintf("header \"%s\" must not contain CR or LF characters",
						  header);
		return false;
	}
	if (!utf8_is_valid(value))
	{
		*error = psprintf("header \"%s\" is not valid UTF-8", header);
		return false;
	}
	return true;
}

/*
 * Is c an RFC 5322 atext character?
 */
static bool
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Is [s, e) an RFC 5322 dot-atom-text: atext runs separated by single dots?
 */
static bool
is_dot_atom(const char *s, const char *e)
{
	const char *p;

	if (s >= e || *s == '.' || e[-1] == '.')
		return false;
	for (p = s; p < e; p++)
	{
		if (*p == '.')
		{
			if (p[1] == '.')
				return false;
		}
		else if (!is_atext((unsigned char) *p))
			return false;
	}
	return true;
}

/*
 * Is [s, e) an RFC 5322 domain-literal, e.g. "[192.0.2.1]"?
 */
static bool
is_domain_literal(const char *s, const char *e)
{
	const char *p;

	if (e - s < 3 || *s != '[' || e[-1] != ']')
		return false;
	for (p = s + 1; p < e - 1; p++)
	{
		unsigned char c = (unsigned char) *p;

		/* dtext: printable ASCII except "[", "]" and "\" */
		if (c < 0x21 || c > 0x7E || c == '[' || c == ']' || c == '\\')
			return false;
	}
	return true;
}

/*
 * Is id an RFC 5322 msg-id without its angle brackets?
 */
static bool
is_message_id(const char *id)
{
	size_t		len = strlen(id);
	const char *at = strrchr(id, '@');
	const char *end = id + len;

	if (len == 0 || len > MAX_MESSAGE_ID_LEN || at == NULL)
		return false;
	if (!is_dot_atom(id, at))
		return false;
	return is_dot_atom(at + 1, end) || is_domain_literal(at + 1, end);
}

/*
 * Does s hold only printable ASCII, SP and HTAB, and can thus be written
 * verbatim into an unstructured header field?
 */
static bool
is_plain_text(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *) s; *p; p++)
	{
		if ((*p < 0x20 && *p != '\t') || *p > 0x7E)
			return false;
	}
	return true;
}

/*
 * Write the base64 encoding of len octets at src to dst, without line
 * breaks; returns the end of what was written ((len + 2) / 3 * 4 chars).
 */
static char *
write_base64(char *dst, const unsigned char *src, int len)
{
	int			i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];

		*dst++ = base64_chars[(v >> 18) & 0x3F];
		*dst++ = base64_chars[(v >> 12) & 0x3F];
		*dst++ = base64_chars[(v >> 6) & 0x3F];
		*dst++ = base64_chars[v & 0x3F];
	}
	if (i < len)
	{
		uint32		v = src[i] << 16;

		if (i + 1 < len)
			v |= src[i + 1] << 8;
		*dst++ = base64_chars[(v >> 18) & 0x3F];
		*dst++ = base64_chars[(v >> 12) & 0x3F];
		*dst++ = i + 1 < len ? base64_chars[(v >> 6) & 0x3F] : '=';
		*dst++ = '=';
	}
	return dst;
}

/*
 * Append the base64 encoding of len octets at src, without line breaks.
 */
static void
append_base64(StringInfo out, const unsigned char *src, int len)
{
	char	   *end;

	enlargeStringInfo(out, (len + 2) / 3 * 4);
	end = write_base64(out->data + out->len, src, len);
	out->len = end - out->data;
	out->data[out->len] = '\0';
}

/*
 * Start header field "name": writes "name:".
 */
static void
hw_begin(HeaderWriter *hw, StringInfo out, const char *name)
{
	hw->out = out;
	appendStringInfoString(out, name);
	appendStringInfoChar(out, ':');
	hw->linelen = strlen(name) + 1;
	hw->can_fold = false;
}

/*
 * Fold (start a continuation line) if a piece of piecelen octets would make
 * the current line longer than 78 and the line holds something to keep.
 */
static void
hw_fold_if_needed(HeaderWriter *hw, int piecelen)
{
	if (hw->can_fold && hw->linelen + piecelen > HDR_SOFT_LIMIT)
	{
		appendStringInfoString(hw->out, "\r\n");
		hw->linelen = 0;
	}
}

/*
 * Append SP and an unbreakable token, folding before it where needed.  The
 * callers' tokens are short enough to stay below 998 octets a line.
 */
static void
hw_token(HeaderWriter *hw, const char *token, int len)
{
	hw_fold_if_needed(hw, 1 + len);
	appendStringInfoChar(hw->out, ' ');
	appendBinaryStringInfo(hw->out, token, len);
	hw->linelen += 1 + len;
	hw->can_fold = true;
}

/*
 * Append an unstructured value that is_plain_text() accepted, verbatim.  It
 * is folded only before white space that is already there and is followed by
 * more text, so unfolding restores the value exactly.  Returns false if a
 * word too long to fold made some line longer than limit octets.
 */
static bool
hw_plain_text(HeaderWriter *hw, const char *value, int limit)
{
	const char *p = value;

	if (*p == '\0')
		return true;
	appendStringInfoChar(hw->out, ' ');
	hw->linelen++;

	while (*p)
	{
		const char *start = p;
		bool		has_text;

		while (*p == ' ' || *p == '\t')
			p++;
		has_text = (*p != '\0');
		while (*p && *p != ' ' && *p != '\t')
			p++;

		/* fold before this segment's white space, never after the colon */
		if (has_text && (*start == ' ' || *start == '\t'))
			hw_fold_if_needed(hw, p - start);
		appendBinaryStringInfo(hw->out, start, p - start);
		hw->linelen += p - start;
		hw->can_fold = true;
		if (hw->linelen > limit)
			return false;
	}
	return true;
}

/*
 * Append value as RFC 2047 "B" encoded words.  Each word is at most 75
 * characters, holds whole UTF-8 characters and is filled as far as the
 * current line allows; words are separated by SP or by a CRLF SP fold.
 */
static void
hw_encoded_words(HeaderWriter *hw, const char *value)
{
	const unsigned char *p = (const unsigned char *) value;

	while (*p)
	{
		int			room = HDR_SOFT_LIMIT - hw->linelen - 1;
		int			maxoctets;
		int			n = 0;
		int			start;

		if (room < EW_MIN_ROOM)
		{
			appendStringInfoString(hw->out, "\r\n");
			hw->linelen = 0;
			room = HDR_SOFT_LIMIT - 1;
		}
		if (room > EW_MAX_LEN)
			room = EW_MAX_LEN;
		maxoctets = (room - EW_OVERHEAD) / 4 * 3;

		/* take whole characters while they fit; one always does */
		while (p[n])
		{
			int			len = utf8_char_len(p + n);

			Assert(len > 0);
			if (n + len > maxoctets)
				break;
			n += len;
		}

		start = hw->out->len;
		appendStringInfoChar(hw->out, ' ');
		appendStringInfoString(hw->out, EW_PREFIX);
		append_base64(hw->out, p, n);
		appendStringInfoString(hw->out, EW_SUFFIX);
		hw->linelen += hw->out->len - start;
		hw->can_fold = true;
		p += n;
	}
}

/*
 * End the header field.
 */
static void
hw_end(HeaderWriter *hw)
{
	appendStringInfoString(hw->out, "\r\n");
}

/*
 * Write an unstructured header field.  Plain ASCII is written verbatim and
 * anything else becomes encoded words.  For the Subject (is_subject), plain
 * ASCII also becomes encoded words when it contains "=?", which a reader
 * could decode, or a word too long to fold below 78 octets a line.  Extra
 * headers keep their plain ASCII value up to the 998 limit, which
 * check_extra_header() has checked: encoding would change the meaning of a
 * structured field such as List-Unsubscribe.
 */
static void
write_unstructured(StringInfo out, const char *name, const char *value,
				   bool is_subject)
{
	HeaderWriter hw;
	int			start = out->len;

	if (value == NULL)
		value = "";
	hw_begin(&hw, out, name);
	if (is_plain_text(value) &&
		!(is_subject && strstr(value, "=?") != NULL) &&
		hw_plain_text(&hw, value,
					  is_subject ? HDR_SOFT_LIMIT : HDR_HARD_LIMIT))
	{
		hw_end(&hw);
		return;
	}

	/* start over with encoded words */
	out->len = start;
	out->data[start] = '\0';
	hw_begin(&hw, out, name);
	hw_encoded_words(&hw, value);
	hw_end(&hw);
}

/*
 * Write the From header: an optional display name and the address.  A
 * display name (without surrounding white space) made of atoms and spaces is written as it is, one with other
 * printable ASCII as a quoted-string, and anything else (non-ASCII, controls,
 * tabs, "=?", or too long for one line) as encoded words.
 */
static void
write_from(StringInfo out, const char *display_name, const char *address)
{
	HeaderWriter hw;
	char	   *bracketed;
	char	   *name = NULL;

	/* white space around a display name means nothing: drop it */
	if (display_name != NULL)
	{
		int			len;

		while (*display_name == ' ' || *display_name == '\t')
			display_name++;
		len = strlen(display_name);
		while (len > 0 &&
			   (display_name[len - 1] == ' ' || display_name[len - 1] == '\t'))
			len--;
		name = pnstrdup(display_name, len);
	}

	hw_begin(&hw, out, "From");
	if (name == NULL || name[0] == '\0')
	{
		hw_token(&hw, address, strlen(address));
		hw_end(&hw);
		return;
	}

	if (is_plain_text(name) && strchr(name, '\t') == NULL &&
		strstr(name, "=?") == NULL)
	{
		StringInfoData phrase;
		bool		atoms_only = true;
		bool		has_atext = false;
		const char *p;

		for (p = name; *p; p++)
		{
			if (is_atext((unsigned char) *p))
				has_atext = true;
			else if (*p != ' ' || p[1] == ' ')
				atoms_only = false; /* a run of spaces would read as one */
		}

		initStringInfo(&phrase);
		if (atoms_only && has_atext)
			appendStringInfoString(&phrase, name);
		else
		{
			appendStringInfoChar(&phrase, '"');
			for (p = name; *p; p++)
			{
				if (*p == '"' || *p == '\\')
					appendStringInfoChar(&phrase, '\\');
				appendStringInfoChar(&phrase, *p);
			}
			appendStringInfoChar(&phrase, '"');
		}

		if (hw.linelen + 1 + phrase.len <= HDR_SOFT_LIMIT)
			hw_token(&hw, phrase.data, phrase.len);
		else
			hw_encoded_words(&hw, name);
		pfree(phrase.data);
	}
	else
		hw_encoded_words(&hw, name);

	bracketed = psprintf("<%s>", address);
	hw_token(&hw, bracketed, strlen(bracketed));
	pfree(bracketed);
	pfree(name);
	hw_end(&hw);
}

/*
 * Format t as an RFC 5322 date-time in UTC, e.g.
 * "Sat, 28 Nov 2026 12:00:00 +0000".  Returns false if out of range.
 */
static bool
format_date(pg_time_t t, char *buf, size_t buflen)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct pg_tm *tm = pg_gmtime(&t);

	/* RFC 5322 wants a four-digit year of 1900 or later */
	if (tm == NULL || tm->tm_year < 0 || tm->tm_year > 9999 - 1900 ||
		tm->tm_wday < 0 || tm->tm_wday > 6 || tm->tm_mon < 0 || tm->tm_mon > 11)
		return false;
	snprintf(buf, buflen, "%s, %d %s %04d %02d:%02d:%02d +0000",
			 days[tm->tm_wday], tm->tm_mday, months[tm->tm_mon],
			 tm->tm_year + 1900, tm->tm_hour, tm->tm_min, tm->tm_sec);
	return true;
}

/*
 * The end of the line that starts at p: the first CR or LF before end, or
 * end.
 */
static inline const char *
line_end(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', end - p);
	const char *cr;

	if (lf == NULL)
		lf = end;
	cr = memchr(p, '\r', lf - p);
	return cr != NULL ? cr : lf;
}

/*
 * Step over the line break at eol (CRLF, LF or CR), or stay at end.
 */
static inline const char *
skip_line_break(const char *eol, const char *end)
{
	if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n')
		return eol + 2;
	return eol < end ? eol + 1 : end;
}

/*
 * Copy len octets of body into out in canonical form: CRLF, bare LF and
 * bare CR all become CRLF.
 */
static void
canonicalize_newlines(StringInfo out, const char *body, int len)
{
	const char *end = body + len;
	const char *p = body;

	while (p < end)
	{
		const char *eol = line_end(p, end);

		appendBinaryStringInfo(out, p, eol - p);
		if (eol < end)
			appendBinaryStringInfo(out, "\r\n", 2);
		p = skip_line_break(eol, end);
	}
}

/*
 * Measure a body as canonicalize_newlines() would write it: its length in
 * canonical form, and how many of its octets quoted-printable escapes.
 */
static void
measure_body(const char *body, int len, int64 *canon_len, int64 *escaped)
{
	const unsigned char *p = (const unsigned char *) body;
	const unsigned char *end = p + len;
	int64		extra = 0;
	int64		esc = 0;

	for (; p < end; p++)
	{
		unsigned char c = *p;

		if (c >= 0x20 && c < 0x7F && c != '=')
			continue;
		if (c == '\n')
			extra += (p == (const unsigned char *) body || p[-1] != '\r');
		else if (c == '\r')
			extra += (p + 1 == end || p[1] != '\n');
		else if (c != '\t')
			esc++;
	}
	*canon_len = len + extra;
	*escaped = esc;
}

/*
 * Would base64 be shorter than quoted-printable for a body of len octets
 * (canonical form) of which escaped need escaping?  QP costs three
 * characters for every octet it escapes, base64 4/3 for every octet.
 */
static bool
prefer_base64(int64 len, int64 escaped)
{
	return len + 2 * escaped > (len + 2) / 3 * 4;
}

/*
 * Append len octets of body, canonicalized on the way (see
 * canonicalize_newlines()), as quoted-printable.  The output ends without a
 * line break unless the body does.
 */
static void
append_quoted_printable(StringInfo out, const char *body, int len)
{
	const char *end = body + len;
	const char *line = body;

	while (line < end)
	{
		const char *eol = line_end(line, end);
		int			n = eol - line;
		const char *p = line;
		char	   *dst;
		int			col = 0;

		/*
		 * Room for the worst case: every octet escaped (3 characters), a soft
		 * line break ("=" CRLF) at the latest every 64 characters, and CRLF.
		 */
		enlargeStringInfo(out, 3 * n + n / 4 + 8);
		dst = out->data + out->len;

		while (p < eol)
		{
			unsigned char c = (unsigned char) *p;
			int			octets = 1;
			int			toklen;
			bool		escape;

			/*
			 * Fast path: a run of characters written as they are, copied as
			 * far as the line has room.  What needs a look of its own goes
			 * the slow way below: an escape, a "." at the start of a line,
			 * "From " at the start of a line, white space at its end.
			 */
			if (QP_LITERAL(c) && !(col == 0 && c == '.') &&
				!(p == line && n >= 5 && strncmp(p, "From ", 5) == 0))
			{
				const char *q = p + 1;
				int			k;

				while (q < eol && QP_LITERAL((unsigned char) *q))
					q++;
				if (q == eol && (q[-1] == ' ' || q[-1] == '\t'))
					q--;
				if (q > p)
				{
					/* up to column 75, or 76 for the line's last character */
					k = Min(q - p, QP_LINE_LIMIT - 1 - col);
					if (k >= 0 && k < q - p && p + k + 1 == eol)
						k++;
					if (k <= 0)
					{
						*dst++ = '=';
						*dst++ = '\r';
						*dst++ = '\n';
						col = 0;
						continue;
					}
					memcpy(dst, p, k);
					dst += k;
					col += k;
					p += k;
					continue;
				}
			}

			if (c >= 0x80)
				octets = utf8_char_len((const unsigned char *) p);
			Assert(octets > 0 && p + octets <= eol);

			escape = (c >= 0x7F || c == '=' || (c < 0x20 && c != '\t') ||
					  ((c == ' ' || c == '\t') && p + 1 == eol) ||
					  (p == line && n >= 5 && strncmp(p, "From ", 5) == 0));
			toklen = escape ? 3 * octets : 1;

			/* the last token may use column 76, others leave room for "=" */
			if (col + toklen > (p + octets == eol ? QP_LINE_LIMIT : QP_LINE_LIMIT - 1))
			{
				*dst++ = '=';
				*dst++ = '\r';
				*dst++ = '\n';
				col = 0;
			}

			/* a "." that would start a line is escaped too (see Dots) */
			if (col == 0 && c == '.')
				escape = true;

			if (escape)
			{
				/* escape each octet of the character */
				int			i;

				for (i = 0; i < octets; i++)
				{
					unsigned char o = (unsigned char) p[i];

					*dst++ = '=';
					*dst++ = upper_hex[o >> 4];
					*dst++ = upper_hex[o & 0x0F];
				}
				col += 3 * octets;
			}
			else
			{
				*dst++ = (char) c;
				col++;
			}
			p += octets;
		}

		if (eol < end)
		{
			*dst++ = '\r';
			*dst++ = '\n';
		}
		out->len = dst - out->data;
		out->data[out->len] = '\0';
		line = skip_line_break(eol, end);
	}
}

/*
 * Append data as base64 in lines of 76 characters separated by CRLF.  The
 * output ends without a line break.
 */
static void
append_base64_lines(StringInfo out, const char *data, int len)
{
	char	   *dst;
	int			i;

	enlargeStringInfo(out, (len + 2) / 3 * 4 + (len / B64_LINE_OCTETS + 1) * 2);
	dst = out->data + out->len;
	for (i = 0; i < len; i += B64_LINE_OCTETS)
	{
		if (i > 0)
		{
			*dst++ = '\r';
			*dst++ = '\n';
		}
		dst = write_base64(dst, (const unsigned char *) data + i,
						   Min(B64_LINE_OCTETS, len - i));
	}
	out->len = dst - out->data;
	out->data[out->len] = '\0';
}

/*
 * Append one body part: its Content-Type and Content-Transfer-Encoding
 * headers, an empty line and the encoded content, which ends without a line
 * break unless the content itself ends with one.
 */
static void
append_part(StringInfo out, const char *subtype, const char *body)
{
	int			len = strlen(body);
	int64		canon_len;
	int64		escaped;

	measure_body(body, len, &canon_len, &escaped);
	appendStringInfoString(out, "Content-Type: text/");
	appendStringInfoString(out, subtype);
	appendStringInfoString(out, "; charset=UTF-8\r\n");
	if (prefer_base64(canon_len, escaped))
	{
		StringInfoData canon;

		initStringInfo(&canon);
		canonicalize_newlines(&canon, body, len);
		appendStringInfoString(out, "Content-Transfer-Encoding: base64\r\n\r\n");
		append_base64_lines(out, canon.data, canon.len);
		pfree(canon.data);
	}
	else
	{
		appendStringInfoString(out,
							   "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		append_quoted_printable(out, body, len);
	}
}

/*
 * Make the multipart boundary: "=_notify_" and 32 hex digits of two 64-bit
 * FNV-1a hashes (with different offset bases) of the Message-ID.
 */
static void
make_boundary(const char *message_id, char *buf)
{
	uint64		h1 = UINT64CONST(0xcbf29ce484222325);
	uint64		h2 = UINT64CONST(0x84222325cbf29ce4);
	const unsigned char *p;
	char	   *q;
	int			i;

	for (p = (const unsigned char *) message_id; *p; p++)
	{
		h1 = (h1 ^ *p) * UINT64CONST(0x100000001b3);
		h2 = (h2 ^ *p) * UINT64CONST(0x100000001b3);
	}

	strcpy(buf, "=_notify_");
	q = buf + strlen(buf);
	for (i = 60; i >= 0; i -= 4)
		*q++ = lower_hex[(h1 >> i) & 0x0F];
	for (i = 60; i >= 0; i -= 4)
		*q++ = lower_hex[(h2 >> i) & 0x0F];
	*q = '\0';
}

/*
 * Check an extra header: a valid field name that the builder does not write
 * itself, and a value without CR, LF or invalid UTF-8.
 */
static bool
check_extra_header(const NotifyMailHeader *h, char **error)
{
	const unsigned char *p;
	int			i;

	if (h->name == NULL || h->name[0] == '\0')
	{
		*error = pstrdup("extra header name must not be empty");
		return false;
	}
	for (p = (const unsigned char *) h->name; *p; p++)
	{
		/* ftext: printable ASCII except ":" */
		if (*p < 0x21 || *p > 0x7E || *p == ':')
		{
			if (*p == '\r' || *p == '\n')
				*error = pstrdup("extra header name must not contain CR or LF characters");
			else if (utf8_is_valid(h->name))
				*error = psprintf("invalid header name \"%s\"", h->name);
			else
				*error = pstrdup("invalid header name");
			return false;
		}
	}
	if (strlen(h->name) > HDR_HARD_LIMIT - 100)
	{
		*error = pstrdup("extra header name is too long");
		return false;
	}
	for (i = 0; i < (int) lengthof(reserved_headers); i++)
	{
		if (pg_strcasecmp(h->name, reserved_headers[i]) == 0)
		{
			*error = psprintf("header \"%s\" is set by the message builder and cannot be given as an extra header",
							  reserved_headers[i]);
			return false;
		}
	}
	if (!check_header_input(h->name, h->value, error))
		return false;

	/*
	 * A plain ASCII value is written verbatim (see write_unstructured()), so
	 * a word too long to fold below 998 octets a line is an error.
	 */
	if (h->value != NULL && is_plain_text(h->value))
	{
		StringInfoData scratch;
		HeaderWriter hw;
		bool		fits;

		initStringInfo(&scratch);
		hw_begin(&hw, &scratch, h->name);
		fits = hw_plain_text(&hw, h->value, HDR_HARD_LIMIT);
		pfree(scratch.data);
		if (!fits)
		{
			*error = psprintf("header \"%s\" contains a word too long for one header line",
							  h->name);
			return false;
		}
	}
	return true;
}

/*
 * Check every input of m, so that writing the message cannot fail.
 */
static bool
check_mail(const NotifyMail *m, char **error)
{
	char		datebuf[64];
	int			i;

	if (m->from_address == NULL || m->from_address[0] == '\0')
	{
		*error = pstrdup("sender address must not be empty");
		return false;
	}
	if (m->to_address == NULL || m->to_address[0] == '\0')
	{
		*error = pstrdup("recipient address must not be empty");
		return false;
	}
	if (m->message_id == NULL || m->message_id[0] == '\0')
	{
		*error = pstrdup("message id must not be empty");
		return false;
	}

	if (!check_header_input("From", m->from_name, error) ||
		!check_header_input("From", m->from_address, error) ||
		!check_header_input("To", m->to_address, error) ||
		!check_header_input("Subject", m->subject, error) ||
		!check_header_input("Message-ID", m->message_id, error))
		return false;

	if (!notify_mailbox_is_valid(m->from_address, strlen(m->from_address)))
	{
		*error = psprintf("invalid address \"%s\" in header \"From\"",
						  m->from_address);
		return false;
	}
	if (!notify_mailbox_is_valid(m->to_address, strlen(m->to_address)))
	{
		*error = psprintf("invalid address \"%s\" in header \"To\"",
						  m->to_address);
		return false;
	}
	if (!is_message_id(m->message_id))
	{
		*error = psprintf("invalid message id \"%s\"", m->message_id);
		return false;
	}
	if (!format_date(m->date, datebuf, sizeof(datebuf)))
	{
		*error = pstrdup("message date is out of range");
		return false;
	}

	if (m->nextra < 0 || (m->nextra > 0 && m->extra == NULL))
	{
		*error = pstrdup("invalid extra header list");
		return false;
	}
	for (i = 0; i < m->nextra; i++)
	{
		if (!check_extra_header(&m->extra[i], error))
			return false;
	}

	if ((m->text_body == NULL || m->text_body[0] == '\0') &&
		(m->html_body == NULL || m->html_body[0] == '\0'))
	{
		*error = pstrdup("message must have a text body or an HTML body");
		return false;
	}
	if (m->text_body != NULL &&
		(strlen(m->text_body) > MAX_BODY_LEN || !utf8_is_valid(m->text_body)))
	{
		*error = pstrdup(strlen(m->text_body) > MAX_BODY_LEN ?
						 "text body is too large" :
						 "text body is not valid UTF-8");
		return false;
	}
	if (m->html_body != NULL &&
		(strlen(m->html_body) > MAX_BODY_LEN || !utf8_is_valid(m->html_body)))
	{
		*error = pstrdup(strlen(m->html_body) > MAX_BODY_LEN ?
						 "HTML body is too large" :
						 "HTML body is not valid UTF-8");
		return false;
	}
	return true;
}

/*
 * Build the complete message; see mime.h.
 */
bool
notify_mail_build(const NotifyMail *m, StringInfo out, char **error)
{
	HeaderWriter hw;
	char		datebuf[64];
	char	   *bracketed;
	bool		has_text;
	bool		has_html;
	int			i;

	*error = NULL;
	if (!check_mail(m, error))
		return false;

	/* inputs are valid: from here on nothing can fail */
	format_date(m->date, datebuf, sizeof(datebuf));
	appendStringInfo(out, "Date: %s\r\n", datebuf);

	hw_begin(&hw, out, "Message-ID");
	bracketed = psprintf("<%s>", m->message_id);
	hw_token(&hw, bracketed, strlen(bracketed));
	pfree(bracketed);
	hw_end(&hw);

	write_from(out, m->from_name, m->from_address);

	hw_begin(&hw, out, "To");
	hw_token(&hw, m->to_address, strlen(m->to_address));
	hw_end(&hw);

	write_unstructured(out, "Subject", m->subject, true);

	for (i = 0; i < m->nextra; i++)
		write_unstructured(out, m->extra[i].name, m->extra[i].value, false);

	appendStringInfoString(out, "MIME-Version: 1.0\r\n");

	has_text = (m->text_body != NULL && m->text_body[0] != '\0');
	has_html = (m->html_body != NULL && m->html_body[0] != '\0');
	if (has_text && has_html)
	{
		char		boundary[64];

		make_boundary(m->message_id, boundary);
		appendStringInfo(out,
						 "Content-Type: multipart/alternative;\r\n"
						 " boundary=\"%s\"\r\n"
						 "\r\n"
						 "--%s\r\n",
						 boundary, boundary);
		append_part(out, "plain", m->text_body);
		appendStringInfo(out, "\r\n--%s\r\n", boundary);
		append_part(out, "html", m->html_body);
		appendStringInfo(out, "\r\n--%s--\r\n", boundary);
	}
	else
	{
		append_part(out, has_text ? "plain" : "html",
					has_text ? m->text_body : m->html_body);
		if (out->len < 2 || out->data[out->len - 1] != '\n')
			appendStringInfoString(out, "\r\n");
	}
	return true;
}

/*
 * Make a unique Message-ID; see mime.h.  The domain is taken from the sender
 * address when it is a plain domain name, else "localhost".
 */
char *
notify_mail_message_id(int64 outbox_id, const char *from_address)
{
	unsigned char rnd[16];
	char		hex[sizeof(rnd) * 2 + 1];
	const char *domain = "localhost";
	const char *at;
	int			i;

	at = from_address ? strrchr(from_address, '@') : NULL;
	if (at != NULL && is_dot_atom(at + 1, at + strlen(at)))
		domain = at + 1;

	if (!pg_strong_random(rnd, sizeof(rnd)))
	{
		/* no entropy source: time, process and a counter are still unique */
		static uint32 counter = 0;
		TimestampTz now = GetCurrentTimestamp();
		uint32		pid = (uint32) MyProcPid;

		counter++;
		memset(rnd, 0, sizeof(rnd));
		memcpy(rnd, &now, sizeof(now));
		memcpy(rnd + 8, &pid, sizeof(pid));
		memcpy(rnd + 12, &counter, sizeof(counter));
	}

	for (i = 0; i < (int) sizeof(rnd); i++)
	{
		hex[2 * i] = lower_hex[rnd[i] >> 4];
		hex[2 * i + 1] = lower_hex[rnd[i] & 0x0F];
	}
	hex[sizeof(hex) - 1] = '\0';

	return psprintf("%s." INT64_FORMAT "@%s", hex, outbox_id, domain);
}
