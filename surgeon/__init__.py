"""Surgeon tools: a recorded or drawn trajectory replayed in a task scene with and without
assistance, scored on clinical metrics, and shown as one page (``surgisim assess``; see
``docs/assess.md``). Needs the ``surgeon`` extra."""
