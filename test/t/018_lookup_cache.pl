# Backends cache the channel and category rows notify_enqueue reads
# (src/unsubscribe.c).  A change made by another session, by the same
# session, or rolled back must be seen by the next enqueue of a session
# that has the old rows cached.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('lookup_cache');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'notify'
notify.database = 'postgres'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', q{
CREATE EXTENSION notify;
INSERT INTO notify_channels (name, kind, settings) VALUES ('hooks', 'webhook', '{"allow_private_destinations": true}');
INSERT INTO notify_categories (name, description, default_priority) VALUES ('news', 'test', 5);
-- a statement's result, or its error message (errors in a background psql
-- would leave their output to the next query)
CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE q INTO r;
	RETURN r;
EXCEPTION WHEN OTHERS THEN
	RETURN 'ERROR: ' || SQLERRM;
END $$;
});

my $hook = q{SELECT try($q$SELECT notify_enqueue('order.shipped', 'https://127.0.0.1/h', '{"order": 1}', channel => 'hooks')$q$)};
my $news_enqueue = q{SELECT try($q$SELECT notify_enqueue('notify.message', 'a@example.com', '{"subject": "s", "text": "t"}', category => 'news')$q$)};

# A long-lived session fills its cache.
my $app = $node->background_psql('app', on_error_stop => 0);

# enqueue in category news in the long-lived session: the row's priority
sub news_priority
{
	my $id = $app->query_safe($news_enqueue);
	return "no row: $id" unless $id =~ /^\d+$/;
	return $app->query_safe("SELECT priority FROM notify_outbox WHERE id = $id");
}
like($app->query_safe($hook), qr/^\d+$/, 'webhook enqueued (channel cached)');
is(news_priority(), '5', 'category default priority 5 (category cached)');

# Another session changes both; the cached session sees the change at its
# next transaction.
$node->safe_psql('app', q{UPDATE notify_channels SET kind = 'smtp' WHERE name = 'hooks'});
$node->safe_psql('app', q{UPDATE notify_categories SET default_priority = 7 WHERE name = 'news'});
like($app->query_safe($hook), qr/recipient "https:\/\/127\.0\.0\.1\/h" is not a valid email address/,
	'channel kind changed by another session is seen (now smtp)');
is(news_priority(), '7', 'category priority changed by another session is seen');

$node->safe_psql('app', q{DELETE FROM notify_channels WHERE name = 'hooks'});
like($app->query_safe($hook), qr/unknown channel "hooks"/, 'channel deleted by another session is seen');

# Changes in the session's own transaction, and their rollback.
$app->query_safe(q{BEGIN});
$app->query_safe(q{INSERT INTO notify_channels (name, kind, settings) VALUES ('hooks', 'webhook', '{"allow_private_destinations": true}')});
like($app->query_safe($hook), qr/^\d+$/, 'channel created in the same transaction is seen');
$app->query_safe(q{ROLLBACK});
like($app->query_safe($hook), qr/unknown channel "hooks"/, 'after ROLLBACK the channel is unknown again');

$app->query_safe(q{BEGIN});
$app->query_safe(q{UPDATE notify_categories SET default_priority = 9 WHERE name = 'news'});
is(news_priority(), '9', 'category changed in the same transaction is seen');
$app->query_safe(q{ROLLBACK});
is(news_priority(), '7', 'after ROLLBACK the old priority is back');

# TRUNCATE counts too (categories are referenced, so channels only).
$node->safe_psql('app', q{INSERT INTO notify_channels (name, kind, settings) VALUES ('hooks2', 'webhook', '{"allow_private_destinations": true}')});
like($app->query_safe($hook =~ s/'hooks'/'hooks2'/r), qr/^\d+$/, 'second webhook channel cached');
$node->safe_psql('app', q{UPDATE notify_channels SET enabled = false WHERE name = 'hooks2'});
$node->safe_psql('app', q{DELETE FROM notify_channels WHERE name = 'hooks2'});
like($app->query_safe($hook =~ s/'hooks'/'hooks2'/r), qr/unknown channel "hooks2"/, 'deleted again: unknown');

