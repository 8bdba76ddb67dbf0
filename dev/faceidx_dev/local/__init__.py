"""Local stand-ins for running faceidx with no AWS account: an embedded moto server, a stand-in for
AWS Batch compute that runs each submitted job as a worker process, and the demo's model and photo
lookup. Used by ``make demo`` and the tests; nothing in the production DAG path imports them."""
