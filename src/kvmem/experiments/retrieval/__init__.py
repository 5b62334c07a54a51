"""Forgetting as retrieval failure, against behavioural data: interference, cued recall,
feeling of knowing, accessibility versus precision, engram reactivation."""
