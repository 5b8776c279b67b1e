"""Bidirectional LSTM encoder over a Conv2d subsampling front end."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr_gr.models.encoders.base import Encoder
from asr_gr.models.encoders.subsampling import Conv2dSubsampling
from asr_gr.models.registry import ENCODERS


@ENCODERS.register("blstm")
class BLSTMEncoder(Encoder):
    def __init__(self, input_dim: int, hidden: int = 256, num_layers: int = 4, dropout: float = 0.2,
                 subsampling: int = 4, front_channels: int = 32):
        super().__init__()
        self.front = Conv2dSubsampling(input_dim, 2 * hidden, front_channels, subsampling)
        self.layers = nn.ModuleList(
            nn.LSTM(2 * hidden, hidden, batch_first=True, bidirectional=True) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.layer_dims = [2 * hidden] * num_layers

    def forward(self, feats, lens):
        x, lens = self.front(feats, lens)
        outs = []
        for i, lstm in enumerate(self.layers):
            packed = pack_padded_sequence(x, lens.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = lstm(packed)
            y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
            x, layer = self.tap(i, self.dropout(y), lens)
            outs.append(layer)
        return x, lens, outs
