"""Training datapath of fully connected layers (issue 6): requantizer, FP4 encoder, command FSM top."""

from .fp4_encoder import FP4Encoder
from .post import FP16Post, GradPost
from .requant import Requantizer
from .top import TrainDatapath

__all__ = ["FP4Encoder", "FP16Post", "GradPost", "Requantizer", "TrainDatapath"]
