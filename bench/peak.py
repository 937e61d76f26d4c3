#!/usr/bin/env python3
"""Runs a command and prints its peak resident memory: total (VmHWM, which counts the pages of
mapped input files) and anonymous (RssAnon sampled every 20 ms: what the process allocated).
Usage: bench/peak.py CMD [ARG...]  →  prints "PEAK_TOTAL_KB PEAK_ANON_KB" on stdout."""
import subprocess, sys, time

proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
hwm = anon = 0
while proc.poll() is None:
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "VmHWM":
                    hwm = max(hwm, int(value.split()[0]))
                elif key == "RssAnon":
                    anon = max(anon, int(value.split()[0]))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    time.sleep(0.02)
print(hwm, anon)
