"""The host agent: the process on each hypervisor host (Django-free, no ORM, no database).

It consumes its hosts' queues (``host.<pk>``) and does only driver and host work: the plain step
orders the control plane puts in each message (``specs.StepOrder``, encoded by
``specs.codec``), probes, domain listings and clean-ups. Every result goes back as a task on
the control plane's queue (``compute.step_done``, ``compute.probe_done``,
``compute.domains_listed``), where services write the database and refuse stale sequence
numbers — Nova's conductor boundary. ``docs/architecture.md`` draws it.
"""
