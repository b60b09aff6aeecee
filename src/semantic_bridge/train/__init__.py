"""The ``train`` stage: losses, discriminator, curricula, batches, the Lightning module, held-out
metrics and the runner."""
