"""`python -m v2gstack`: the same command as `v2gstack`."""

from .cli import app

app(prog_name="v2gstack")
