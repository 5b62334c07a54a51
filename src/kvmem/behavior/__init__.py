"""Process models of behavioural memory tasks built on kvmem's core memories.

What several experiments share lives here (docs/science.md layers: ``behavior`` sits between
the experiments and ``core``): list-learning protocols, paired associates with a drifting
list context, and the temporal context model of free recall (context as the key).
"""
