"""Memory layers in trained models: multi-query associative recall."""
