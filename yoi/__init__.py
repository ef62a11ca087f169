"""yoi: tickets that live in your git repository, and an engine that runs them."""

__version__ = "0.1.0"
