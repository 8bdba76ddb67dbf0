"""Operators of faceidx: thin subclasses of the Amazon provider's, where the provider lacks a step."""
