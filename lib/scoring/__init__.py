"""Signal scoring: ``unirail_core`` (documented confluence score) and ``quantum_ai`` (learned model).

Both are pure functions ``score_panel(panel) -> list[Candidate]`` over a :class:`CandlePanel`.
:func:`score` dispatches by algorithm name.
"""
