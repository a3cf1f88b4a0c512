"""CPU time from /proc for the benchmarks' Python helpers: drain.sh,
throughput.sh and webhooks.sh copy this file next to the helpers they
write into their scratch directory, which import it."""
import os

hz = os.sysconf("SC_CLK_TCK")


def stat(p):
    """Process p's parent pid and its CPU seconds (user + system); None
    when it is gone."""
    try:
        with open("/proc/%d/stat" % p) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / hz


def cluster_cpu(postmaster):
    """CPU seconds of a cluster's processes: the postmaster and its
    children alive now."""
    total = stat(postmaster)[1]
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = stat(int(d))
            if s and s[0] == postmaster:
                total += s[1]
    return total
