"""v2gstack: the whole smart-charging chain (ISO 15118 / DIN 70121, OCPP, CSMS, PKI, grid) in Python."""

__version__ = "0.1.0"
