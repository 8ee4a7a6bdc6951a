"""X.509 client certificates, verified by a TLS-terminating proxy.

Nephele does not terminate TLS itself. A proxy (nginx, HAProxy) verifies the client's
certificate against the cloud's CA and passes the result in headers; Nephele trusts those
headers ONLY when the request comes from an address listed in ``NEPHELE_X509_TRUSTED_PROXIES``
(empty: the feature is off), so a client cannot forge them. See docs/authentication.md.

nginx example::

    ssl_verify_client optional;
    proxy_set_header X-SSL-Client-Verify $ssl_client_verify;   # SUCCESS when valid
    proxy_set_header X-SSL-Client-S-DN   $ssl_client_s_dn;     # e.g. CN=alice,O=Example
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse

CN = re.compile(r"(?:^|[,/])\s*CN\s*=\s*([^,/]+)")


def user_from_dn(dn: str) -> object | None:
    match = CN.search(dn or "")
    if match is None:
        return None
    return get_user_model().objects.filter(username=match.group(1).strip(), is_active=True).first()


class TrustedProxyCertificateMiddleware:
    """Logs in the user named by the certificate's CN when a trusted proxy vouches for it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        trusted = getattr(settings, "NEPHELE_X509_TRUSTED_PROXIES", [])
        if (
            trusted
            and request.META.get("REMOTE_ADDR") in trusted
            and request.META.get("HTTP_X_SSL_CLIENT_VERIFY") == "SUCCESS"
            and not request.user.is_authenticated
        ):
            user = user_from_dn(request.META.get("HTTP_X_SSL_CLIENT_S_DN", ""))
            if user is not None:
                login(request, user, backend="tenants.security.ThrottledModelBackend")
        return self.get_response(request)
