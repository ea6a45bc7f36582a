"""`python -m dstack_prefect.engine FLOW_RUN_ID`: run an existing dstack flow run here."""

import sys

from dstack_prefect.engine._launch import run_existing

run_existing(sys.argv[1])
