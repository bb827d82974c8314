"""Grid: the internal grid-signal model, the V2G scheduler and the OpenADR 2.0b VEN (the CSMS calls them)."""
