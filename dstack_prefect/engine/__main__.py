"""`python -m dstack_prefect.engine FLOW_RUN_ID`: supervise an existing dstack flow run here."""

import sys

from dstack_prefect.engine._launch import supervisor_main

supervisor_main(sys.argv[1])
