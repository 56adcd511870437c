"""A fairseq --user-dir that makes the round evaluation's fairseq-generate slow: when it scores round 0 it first
sleeps LTH_SLOW_GENERATE_S seconds. Any other process that imports it (fairseq-train checks the generate options
with fairseq-generate's parser) is not slowed."""
import os
import sys
import time

if os.path.basename(sys.argv[0]) == "generate.py" and any("round_00" in a for a in sys.argv):
    time.sleep(float(os.environ.get("LTH_SLOW_GENERATE_S", "0")))
