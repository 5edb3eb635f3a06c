"""metrics: derived views of every topic, exported for Prometheus as SLA gauges and histograms."""
