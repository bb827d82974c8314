"""Cross-protocol debugging, low enough for every role to use: the one trace record schema (`records`), the
timeline writer (`timeline`), the pure merge of record streams (`merge`), and the one table that maps ISO 15118
failures to their OCPP reports (`error_map`). `cli` (`v2gstack trace`) sits at the top: it reads the CSMS
database through csms/timeline.py."""

from .timeline import Timeline, TimelineFolder

__all__ = ["Timeline", "TimelineFolder"]
