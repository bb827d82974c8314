"""pytest configuration for the suite. Shared helpers are not here but in the `helpers` package beside this file
(`from helpers.csms import running_csms`); `tests/` is put on sys.path by `pythonpath` in pyproject.toml."""
