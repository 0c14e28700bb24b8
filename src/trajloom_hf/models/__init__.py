"""Models: TrajLoom-VAE (AutoencoderTraj), TrajLoom-Flow (TrajFlowTransformer) the visibility head and the frame (image) encoder."""

from .autoencoder_traj import AutoencoderTraj, TrajLatentDistribution
from .frame_encoder import FrameEncoder, FrameEncoderOutput
from .transformer_traj_flow import TrajFlowTransformer
from .visibility_predictor import VisibilityPredictor

__all__ = ["AutoencoderTraj", "FrameEncoder", "FrameEncoderOutput", "TrajLatentDistribution", "TrajFlowTransformer", "VisibilityPredictor"]
