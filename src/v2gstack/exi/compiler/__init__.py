"""EXI grammar compiler (dev tool): XSD files -> generated grammar modules. The runtime never imports it."""
