"""The course's model zoo: three classifiers for small greyscale images, built by name.

- ``mlp``: two dense layers; the baseline any image model must beat.
- ``cnn``: two conv blocks and a linear head; small and fast (~25k parameters), the reference for the labs.
- ``resnet18``: torchvision's ResNet-18 (random weights), its first convolution taking ``in_channels``. The
  stem is otherwise torchvision's: at 32 px a digit reaches layer 1 at 8 x 8 and layer 4 at 1 x 1, which still
  trains past 97% on the digits and costs ~0.04 GFLOPs a forward (CIFAR-style stems that keep full resolution
  cost 4-16x more, minutes per epoch on 2 cores). Trained by ``make model``, served by the later labs.

Every model takes ``N x C x S x S`` normalised floats and returns ``N x num_classes`` logits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlinfra.base.errors import UsageError

if TYPE_CHECKING:
    import torch

MODEL_NAMES = ("mlp", "cnn", "resnet18")


def build_model(
    name: str, num_classes: int = 10, in_channels: int = 1, image_size: int = 28
) -> torch.nn.Module:
    """A freshly initialised model; seed torch first (``torch.manual_seed``) for the same weights every time.

    ``image_size`` matters only to the ``mlp``, whose first layer sees every pixel; the others take any size.
    """
    from torch import nn

    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )
    if name == "cnn":
        # Three 3x3 conv stages (16, 32, 64 channels), each conv -> BatchNorm -> ReLU, the first two halving the
        # image with a 2x2 max-pool; built stage by stage, in the order (and so the weights) of a flat listing.
        layers: list[nn.Module] = []
        width = in_channels
        for stage, channels in enumerate((16, 32, 64)):
            layers += [nn.Conv2d(width, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            if stage < 2:
                layers.append(nn.MaxPool2d(2))
            width = channels
        # Pooling to a fixed 3x3 grid keeps the head the same size whatever the input size.
        layers += [nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Dropout(0.25), nn.Linear(width * 9, num_classes)]
        return nn.Sequential(*layers)
    if name == "resnet18":
        from torchvision.models import resnet18

        model = resnet18(weights=None, num_classes=num_classes)
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model
    raise UsageError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
