"""Shared by the Python helpers of bench/low_rate.sh and
bench/paused_backlog.sh (on PYTHONPATH): wait until outbox rows are
recorded sent, and their latencies."""
import sys
import time


def wait_sent(cur, ids, timeout):
    """Return once every row of ids is sent; exit the script after timeout s."""
    deadline = time.time() + timeout
    while True:
        cur.execute("SELECT count(*) FROM notify_outbox WHERE id = ANY(%s) AND status = 'sent'", (ids,))
        if cur.fetchone()[0] == len(ids):
            return
        if time.time() > deadline:
            sys.exit("timeout: %d messages were not delivered in %d s" % (len(ids), timeout))
        time.sleep(0.05)


def latencies(cur, ids):
    """sent_at - created_at of the rows (commit to the server's answer), ms, sorted."""
    cur.execute("SELECT extract(epoch FROM sent_at - created_at) * 1000 FROM notify_outbox WHERE id = ANY(%s)", (ids,))
    return sorted(float(r[0]) for r in cur.fetchall())


def quantile(values, p):
    """The p quantile of sorted values (nearest rank)."""
    return values[min(len(values) - 1, int(p * len(values)))]
