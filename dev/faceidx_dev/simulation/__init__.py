"""Scaling simulator: the original design's submit rule against ``faceidx.indexing.planning`` on one model of
SQS, two AWS Batch compute environments and queue-draining spot GPU workers.

Pure Python: no Airflow, no boto3. ``benchmarks/simulate.py`` (``make simulate``) runs it.

- :mod:`faceidx_dev.simulation.traces`: arrival traces (when images land in the queue);
- :mod:`faceidx_dev.simulation.policies`: the two submit rules behind one small protocol;
- :mod:`faceidx_dev.simulation.engine`: the discrete-event model of queue, compute environments and workers;
- :mod:`faceidx_dev.simulation.report`: runs traces x rules and renders the comparison table.
"""
