/*-------------------------------------------------------------------------
 *
 * address.c
 *		RFC 5321 mailbox validation: what may go into RCPT TO and To.
 *
 * A recipient is accepted when it is an RFC 5321 "Mailbox": a Dot-string
 * or Quoted-string local part of at most 64 octets, "@", and either a
 * domain of LDH labels (at most 63 octets each, 255 in all) or an IPv4 or
 * IPv6 address literal.  Comments, folding white space and the obsolete
 * forms RFC 5322 still tolerates in headers are refused, and so is every
 * control character, CR and LF above all: a recipient ends up in an SMTP
 * command and a header line.  The whole address is at most 254 octets,
 * the limit of a forward-path (RFC 5321 4.5.3.1.3, erratum 1690).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "notify.h"

#define MAX_LOCAL_PART	64
#define MAX_DOMAIN		255
#define MAX_LABEL		63
#define MAX_ADDRESS		254

static bool is_atext(unsigned char c);
static bool valid_local_part(const char *s, int len);
static bool valid_domain(const char *s, int len);
static bool valid_ipv4(const char *s, int len);
static bool valid_ipv6(const char *s, int len);

PG_FUNCTION_INFO_V1(notify_email_is_valid);

/* RFC 5322 atext: letters, digits and !#$%&'*+-/=?^_`{|}~ */
static bool
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

/* Dot-string or Quoted-string. */
static bool
valid_local_part(const char *s, int len)
{
	int			i;

	if (len < 1 || len > MAX_LOCAL_PART)
		return false;

	if (s[0] == '"')
	{
		/* Quoted-string: DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE */
		if (len < 2 || s[len - 1] != '"')
			return false;
		for (i = 1; i < len - 1; i++)
		{
			unsigned char c = (unsigned char) s[i];

			if (c == '\\')
			{
				/* quoted-pairSMTP = "\" followed by %d32-126 */
				if (i + 1 >= len - 1)
					return false;
				c = (unsigned char) s[++i];
				if (c < 32 || c > 126)
					return false;
			}
			else if (c < 32 || c > 126 || c == '"')
				return false;
		}
		return true;
	}

	/* Dot-string: Atom *("." Atom) */
	if (s[0] == '.' || s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '.')
		{
			if (s[i + 1] == '.')
				return false;
		}
		else if (!is_atext(c))
			return false;
	}
	return true;
}

/* Domain: sub-domain *("." sub-domain), LDH labels not starting or ending in "-". */
static bool
valid_domain(const char *s, int len)
{
	int			start = 0;
	int			i;

	if (len < 1 || len > MAX_DOMAIN)
		return false;

	for (i = 0; i <= len; i++)
	{
		if (i == len || s[i] == '.')
		{
			int			label_len = i - start;

			if (label_len < 1 || label_len > MAX_LABEL)
				return false;
			if (s[start] == '-' || s[i - 1] == '-')
				return false;
			start = i + 1;
		}
		else
		{
			unsigned char c = (unsigned char) s[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				  (c >= '0' && c <= '9') || c == '-'))
				return false;
		}
	}
	return true;
}

/* IPv4-address-literal: Snum 3("." Snum), Snum = 1*3DIGIT, 0..255 */
static bool
valid_ipv4(const char *s, int len)
{
	int			parts = 0;
	int			i = 0;

	while (i < len)
	{
		int			digits = 0;
		int			value = 0;

		while (i < len && s[i] >= '0' && s[i] <= '9')
		{
			value = value * 10 + (s[i] - '0');
			digits++;
			i++;
		}
		if (digits < 1 || digits > 3 || value > 255)
			return false;
		parts++;
		if (i < len)
		{
			if (s[i] != '.' || parts == 4)
				return false;
			i++;
			if (i == len)
				return false;
		}
	}
	return parts == 4;
}

/*
 * IPv6-addr as RFC 5321 4.1.3 spells it: IPv6-full, IPv6-comp (at most six
 * groups besides "::"), IPv6v4-full and IPv6v4-comp (at most four groups
 * besides "::", then an IPv4 address).
 */
static bool
valid_ipv6(const char *s, int len)
{
	int			groups = 0;
	bool		compressed = false;
	int			i = 0;
	const char *v4 = NULL;
	int			v4len = 0;
	int			last_colon;

	/* An embedded IPv4 address follows the last colon if it has a dot. */
	last_colon = -1;
	for (i = 0; i < len; i++)
		if (s[i] == ':')
			last_colon = i;
	if (last_colon < 0)
		return false;
	if (memchr(s + last_colon + 1, '.', len - last_colon - 1) != NULL)
	{
		v4 = s + last_colon + 1;
		v4len = len - last_colon - 1;
		if (!valid_ipv4(v4, v4len))
			return false;
		/* keep a trailing "::" visible to the group scanner */
		len = (last_colon > 0 && s[last_colon - 1] == ':') ? last_colon + 1 : last_colon;
	}

	i = 0;
	if (len >= 2 && s[0] == ':' && s[1] == ':')
	{
		compressed = true;
		i = 2;
	}
	else if (len >= 1 && s[0] == ':')
		return false;

	while (i < len)
	{
		int			digits = 0;

		while (i < len && isxdigit((unsigned char) s[i]) && digits < 5)
		{
			digits++;
			i++;
		}
		if (digits < 1 || digits > 4)
			return false;
		groups++;
		if (i == len)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < len && s[i] == ':')
		{
			if (compressed)
				return false;
			compressed = true;
			i++;
		}
		else if (i == len)
			return false;		/* single trailing colon */
	}

	if (v4 != NULL)
		return compressed ? groups <= 4 : groups == 6;
	return compressed ? groups <= 6 : groups == 8;
}

/*
 * notify_mailbox_is_valid
 *		True when the len bytes at s form an RFC 5321 Mailbox.
 */
bool
notify_mailbox_is_valid(const char *s, int len)
{
	int			at = -1;
	int			i;
	const char *domain;
	int			domain_len;

	if (len < 3 || len > MAX_ADDRESS)
		return false;

	/* The separating "@" is the last one: quoted local parts may hold "@". */
	for (i = len - 1; i >= 0; i--)
		if (s[i] == '@')
		{
			at = i;
			break;
		}
	if (at <= 0 || at == len - 1)
		return false;
	if (!valid_local_part(s, at))
		return false;

	domain = s + at + 1;
	domain_len = len - at - 1;
	if (domain[0] != '[')
		return valid_domain(domain, domain_len);

	/* address-literal */
	if (domain_len < 3 || domain[domain_len - 1] != ']')
		return false;
	domain++;
	domain_len -= 2;
	if (domain_len > 5 && strncmp(domain, "IPv6:", 5) == 0)
		return valid_ipv6(domain + 5, domain_len - 5);
	return valid_ipv4(domain, domain_len);
}

/*
 * notify_email_is_valid(text) RETURNS boolean
 */
Datum
notify_email_is_valid(PG_FUNCTION_ARGS)
{
	text	   *addr = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(notify_mailbox_is_valid(VARDATA_ANY(addr),
										   VARSIZE_ANY_EXHDR(addr)));
}
