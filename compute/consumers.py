"""Websocket consumer pushing re-rendered rows when VMs and hosts change (placeholder)."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close()
