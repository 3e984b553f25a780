#!/usr/bin/env python3
# Per-byte costs of the proxies during bench/tcp's bulk phase (bench/README.md,
# "Bulk per byte, unsealed"). Run it beside the harness:
#
#   bench-tcp -weft WEFT -rounds 1 -bulk-bytes 4294967296 ... & python3 bench/tcp-permb.py $! [SECONDS]
#
# It watches the harness's children (weft sites, grouped by binary; HAProxy).
# Once a group receives more than 100 MB/s (the bulk phase), it counts each
# process's system calls and context switches with `perf stat` for SECONDS
# (default 2.5), and prints them per MB received (the TCP bytes_received of
# the process's sockets, from `ss`: the payload once at each proxy) with the
# process's CPU time (/proc/PID/stat) per MB. Needs perf with tracepoint
# access (root here). A group is measured once per 25 s. The counts are
# scaled from the perf window to the interval of the byte and CPU readings.
import collections, os, re, subprocess, sys, time

HZ = os.sysconf('SC_CLK_TCK')
harness = int(sys.argv[1])
window = float(sys.argv[2]) if len(sys.argv) > 2 else 2.5
events = ','.join(['raw_syscalls:sys_enter'] + ['syscalls:sys_enter_' + s for s in (
    'read', 'write', 'writev', 'recvfrom', 'sendto', 'futex', 'epoll_pwait', 'epoll_wait', 'nanosleep')] +
    ['context-switches'])


def children():
    out = {}
    for p in filter(str.isdigit, os.listdir('/proc')):
        try:
            if int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1]) != harness:
                continue
            exe = os.path.basename(os.readlink(f'/proc/{p}/exe'))
        except OSError:
            continue
        out[int(p)] = exe
    return out


def cpu(pid):
    try:
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(f[11]) + int(f[12])) / HZ
    except OSError:
        return 0


def received():
    r, pids = collections.Counter(), []
    for line in subprocess.run(['ss', '-tinpH'], capture_output=True, text=True).stdout.splitlines():
        m = re.findall(r'pid=(\d+)', line)
        if m:
            pids = {int(x) for x in m}
            continue
        b = re.search(r'bytes_received:(\d+)', line)
        if b:
            for p in pids:
                r[p] += int(b.group(1))
    return r


prev, prevt, next_ok = None, 0, collections.defaultdict(float)
while os.path.exists(f'/proc/{harness}'):
    groups = collections.defaultdict(list)
    for pid, g in children().items():
        groups[g].append(pid)
    now, cur = time.time(), received()
    for g, pids in groups.items():
        if prev is None or now < next_ok[g]:
            continue
        if sum(cur[p] - prev[p] for p in pids if prev[p]) / (now - prevt) < 100e6:
            continue
        c0, r0, t0 = {p: cpu(p) for p in pids}, received(), time.time()
        runs = {p: subprocess.Popen(['perf', 'stat', '-x,', '-e', events, '-p', str(p), '--', 'sleep', str(window)],
                                    stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) for p in pids}
        outs = {p: r.communicate()[1] for p, r in runs.items()}
        t1, r1 = time.time(), received()
        print(f"== {g}: {t1 - t0:.2f} s at {time.strftime('%H:%M:%S')}, load {open('/proc/loadavg').read().split()[0]}", flush=True)
        for p in sorted(pids):
            c, mb = cpu(p) - c0[p], max((r1[p] - r0[p]) / 1e6, 1e-9)
            counts = {}
            for line in outs[p].splitlines():
                f = line.split(',')
                if len(f) > 3 and f[0].strip().isdigit() and int(f[0]) > 0:
                    counts[f[2].split(':')[-1].replace('sys_enter_', '')] = int(f[0])
            # perf counts for `window` seconds of the longer interval over
            # which bytes and CPU are read (it takes a while to attach on a
            # loaded machine): scaled to that interval, the phase being steady.
            scale = (t1 - t0) / window
            print(f"  pid {p}: {mb / (t1 - t0):.0f} MB/s received, {c / (t1 - t0):.2f} cores, {1000 * c / mb:.3f} ms CPU/MB; per MB: "
                  + ' '.join(f'{k} {scale * v / mb:.1f}' for k, v in counts.items()), flush=True)
        next_ok[g] = time.time() + 25
    prev, prevt = cur, now
    time.sleep(0.3)
