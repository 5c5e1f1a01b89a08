"""``--tta`` with the identity view only predicts exactly what the plain model predicts."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.data.augment.tta import IDENTITY
from trainwell.train.test_time import TestTimeAverage, average_outputs


def test_identity_only_gives_the_plain_probabilities_bit_for_bit():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 6, 6)
    for task, k, prob in (("multiclass", 10, lambda z: torch.softmax(z, 1)),
                          ("binary", 1, torch.sigmoid)):
        net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(),
                            nn.Linear(48, k)).eval()
        with torch.no_grad():  # large logits: a log / exp round trip is not exact
            net[-1].weight.mul_(7.0)
            net[-1].bias.mul_(7.0)
            plain = prob(net(x))
        out, spread = average_outputs(TestTimeAverage(net, task, [IDENTITY], beta=0.25), x,
                                      batch_size=16)
        assert spread is None
        assert torch.equal(prob(out), plain), task
