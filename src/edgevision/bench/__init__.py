"""Measuring models: MACs, latency, throughput."""
from .latency import LatencyResult, cpu_description, measure_latency
from .macs import count_macs

__all__ = ["LatencyResult", "cpu_description", "measure_latency", "count_macs"]
