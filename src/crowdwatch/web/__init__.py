"""The one HTTP server: /metrics, /healthz and /readyz."""
