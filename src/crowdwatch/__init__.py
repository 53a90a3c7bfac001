"""crowdwatch: count people in named zones of camera streams and export them to Prometheus."""

__version__ = "0.1.0"
