"""dstack-prefect: dstack YAML workflows run as Prefect 3 flows."""

__version__ = "0.1.0"
