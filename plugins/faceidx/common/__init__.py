"""Shared by every feature: names and constants, the log tables, Param builders."""
