"""Pipelines: TrajLoomPipeline (a diffusers ``DiffusionPipeline``)."""

from .pipeline_trajloom import TrajLoomPipeline, TrajLoomPipelineOutput

__all__ = ["TrajLoomPipeline", "TrajLoomPipelineOutput"]
