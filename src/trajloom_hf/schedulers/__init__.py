"""Schedulers (ODE solvers) of TrajLoom-Flow."""

from .scheduling_flow_match_traj import (
    FlowMatchTrajSamplerOutput,
    FlowMatchTrajScheduler,
    FlowMatchTrajSchedulerOutput,
    flow_time_grid,
    interpolate_flow,
    sample_flow_time,
    sample_source,
)

__all__ = [
    "FlowMatchTrajSamplerOutput",
    "FlowMatchTrajScheduler",
    "FlowMatchTrajSchedulerOutput",
    "flow_time_grid",
    "interpolate_flow",
    "sample_flow_time",
    "sample_source",
]
