"""The ``eval_*`` stages: pure metric functions (``metrics``) and one runner per stage."""
