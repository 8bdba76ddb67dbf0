"""``python -m faceidx.jobs STEP ...``: the maintenance image's entry point (:mod:`faceidx.jobs.entry`)."""

import sys

from faceidx.jobs.entry import main

# ``python -m faceidx.jobs`` runs this as faceidx.jobs.__main__; a loader that executes the file under
# its bare name (Airflow's plugin manager without plugins/.airflowignore) must not exit the process.
if __name__ == "__main__" and __spec__ is not None and __spec__.name == "faceidx.jobs.__main__":
    sys.exit(main())
