"""``python -m faceidx_worker``: the same as ``python run_detection_service.py``."""

from faceidx_worker.main import main

raise SystemExit(main())
