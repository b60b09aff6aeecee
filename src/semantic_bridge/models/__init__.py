"""Model files that are not trained here: NeMo loading, msclap's HTSAT, and the random-weight
tiny stand-ins the ``embedded_models`` stage builds."""
