"""Generated EXI grammar modules, one per namespace (see docs/exi.md). Do not edit."""
