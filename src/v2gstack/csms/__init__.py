"""The central system (CSMS): station registry, authorization, transactions and metering, storage, API."""
