"""Grafana dashboards as code: generated into provisioned JSON, checked against Prometheus."""
