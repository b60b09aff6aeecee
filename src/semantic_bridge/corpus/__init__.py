"""The ``prepare`` stage: corpus sources (embedded espeak-ng speech, a Hugging Face dataset, a
manifest), speaker splits, the speaker-verification trial list and the audio-QA set."""
