"""The worker's command: ``python run_detection_service.py``, run from this folder (the image's WORKDIR).

It only makes the sibling package importable and delegates to ``faceidx_worker.main``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faceidx_worker.main import main

if __name__ == "__main__":
    raise SystemExit(main())
