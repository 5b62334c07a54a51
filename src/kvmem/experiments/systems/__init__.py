"""Systems-level phenomena: consolidation from a hippocampal index to cortex, and
representational repulsion of keys."""
