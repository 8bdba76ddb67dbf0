"""The index layer: the face table (Delta Lake), its vector index (LanceDB), search, erasure, versions."""
