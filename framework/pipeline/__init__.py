"""Pipelines: YAML files naming steps, audio, chunking, resources and outputs."""

from .bundled import bundled_pipelines, find_pipeline
from .errors import Issue, PipelineError
from .schema import Chunking, Pipeline, Resources, Step, load_pipeline, parse_pipeline

__all__ = ["bundled_pipelines", "find_pipeline", "Chunking", "Issue", "Pipeline", "PipelineError", "Resources", "Step", "load_pipeline", "parse_pipeline"]
