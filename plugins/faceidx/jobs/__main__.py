"""``python -m faceidx.jobs STEP ...``: the maintenance image's entry point (:mod:`faceidx.jobs.entry`)."""

import sys

from faceidx.jobs.entry import main

sys.exit(main())
