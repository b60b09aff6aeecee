"""The ``wavlm`` and ``qwen`` stages: the sharded, resumable, data-parallel extraction engine and
the two teachers (``wavlm.py``; ``llm.py`` is the ``qwen`` stage's code: any causal LM)."""
