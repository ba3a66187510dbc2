"""Installed as `torchaudio.sox_effects` by hear_sela.s3prl_compat when torchaudio has none (torchaudio >= 2.9).
s3prl 0.4.18 imports it at module level (speech_commands, sv_voxceleb1, sws2013 loaders; mos_prediction upstream)."""

from hear_sela.s3prl_compat.audio import apply_effects_file, apply_effects_tensor

__all__ = ["apply_effects_file", "apply_effects_tensor"]
