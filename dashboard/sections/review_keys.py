"""The review queue's keyboard: keys pressed anywhere on the page (not while typing into a field) reach Python in
order, none lost however fast they come.

The browser keeps every key it has not yet seen acknowledged, numbered, and sends the whole list (batched every
80 ms: sends made faster than Streamlit answers were dropped in tests); Python handles the keys numbered above
the last it handled and acknowledges that number with the next run, so the browser forgets them. A key sent twice
(a run interrupted by the next batch) is handled once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import streamlit as st

KEYS = "0123456789ajkJK"  # and Enter (Ctrl+Enter too)

_JS = """
export default function(component) {
  const { setStateValue, data } = component;
  const kb = window.__triageKeys || (window.__triageKeys = {seq: 0, pending: [], timer: null});
  kb.send = setStateValue;
  kb.active = true;
  const ack = (data && data.ack) || 0;
  kb.pending = kb.pending.filter(e => e.seq > ack);
  if (!kb.handler) {
    kb.handler = (e) => {
      if (!kb.active || e.altKey || e.metaKey || (e.ctrlKey && e.key !== 'Enter') || e.isComposing) return;
      const t = e.target;
      if (t && t.closest && t.closest('input, textarea, select, [contenteditable="true"], [role="dialog"]')) return;
      if (e.key === 'Enter' && t && t.closest && t.closest('button, a')) return;
      if (!(e.key === 'Enter' || (e.key.length === 1 && "KEYS".includes(e.key)))) return;
      e.preventDefault();
      e.stopPropagation();
      kb.seq += 1;
      kb.pending.push({seq: kb.seq, key: e.key === 'Enter' ? 'Enter' : e.key.toLowerCase()});
      if (!kb.timer) kb.timer = setTimeout(() => {
        kb.timer = null;
        kb.send('keys', JSON.stringify(kb.pending));
      }, 80);
    };
    window.addEventListener('keydown', kb.handler, true);
  }
  return () => { kb.active = false; };
}
""".replace("KEYS", KEYS)

_component = st.components.v2.component("triage_review_keys", js=_JS)


def listen(handle: Callable[[Iterator[str]], None], *, key: str = "review_keys") -> None:
    """Mount the listener; `handle(keys)` is called with the new keys, in order, before the page is drawn (a
    callback: nothing on the page runs between two keys). Each key counts as handled once `handle` takes it from
    the iterator: `handle` reads what it needs from st.session_state first (Streamlit may stop a callback at such a
    read when more input arrived, and a key taken but not acted on would be lost), then acts on the keys."""
    acked = st.session_state.setdefault(f"{key}_done", {"seq": 0})

    def new_keys() -> None:
        value = st.session_state.get(key) or {}
        done = st.session_state[f"{key}_done"]  # (reads first: this callback may be stopped at them)
        raw = value.get("keys") if hasattr(value, "get") else None
        try:
            events = json.loads(raw) if isinstance(raw, str) else []
        except ValueError:
            events = []
        fresh = [(int(e.get("seq", 0)), str(e.get("key", ""))) for e in events if isinstance(e, dict)]

        def taken() -> Iterator[str]:
            for seq, pressed in fresh:
                if seq > done["seq"]:
                    done["seq"] = seq
                    yield pressed

        handle(taken())

    _component(key=key, data={"ack": acked["seq"]}, on_keys_change=new_keys, height=0)
