"""Data sources: procedural synthetic scenes and (with the builder) the TrajLoomBench dataset."""
