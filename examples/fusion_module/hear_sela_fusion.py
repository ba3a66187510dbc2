"""hear_sela_fusion: an example HEAR 2021 module built on top of hear_sela.

It concatenates hear_sela's embeddings with a plain log-mel baseline (64 mel bands; per-clip mean and standard
deviation for scenes, the log-mel frame at each timestamp for events), to show how another submission can wrap
hear_sela through its public API alone. heareval imports it by name like any other module:

    PYTHONPATH=examples/fusion_module python -m heareval.embeddings.runner hear_sela_fusion \
        --tasks-dir tasks --embeddings-dir embeddings [--model CKPT] [--model-options '{"hop_ms": 25}']

Options and the weights file go to hear_sela.load_model unchanged. Legend: N sounds, S samples, K timestamps.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

import hear_sela

N_MELS = 64
HOP_MS = 10.0


class FusionModel(nn.Module):
    """hear_sela's model plus a fixed log-mel transform; the HEAR attributes describe the concatenation."""

    def __init__(self, sela: nn.Module):
        super().__init__()
        self.sela = sela
        self.sample_rate = sela.sample_rate
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=400, hop_length=round(self.sample_rate * HOP_MS / 1000),
            n_mels=N_MELS)
        self.scene_embedding_size = sela.scene_embedding_size + 2 * N_MELS
        self.timestamp_embedding_size = sela.timestamp_embedding_size + N_MELS

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:  # (N, S) -> (N, F, T), frame t centred at t * hop
        return torch.log(self.mel(audio.to(self.mel.spectrogram.window.device)) + 1e-6)


def load_model(model_file_path: str = "", **options) -> FusionModel:
    return FusionModel(hear_sela.load_model(model_file_path, **options))


def get_scene_embeddings(audio: torch.Tensor, model: FusionModel) -> torch.Tensor:  # (N, S) -> (N, D)
    sela = hear_sela.get_scene_embeddings(audio, model.sela)  # validates the input
    logmel = model.log_mel(audio.float())
    return torch.cat([sela, logmel.mean(-1).to(sela.device), logmel.std(-1).to(sela.device)], dim=-1)


def get_timestamp_embeddings(audio: torch.Tensor, model: FusionModel) -> tuple[torch.Tensor, torch.Tensor]:
    emb, ts = hear_sela.get_timestamp_embeddings(audio, model.sela)  # (N, K, D), (N, K) ms
    if len(emb) == 0:
        return emb.new_zeros(0, ts.shape[1], model.timestamp_embedding_size), ts
    logmel = model.log_mel(audio.float())  # (N, F, T)
    frames = torch.round(ts[0] / HOP_MS).long().clamp(max=logmel.shape[-1] - 1).to(logmel.device)  # (K,)
    baseline = logmel[:, :, frames].transpose(1, 2)  # (N, K, F)
    return torch.cat([emb, baseline.to(emb.device)], dim=-1), ts
