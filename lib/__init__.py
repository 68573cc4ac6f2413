"""Shared code of the monocular depth course."""
