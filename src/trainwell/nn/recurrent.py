"""The ``rnn`` builder: a vanilla tanh RNN (lecture 002), an LSTM or a GRU over a sequence,
with a linear head on the last hidden state (sequence classification and regression).

Inputs per sample are ``(T, F)`` sequences, or ``(C, H, W)`` arrays read as ``H`` steps of
``C * W`` features: an npz ``X`` of shape ``(n, T, F)`` (which the data module gives as
``(1, T, F)``) or an image read row by row, top to bottom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trainwell.nn.architectures import MODELS, need_dims

if TYPE_CHECKING:
    from trainwell.nn.config import ModelConfig


class RecurrentNet(nn.Module):
    """``h_t = tanh(W_hh h_{t-1} + W_xh x_t)`` (lecture 002) or its LSTM/GRU cousins; the head
    reads the last layer's final hidden state (both directions when bidirectional).

    Input: (N, T, F) batches, batch first; (N, C, H, W) batches are read as H steps of C * W
    features (``rows=True``).

    Example:
        >>> RecurrentNet("gru", 3, 8, n_out=2)(torch.zeros(4, 5, 3)).shape
        torch.Size([4, 2])
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        n_out: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        rows: bool = False,
    ) -> None:
        super().__init__()
        self.rows = rows
        kwargs = {
            "num_layers": num_layers,
            "batch_first": True,
            "bidirectional": bidirectional,
            "dropout": dropout if num_layers > 1 else 0.0,  # torch applies it between layers only
        }
        if cell == "rnn":
            self.rnn: nn.Module = nn.RNN(input_size, hidden_size, nonlinearity="tanh", **kwargs)
        else:
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(input_size, hidden_size, **kwargs)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Linear(hidden_size * self.directions, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rows:  # (N, C, H, W) -> (N, H, C * W): one step per row
            x = x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)
        _, h = self.rnn(x)
        if isinstance(h, tuple):  # LSTM: (h_n, c_n)
            h = h[0]
        last = h[-self.directions :]  # (directions, N, H) of the last layer
        return self.head(last.transpose(0, 1).reshape(x.shape[0], -1))


@MODELS.register("rnn")
def build_rnn(cfg: ModelConfig, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """A :class:`RecurrentNet` for sequences of shape (T, F), or (C, H, W) read row by row."""
    if len(input_shape) == 3:
        need_dims("rnn", input_shape, 3, "a sequence (T, F) or rows of (C, H, W)")
        c, _, w = (int(s) for s in input_shape)
        return RecurrentNet(cfg.cell, c * w, cfg.hidden_size, n_out, cfg.num_layers,
                            cfg.bidirectional, cfg.dropout, rows=True)
    need_dims("rnn", input_shape, 2, "a sequence (T, F) (or (C, H, W), read row by row)")
    return RecurrentNet(
        cfg.cell,
        int(input_shape[1]),
        cfg.hidden_size,
        n_out,
        cfg.num_layers,
        cfg.bidirectional,
        cfg.dropout,
    )