# Whether any suppression is kept hashed (notify_forget_recipient) is cached
# too: while there are none, an enqueue does not look the address's hash up.
# A recipient forgotten by another session, or by this one, must still be
# suppressed at the next enqueue.
my $to = sub {
	my ($addr) = @_;
	my $id = $app->query_safe(qq{SELECT try(\$q\$SELECT notify_enqueue('notify.message', '$addr', '{"subject": "s", "text": "t"}')\$q\$)});
	return "no row: $id" unless $id =~ /^\d+$/;
	return $app->query_safe("SELECT status || '/' || coalesce(skip_reason, '-') FROM notify_outbox WHERE id = $id");
};
$node->safe_psql('app', q{SELECT notify_suppress('gone@example.com', 'hard_bounce'), notify_suppress('left@example.com', 'complaint')});
is($to->('other@example.com'), 'pending/-', 'no hashed suppression yet: sent');
is($to->('gone@example.com'), 'skipped/suppressed', 'suppressed under its address');
$node->safe_psql('app', q{SELECT notify_forget_recipient('gone@example.com')});
is($node->safe_psql('app', q{SELECT count(*) FROM notify_suppressions WHERE address LIKE 'sha256:%'}), '1',
	'another session forgot it: one hashed suppression');
is($to->('gone@example.com'), 'skipped/suppressed', 'forgotten by another session: still suppressed (by hash)');
$app->query_safe(q{BEGIN});
is($to->('left@example.com'), 'skipped/suppressed', 'in a transaction: suppressed under its address');
$node->safe_psql('app', q{SELECT notify_unsuppress(address) FROM notify_suppressions WHERE address LIKE 'sha256:%'});
is($to->('gone@example.com'), 'pending/-', 'hash removed by another session, seen within the transaction');
$app->query_safe(q{SELECT notify_forget_recipient('left@example.com')});
is($to->('left@example.com'), 'skipped/suppressed', 'forgotten in the same transaction: suppressed by hash');
$app->query_safe(q{ROLLBACK});
is($to->('left@example.com'), 'skipped/suppressed', 'after ROLLBACK: suppressed under its address again');
$app->query_safe(q{SELECT notify_forget_recipient('left@example.com')});
is($to->('left@example.com'), 'skipped/suppressed', 'forgotten and committed: suppressed by hash');
# A hashed suppression written by itself (no preference touched, as
# notify_forget_recipient does): only the trigger on notify_suppressions can
# tell the session.
$node->safe_psql('app', q{DELETE FROM notify_suppressions WHERE address LIKE 'sha256:%'});
# (a category change empties the session's cache whatever else happens, so
# the next enqueue notes "no hashed suppression" from scratch)
$node->safe_psql('app', q{UPDATE notify_categories SET description = description WHERE name = 'news'});
is($to->('hashed@example.com'), 'pending/-', 'no hashed suppression any more: sent');
$node->safe_psql('app', q{INSERT INTO notify_suppressions (address, reason, source) VALUES (notify_address_hash('hashed@example.com'), 'manual', 'admin')});
is($to->('hashed@example.com'), 'skipped/suppressed', 'hashed suppression added by another session: suppressed');

# Whether a category has any preference row is cached with the category: an
# enqueue in a category nobody has a choice in skips the preference lookup.
# A choice recorded by another session must be honoured at the next enqueue,
# also inside a transaction that is already open.
my $news_to = sub {
	my ($addr) = @_;
	my $id = $app->query_safe(qq{SELECT try(\$q\$SELECT notify_enqueue('notify.message', '$addr', '{"subject": "s", "text": "t"}', category => 'news')\$q\$)});
	return "no row: $id" unless $id =~ /^\d+$/;
	return $app->query_safe("SELECT status || '/' || coalesce(skip_reason, '-') FROM notify_outbox WHERE id = $id");
};
is($news_to->('pref@example.com'), 'pending/-', 'no preference in the category: sent');
$node->safe_psql('app', q{SELECT notify_set_preference('pref@example.com', 'news', false)});
is($news_to->('pref@example.com'), 'skipped/opted_out', 'opt-out recorded by another session is honoured');
is($news_to->('pref2@example.com'), 'pending/-', 'another recipient in the category is still sent');
$node->safe_psql('app', q{DELETE FROM notify_preferences WHERE category = 'news'});
is($news_to->('pref@example.com'), 'pending/-', 'preference removed by another session: sent again');
$app->query_safe(q{BEGIN});
is($news_to->('pref2@example.com'), 'pending/-', 'in a transaction: sent');
$node->safe_psql('app', q{SELECT notify_set_preference('pref2@example.com', 'news', false)});
is($news_to->('pref2@example.com'), 'skipped/opted_out', 'opt-out committed during the transaction is honoured');
$app->query_safe(q{ROLLBACK});

$app->quit;
$node->stop;
done_testing();
