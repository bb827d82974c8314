"""Cross-protocol debugging: one JSON-lines timeline per charging session, the merge of station and CSMS records
(`v2gstack trace`), and the one table that maps ISO 15118 failures to their OCPP reports."""

from .timeline import Timeline, TimelineFolder

__all__ = ["Timeline", "TimelineFolder"]
