"""Powertools Logger, Metrics and Tracer, one of each per process, shared by every entry point."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "kettle"

logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "kettle", service=SERVICE
)
tracer = Tracer(service=SERVICE)
