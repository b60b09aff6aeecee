"""The ``align`` stage: word times per transcript word (pocketsphinx, NeMo CTC, or the corpus's own)."""
