"""LFP aging model, cycle counting, state of health and dispatch degradation costs."""
