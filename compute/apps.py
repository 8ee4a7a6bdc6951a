from django.apps import AppConfig
from django.db import transaction


def _schedule_pending_after_commit() -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.schedule_pending.delay())


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute (VM manager, hosts, scheduler)"

    def ready(self) -> None:
        from . import hooks, tasks

        hooks.capacity_available.register(_schedule_pending_after_commit)
        # the outbox renders a step's message from the committed VM when it publishes it
        tasks.outbox.register_renderer("hostagent.run_step", tasks.render_step, many=tasks.render_steps)
