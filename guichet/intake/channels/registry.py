"""One adapter per channel, same shape: `interpret(raw, envelope)` and `preview(raw, envelope)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from guichet.intake.channels.email import adapter as email_adapter
from guichet.intake.channels.web import adapter as web_adapter
from guichet.intake.interpreted import Interpreted


@dataclass(frozen=True)
class ChannelAdapter:
    # The full reading used for processing (may verify signatures, read blobs).
    interpret: Callable[[bytes, dict[str, Any]], Interpreted]
    # A cheap (sender, subject, excerpt) for lists of held input.
    preview: Callable[[bytes, dict[str, Any]], tuple[str, str, str]]


ADAPTERS: dict[str, ChannelAdapter] = {
    "email": ChannelAdapter(interpret=email_adapter.interpret, preview=email_adapter.preview),
    "web": ChannelAdapter(interpret=web_adapter.interpret, preview=web_adapter.preview),
}


def adapter_for(channel: str) -> ChannelAdapter:
    try:
        return ADAPTERS[channel]
    except KeyError:
        raise ValueError(f"No adapter for channel {channel!r}") from None


def interpreter_for(channel: str) -> Callable[[bytes, dict[str, Any]], Interpreted]:
    return adapter_for(channel).interpret
