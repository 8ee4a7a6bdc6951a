"""Shared form pieces: choices of other objects resolved through the access gate.

``GatedForm`` is the HTML side of ``portal.api.Ref``: every ``ModelChoiceField`` and
``ModelMultipleChoiceField`` of a form offers, and accepts, only what
``Model.objects.restrict(user, action)`` gives the form's user (a foreign id posted by hand is
"not one of the available choices"). ``reference_actions`` names the action per field ("view"
unless said); ``directory_fields`` the fields that deliberately name something that is not the
caller's own (infrastructure), with the reason — ``tests/portal/test_reference_completeness.py``
lists them, so a new one is a reviewed decision.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms


class GatedForm:
    """Mixin for ``forms.Form`` / ``forms.ModelForm``: construct it with ``user=``."""

    reference_actions: ClassVar[dict[str, str]] = {}
    directory_fields: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.user = user
        signed_in = user is not None and user.is_authenticated
        fields: dict[str, forms.Field] = self.fields  # type: ignore[attr-defined]
        for name, field in fields.items():
            if not isinstance(field, forms.ModelChoiceField):  # ModelMultipleChoiceField is one too
                continue
            model = field.queryset.model
            if name in self.directory_fields:
                qs = model._default_manager.all() if signed_in else model._default_manager.none()
            else:
                qs = model.objects.restrict(user, self.reference_actions.get(name, "view"))
            field.queryset = qs
