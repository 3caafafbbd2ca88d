"""The chat-list rules as plain functions: what a change does, when a chat is
muted or archived, and what the push work may send (issue 18)."""

from __future__ import annotations

from bridge.chats.chatlist import notification_level, settings_data
from storage.chatlist import MUTE_FOREVER, ChatSettings, SettingsChange, apply_change

T = 1_700_000_000_000


def test_a_mute_ends_at_its_time_and_always_never_ends() -> None:
    s = ChatSettings("r", muted_until=T + 10)
    assert s.muted(T + 9) and not s.muted(T + 10)
    forever = ChatSettings("r", muted_until=MUTE_FOREVER)
    assert forever.muted(T * 1000)
    data = settings_data(forever, T)
    assert (data.muted, data.mute_forever, data.muted_until) == (True, True, None)


def test_an_archived_chat_returns_with_a_later_message_unless_muted() -> None:
    archived = ChatSettings("r", archived_at=T, last_message_at=T - 5)
    assert archived.archived(T)
    assert not ChatSettings("r", archived_at=T, last_message_at=T + 1).archived(T + 2)
    muted = ChatSettings("r", archived_at=T, last_message_at=T + 1, muted_until=T + 100)
    assert muted.archived(T + 2)
    # The mute is over: the message that came during it now shows the chat.
    assert not muted.archived(T + 100)


def test_archiving_unpins_pinning_unarchives_and_fields_left_out_stay() -> None:
    pinned = apply_change(ChatSettings("r", notify="none"), SettingsChange(pinned=True), T, T + 7)
    assert (pinned.pinned_at, pinned.notify, pinned.updated_at) == (T + 7, "none", T)
    archived = apply_change(pinned, SettingsChange(archived=True), T + 1, T + 8)
    assert (archived.archived_at, archived.pinned_at) == (T + 1, None)
    again = apply_change(archived, SettingsChange(pinned=True), T + 2, T + 9)
    assert (again.archived_at, again.pinned_at) == (None, T + 9)
    # Pinning what is pinned keeps its place.
    assert apply_change(again, SettingsChange(pinned=True), T + 3, T + 10).pinned_at == T + 9


def test_muted_chats_notify_nothing_and_otherwise_as_chosen() -> None:
    assert notification_level(ChatSettings("r"), T) == "all"
    assert notification_level(ChatSettings("r", notify="mentions"), T) == "mentions"
    muted = ChatSettings("r", notify="mentions", muted_until=T + 1)
    assert notification_level(muted, T) == "none"
    assert notification_level(muted, T + 1) == "mentions"
