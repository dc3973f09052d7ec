"""The two Audio-MLP variants (kwmlp, audiomae) described as data, and their input format.

Torch-free: the family registration sizes the embeddings from these rows without loading
the networks of :mod:`hear_mn.models.audiomlp.network`.
"""

from __future__ import annotations

from dataclasses import dataclass

# The family's registered name (hear_mn.config.FAMILIES), which its model class carries too.
AUDIOMLP_FAMILY = "audiomlp"
# The samples the encoders see at once (one second at the checkpoints' sample rate, which
# the checkpoint rows declare: hear_mn.models.audiomlp.family).
CHUNK_SAMPLES = 16000
N_FFT = 480
HOP = 160
N_MELS = 40
FRAMES_PER_CHUNK = (CHUNK_SAMPLES - N_FFT) // HOP + 1  # 98 tokens


@dataclass(frozen=True)
class AudioMLPArch:
    """One Audio-MLP variant, described as data.

    ``head`` is ``"layernorm"`` (kwmlp: the classifier is replaced by a parameter-free
    LayerNorm) or ``"bottleneck"`` (audiomae: Linear to ``timestamp_dim`` + GELU).
    ``frontend`` is ``"mfcc"`` or ``"mel"``. ``unused_checkpoint_keys`` are the released
    checkpoint's entries the HEAR model deliberately does not use; they are dropped before
    the strict load, and nothing else is.
    """

    name: str
    depth: int
    frontend: str
    head: str
    timestamp_dim: int
    scene_dim: int
    scene_time_steps: int
    dim: int = 64
    ff_mult: int = 4
    n_mels: int = N_MELS
    n_tokens: int = FRAMES_PER_CHUNK
    unused_checkpoint_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.frontend not in ("mfcc", "mel"):
            raise ValueError(f"frontend must be 'mfcc' or 'mel', got {self.frontend!r}")
        if self.head not in ("layernorm", "bottleneck"):
            raise ValueError(f"head must be 'layernorm' or 'bottleneck', got {self.head!r}")
        if self.head == "layernorm" and self.timestamp_dim != self.dim:
            raise ValueError("a layernorm head keeps the width: timestamp size must equal dim")
        if self.scene_dim != self.scene_time_steps * self.timestamp_dim:
            raise ValueError("scene_dim must be scene_time_steps * timestamp_dim")


KWMLP = AudioMLPArch(
    name="kwmlp",
    depth=12,
    frontend="mfcc",
    head="layernorm",
    timestamp_dim=64,
    scene_dim=1024,
    scene_time_steps=16,
    # The keyword classifier (LayerNorm, mean over tokens, Linear 64 -> 35 classes).
    unused_checkpoint_keys=(
        "to_logits.0.weight",
        "to_logits.0.bias",
        "to_logits.2.weight",
        "to_logits.2.bias",
    ),
)

AUDIOMAE = AudioMLPArch(
    name="audiomae",
    depth=6,
    frontend="mel",
    head="bottleneck",
    timestamp_dim=8,
    scene_dim=1584,
    scene_time_steps=198,
)

ARCHS: dict[str, AudioMLPArch] = {arch.name: arch for arch in (KWMLP, AUDIOMAE)}

__all__ = ["ARCHS", "AUDIOMAE", "KWMLP", "AudioMLPArch"]
