#!/usr/bin/env python3
# Compares the JSON runs bench/run-tcp-ab.sh leaves (run<i>-ref.json, run<i>-head.json):
# for each metric, the weft path's rounds per revision, their medians and head/ref; and per
# run the ratios of weft to the same run's direct and HAProxy paths, which take out some of
# the machine's load.
import json, glob, statistics, sys
d = sys.argv[1] if len(sys.argv) > 1 else '.'
keys = ['bulk_mb_per_s', 'new_conns_per_s', 'rr_per_s']
runs = {'ref': [], 'head': []}
for v in runs:
    for f in sorted(glob.glob(f'{d}/run*-{v}.json')):
        runs[v].append(json.load(open(f)))
for k in keys:
    vals = {}
    for v, rs in runs.items():
        w, wd, wh = [], [], []
        for r in rs:
            m = next(x for x in r['metrics'] if x['key'] == k)
            w += m['rounds']['weft']
            wd.append(m['weft_over_direct']); wh.append(m['weft_over_haproxy'])
        vals[v] = (w, wd, wh)
    if not vals['ref'][0]:
        continue
    mm, me = statistics.median(vals['ref'][0]), statistics.median(vals['head'][0])
    print(f"{k}: ref {min(vals['ref'][0]):.0f}-{max(vals['ref'][0]):.0f} (median {mm:.0f}), "
          f"head {min(vals['head'][0]):.0f}-{max(vals['head'][0]):.0f} (median {me:.0f}); head/ref {me/mm:.2f}")
    for i, name in ((1, 'weft/direct'), (2, 'weft/haproxy')):
        a, b = statistics.median(vals['ref'][i]), statistics.median(vals['head'][i])
        print(f"   {name} per run: ref {[round(x,2) for x in vals['ref'][i]]} head {[round(x,2) for x in vals['head'][i]]}; ratio of medians {b/a:.2f}")
