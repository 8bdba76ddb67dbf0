"""The index's heavy steps as AWS Batch jobs: one image, two entry points (the GPU worker, and
``python -m faceidx.jobs STEP``), submitted and watched by
:class:`faceidx.jobs.operator.IndexStepOperator`."""
