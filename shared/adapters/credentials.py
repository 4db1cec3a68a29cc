"""Credentials: DefaultAzureCredential in production (managed identity in Azure); a static token
only when SAFE_ROLLOUT_CREDENTIAL=emulator asks for it, for the local emulator."""

from __future__ import annotations

import time
from typing import Any


class EmulatorCredential:
    """A TokenCredential the local emulator accepts. Never used unless a setting asks for it."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("emulator-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo("emulator-token", int(time.time()) + 3600)


def make_credential(kind: str) -> Any:
    if kind == "emulator":
        return EmulatorCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
