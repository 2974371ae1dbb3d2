"""Shared by several test modules."""

from __future__ import annotations

from typing import Any

from bot.model.requests import ChatRequest, ImageRef, parse_command


def chat(text: str, refs: list[ImageRef] | None = None, user: str = "u1", **origin: Any) -> ChatRequest:
    return ChatRequest(
        surface="test",
        user_id=user,
        workspace_id="w1",
        origin=origin or {"thread": "t1"},
        request=parse_command(text).request,
        references=refs or [],
    )
