"""A clone or conversion whose task was lost (a worker died, the broker dropped it) is re-driven
by the sweeper and ends READY; one that never progresses is failed with the reason after a few
tries — never CONVERTING forever (issue 11, item 4). Real qemu-img; the tasks run in-process
after commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from images.models import Image, ImageState
from images.services import derive
from images.tasks import sweep_stuck_images

from .factories import ready_image


def _lost_clone(member: Any, project: Any, datastore: Any, captured: Any) -> Image:
    src = ready_image(member, project, "src", datastore, size="8M")
    with captured(execute=False):  # the task is never sent: as if the message was lost
        clone = derive.clone_image(member, src.pk, name="copy")
    return clone


def _stall(image: Image, seconds: float) -> None:
    Image.objects.filter(pk=image.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def test_a_lost_clone_is_re_driven_and_ends_ready(
    member: Any, project: Any, datastore: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.NEPHELE_IMAGE_DEADLINE_S = 60
    clone = _lost_clone(member, project, datastore, django_capture_on_commit_callbacks)
    assert sweep_stuck_images()["done"] == 0  # not late yet: nothing to do
    _stall(clone, 120)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        result = sweep_stuck_images()
    assert result["done"] == 1 and len(queued) == 1
    from images import tasks

    assert tasks.convert_image(clone.pk) == "ok"  # what the re-queued message runs
    clone.refresh_from_db()
    assert clone.state == ImageState.READY and clone.redrives == 1 and clone.progress == 100


def test_a_conversion_that_never_progresses_fails_with_the_reason(
    member: Any, project: Any, datastore: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.NEPHELE_IMAGE_DEADLINE_S = 60
    settings.NEPHELE_IMAGE_MAX_TRIES = 2
    clone = _lost_clone(member, project, datastore, django_capture_on_commit_callbacks)
    for _ in range(2):
        _stall(clone, 120)
        with django_capture_on_commit_callbacks(execute=False):
            sweep_stuck_images()
    clone.refresh_from_db()
    assert clone.state == ImageState.CONVERTING and clone.redrives == 2
    _stall(clone, 120)
    sweep_stuck_images()
    clone.refresh_from_db()
    assert clone.state == ImageState.ERROR and "no progress" in clone.state_message
    assert "after 2 re-tries" in clone.state_message
