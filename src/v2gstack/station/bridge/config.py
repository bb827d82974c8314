"""What a bridged EVSE offers the EV besides its hardware: identity, energy modes, how EIM authorization happens."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BridgeConfig:
    """The ISO 15118 side of the bridged EVSEs (their power figures are the hardware's: StationConfig.hardware)."""

    evse_ids: dict[int, str] = field(default_factory=dict)  # EVSE -> ISO EVSEID; default DE*V2G*E<station>*<n>
    din_evse_id: str = "00"
    energy_modes: tuple[str, ...] = ("AC_three_phase_core", "DC_extended")
    id_token: dict[str, str] | None = None  # a token presented at the EVSE (RFID); None: wait for the CSMS
    schedule_duration: int = 86400  # s covered by the SAScheduleTuple
