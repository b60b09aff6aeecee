"""Shared by every phase: errors, params-free file formats (shards, schemas, eval-set lists),
audio I/O, words, the frame contract, atomic writes, resumable work directories, progress, and
the stage-script entry point."""
