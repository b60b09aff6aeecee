"""The bridge codec: Mimi's encoder and decoder around a split RVQ, distillation heads, codebook
statistics and weight surgery from kyutai Mimi."""
