"""Key-value memory against its rivals: attractor clean-up inside value space, and a
generative model's reconstruction against a targeted lookup."""
