"""GAN training, shared by `steer train` and joint fine-tuning."""
from .gan import TrainConfig, train_gan

__all__ = ["TrainConfig", "train_gan"]
