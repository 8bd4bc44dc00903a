"""Stopping a run: a Ctrl-C or SIGTERM that lands inside a finalizer, where Python would print it and drop it, takes
effect at the next model load or stage instead, without a traceback."""

import subprocess
import sys

from conftest import ROOT

DROPPED_IN_A_FINALIZER = """
import gc, os, signal, sys, time
import torch
from ltx2gen import memory
from ltx2gen.signals import stop_like_ctrl_c

stop_like_ctrl_c()

class Finalized:  # as a tokenizer's regex objects are while a model loads
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs here, inside __del__

tracker = memory.MemoryTracker(torch.device("cpu"))
with tracker.stage("text") as stage:
    stage.load("tokenizer", lambda: Finalized() and None)
    print("LOADED_ON", flush=True)  # a stop only printed and dropped would get here
"""


def test_a_sigterm_inside_a_finalizer_stops_the_run_at_the_next_load_without_a_traceback():
    result = subprocess.run([sys.executable, "-c", DROPPED_IN_A_FINALIZER], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0 and "LOADED_ON" not in result.stdout
    assert "KeyboardInterrupt: signal 15, received inside a finalizer" in result.stderr
    assert "Exception ignored" not in result.stderr
