"""How much a memory holds and how well it reads: capacity and the memory cliff, robustness
to noisy cues, generalisation by blending, keys versus values on real images, and fixed key
scaffolds."""
