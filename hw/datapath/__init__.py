"""Training datapath of fully connected layers (issue 6): requantizer, FP4 encoder, command FSM top."""

from .fp4_encoder import FP4Encoder
from .requant import Requantizer
from .top import TrainDatapath

__all__ = ["FP4Encoder", "Requantizer", "TrainDatapath"]
