"""Models: TrajLoom-VAE (AutoencoderTraj), TrajLoom-Flow (TrajFlowTransformer) and the visibility head."""

from .autoencoder_traj import AutoencoderTraj, TrajLatentDistribution
from .transformer_traj_flow import TrajFlowTransformer
from .visibility_predictor import VisibilityPredictor

__all__ = ["AutoencoderTraj", "TrajLatentDistribution", "TrajFlowTransformer", "VisibilityPredictor"]
