"""Files and notes: ``.deriv`` files, Markdown notes, derivations as data, the proof library."""
