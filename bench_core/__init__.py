"""bench: a pluggable benchmark suite for score-based samplers."""
from .hookspecs import hookimpl
from .protocols import (Initializer, Metric, MetricContext, Sampler, ScoreEstimate, Target,
                        TrainingData)

__all__ = ["hookimpl", "Target", "ScoreEstimate", "Initializer", "Sampler", "Metric",
           "MetricContext", "TrainingData"]
