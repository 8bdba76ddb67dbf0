"""Scaling simulator: the original design's submit rule against ``faceidx.planning`` on one model of
SQS, two AWS Batch compute environments and queue-draining spot GPU workers.

Pure Python: no Airflow, no boto3. ``benchmarks/simulate.py`` (``make simulate``) runs it.

- :mod:`faceidx.simulation.traces`: arrival traces (when images land in the queue);
- :mod:`faceidx.simulation.policies`: the two submit rules behind one small protocol;
- :mod:`faceidx.simulation.engine`: the discrete-event model of queue, compute environments and workers;
- :mod:`faceidx.simulation.report`: runs traces x rules and renders the comparison table.
"""
