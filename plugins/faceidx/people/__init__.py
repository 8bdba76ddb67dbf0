"""Identities on top of the face table: quality gate, incremental clustering, corrections, persons tables."""
