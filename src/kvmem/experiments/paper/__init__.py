"""The paper's two simulations: Figure 2 (keys and values optimised) and Figure 3
(forgetting as retrieval failure, and its reading through the recorded SGD memories)."""
