"""Compute drivers: small, typed, and ignorant of Django (see base.py)."""
