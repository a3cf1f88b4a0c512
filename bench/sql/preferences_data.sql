-- 100,000 recipients with preferences (130,000 notify_preferences rows:
-- marketing in or out for every recipient, product out for every 5th, a
-- tenant-scoped marketing choice for every 10th) and 100,000 suppressions
-- (90,000 other addresses and every 10th recipient).  Used by
-- bench/preferences.sh and bench/producer.sh (PREFS=1).
-- recipient i: user<i>@example<i % 1000>.com
CREATE FUNCTION rcpt(i int) RETURNS text LANGUAGE sql IMMUTABLE
	RETURN 'user' || i || '@example' || (i % 1000) || '.com';
INSERT INTO notify_preferences (recipient, tenant, category, channel, opted_in, source)
SELECT rcpt(i), NULL, 'marketing', NULL, i % 2 = 0, 'import' FROM generate_series(1, 100000) i
UNION ALL
SELECT rcpt(i), NULL, 'product', NULL, false, 'user' FROM generate_series(5, 100000, 5) i
UNION ALL
SELECT rcpt(i), 'tenant' || (i % 50), 'marketing', NULL, i % 20 <> 0, 'user' FROM generate_series(10, 100000, 10) i;
INSERT INTO notify_suppressions (address, reason, source, detail)
SELECT 'bounced' || i || '@example' || (i % 1000) || '.org', 'hard_bounce', 'smtp', '550 5.1.1 user unknown'
FROM generate_series(1, 90000) i
UNION ALL
SELECT rcpt(i), CASE WHEN i % 20 = 0 THEN 'complaint' ELSE 'hard_bounce' END, 'postmark', NULL
FROM generate_series(10, 100000, 10) i;
VACUUM ANALYZE notify_preferences, notify_suppressions;
