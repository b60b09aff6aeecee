"""msclap's HTSAT audio encoder with the CLAP 2023 configuration (33 M parameters)."""

from __future__ import annotations

HTSAT_RATE = 44100
HTSAT_SECONDS = 7  # msclap 2023 config "duration"


def build_htsat():
    """msclap's ``AudioEncoder`` with HTSAT and the CLAP 2023 values (random weights)."""
    from msclap.models.clap import AudioEncoder

    return AudioEncoder("HTSAT", d_in=768, d_out=1024, sample_rate=HTSAT_RATE, window_size=1024,
                        hop_size=320, mel_bins=64, fmin=50, fmax=8000, classes_num=527)
