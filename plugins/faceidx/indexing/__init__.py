"""face_indexing: queue depth, the scaling plan, Batch submissions and the run report."""
