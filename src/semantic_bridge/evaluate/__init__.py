"""Evaluations of the codec: pure metric functions (``metrics``) and one runner per DVC stage."""
