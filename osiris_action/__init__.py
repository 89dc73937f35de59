"""osiris-action: validate, compile and run Osiris (OML) pipelines, on a laptop and in pull requests."""

__version__ = "0.1.0"
