"""The login form: password, then the TOTP code for users who enrolled a device."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django_otp import devices_for_user, user_has_device
from django_otp.forms import OTPAuthenticationFormMixin

from . import security


class LoginForm(OTPAuthenticationFormMixin, AuthenticationForm):
    otp_token = forms.CharField(
        required=False,
        label="Authenticator code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="Only if you enrolled an authenticator app.",
    )
    otp_device = forms.CharField(required=False, widget=forms.HiddenInput)
    otp_challenge = forms.CharField(required=False, widget=forms.HiddenInput)

    retry_after = 0  # > 0: refused by the login throttle (tenants/security.py), seconds to wait

    def clean(self) -> dict[str, Any]:
        # before any backend (LDAP included) sees the password
        username = self.cleaned_data.get("username")
        try:
            security.check(self.request, username)
        except security.LoginThrottled as exc:
            self.retry_after = exc.retry_after
            raise forms.ValidationError(security.throttle_message(exc.retry_after), code="throttled") from None
        self.cleaned_data = super().clean()
        user = self.get_user()
        if user is not None and user_has_device(user, confirmed=True):
            if not self.cleaned_data.get("otp_device"):  # one authenticator per user: no picker
                device = next(devices_for_user(user, confirmed=True))
                self.cleaned_data["otp_device"] = device.persistent_id
            try:
                self.clean_otp(user)
            except forms.ValidationError:  # a wrong second factor counts like a wrong password
                security.note_failure(username, security.client_ip(self.request))
                raise
        return self.cleaned_data
