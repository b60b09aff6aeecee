"""The ``merge`` stage: corpus, alignment and teacher features joined into training tuples."""
