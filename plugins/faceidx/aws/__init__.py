"""The AWS layer: one hook per service and one errors module, shared by indexing, reindex and infra."""
