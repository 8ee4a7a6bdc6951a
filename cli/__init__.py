"""The ``nephele`` command line (a REST client: no Django, no ORM)."""
