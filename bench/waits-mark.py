#!/usr/bin/env python3
"""The pane program of bench/waits.py: on each SIGUSR1 prints one line
`MARK<k>:<t>` (k = 1, 2, ...; t = CLOCK_MONOTONIC in ns, taken just before
the write), so the reader's return time minus t is the latency from the
moment the program printed."""
import os
import signal
import time

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
os.write(1, b"ready\n")
k = 0
while True:
    signal.sigwait({signal.SIGUSR1})
    k += 1
    t = time.monotonic_ns()
    os.write(1, b"MARK%d:%d\n" % (k, t))
